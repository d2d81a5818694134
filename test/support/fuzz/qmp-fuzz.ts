// The QMP fuzzer: hostile inputs through a real server (a FakeVm behind it) over real unix sockets, many
// clients at once. Each input gets a connection of its own: greeting, maybe qmp_capabilities, the input,
// then the client half-closes and reads until the server closes. The oracle, for every input:
//   * the server answers only with lines that are JSON objects of one kind (return, error, event,
//     greeting), and closes the connection within a time bound;
//   * requests over the size limit and nesting over the depth limit end in an error and a close, and cost
//     no more memory than the limit (lines of 100 MiB are sent with no newline);
//   * every so often, and at the end, a new client still gets an answer to query-status.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startQmpServer } from '../../../src/qmp/index.js';
import { FakeVm } from '../../qmp/fake-vm.js';
import { seededRandom } from '../random.js';

type Random = () => number;

function int(random: Random, n: number): number {
  return Math.floor(random() * n);
}

function pick<T>(random: Random, list: readonly T[]): T {
  return list[int(random, list.length)];
}

const COMMANDS = [
  'query-status',
  'stop',
  'cont',
  'quit',
  'migrate',
  'migrate-incoming',
  'migrate_cancel',
  'migrate-set-capabilities',
  'migrate-set-parameters',
  'query-migrate',
  'query-migrate-capabilities',
  'query-migrate-parameters',
  'x-vmstate-query-workload',
  'qmp_capabilities',
  'no-such-command',
  '',
  'query-status\u0000',
  '__proto__',
  'constructor',
];
const KEYS = ['uri', 'capabilities', 'capability', 'state', 'enable', 'max-bandwidth', 'downtime-limit', 'detach', 'blk', '__proto__', 'constructor', 'x', ''];

/** A random JSON value, `depth` levels at most. */
function randomValue(random: Random, depth: number): unknown {
  switch (int(random, depth > 0 ? 10 : 7)) {
    case 0:
      return pick(random, [0, -1, 1, 255, 256, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 64, -(2 ** 63), 1.5, 1e308]);
    case 1:
      return pick(random, ['', 'tcp:127.0.0.1:1', 'unix:/nonexistent/x', 'exec:true', 'events', 'xbzrle', 'on', 'x'.repeat(int(random, 300))]);
    case 2:
      return random() < 0.5;
    case 3:
      return null;
    case 4:
      return pick(random, COMMANDS);
    case 5:
      return int(random, 1 << 30);
    case 6:
      return String.fromCharCode(...Array.from({ length: int(random, 8) }, () => int(random, 0x10000)));
    case 7:
    case 8: {
      const o: Record<string, unknown> = {};
      for (let i = int(random, 4); i > 0; i--) o[pick(random, KEYS)] = randomValue(random, depth - 1);
      return o;
    }
    default:
      return Array.from({ length: int(random, 4) }, () => randomValue(random, depth - 1));
  }
}

/** A request that is well-formed JSON: a command (real or not) with random members and arguments. */
function randomRequest(random: Random): string {
  const r: Record<string, unknown> = {};
  if (random() < 0.9) r.execute = random() < 0.8 ? pick(random, COMMANDS) : randomValue(random, 1);
  if (random() < 0.6) r.arguments = random() < 0.8 ? Object.fromEntries(Array.from({ length: int(random, 3) }, () => [pick(random, KEYS), randomValue(random, 2)])) : randomValue(random, 2);
  if (random() < 0.4) r.id = randomValue(random, 2);
  if (random() < 0.05) r[pick(random, KEYS)] = randomValue(random, 1);
  // JSON.stringify drops a "__proto__" key made by assignment; this one is written out.
  const text = JSON.stringify(r);
  return random() < 0.05 ? text.replace(/^\{/, '{"__proto__": {"execute": "quit"}, ') : text;
}

/** One hostile input, as text or bytes, and whether to negotiate capabilities first. */
export interface HostileInput {
  readonly kind: string;
  readonly data: string | Uint8Array;
  readonly negotiate: boolean;
}

/** The next hostile input. */
export function hostileInput(random: Random): HostileInput {
  const negotiate = random() < 0.7;
  switch (int(random, 10)) {
    case 0:
    case 1:
    case 2:
      return { kind: 'request', negotiate, data: randomRequest(random) };
    case 3: {
      // Several requests back to back, no separators, some with whitespace between.
      const n = 2 + int(random, 6);
      return { kind: 'requests', negotiate, data: Array.from({ length: n }, () => randomRequest(random)).join(pick(random, ['', ' ', '\n', '\r\n'])) };
    }
    case 4: {
      // Unbalanced: a request cut anywhere, or stray closing brackets.
      const text = randomRequest(random);
      const cut = text.slice(0, int(random, text.length));
      return { kind: 'unbalanced', negotiate, data: pick(random, [cut, cut + '}}}', ']]' + text, '{"execute": "query-status"', '"unterminated', '{"a": [}', '[{]}', ':', ',,,']) };
    }
    case 5: {
      // Random bytes: invalid UTF-8, NULs, control characters.
      const bytes = new Uint8Array(1 + int(random, 200)).map(() => (random() < 0.3 ? pick(random, [0x7b, 0x7d, 0x5b, 0x5d, 0x22, 0x5c, 0x3a, 0x2c]) : int(random, 256)));
      return { kind: 'garbage', negotiate, data: bytes };
    }
    case 6: {
      // Deep nesting, inside and beyond the limit (1024), up to a million levels.
      const d = pick(random, [10, 1000, 1023, 1024, 1025, 5000, 100_000, 1_000_000]);
      const balanced = random() < 0.5;
      const shape = int(random, 3);
      let body: string;
      if (shape === 0) body = '['.repeat(d) + (balanced ? ']'.repeat(d) : '');
      else if (shape === 1) body = '{"a":'.repeat(d) + (balanced ? '1' + '}'.repeat(d) : '');
      else body = '{"execute": "query-status", "id": ' + '['.repeat(d) + (balanced ? ']'.repeat(d) + '}' : '');
      return { kind: `deep ${d}`, negotiate, data: body };
    }
    case 7: {
      // Long values: under and over the 1 MiB request limit.
      const n = pick(random, [1000, 500_000, 1_048_000, 1_048_576, 2_000_000]);
      return { kind: `long ${n}`, negotiate, data: `{"execute": "query-status", "id": "${'x'.repeat(n)}"}` };
    }
    case 8:
      // Scalars and odd values at the top level.
      return { kind: 'scalar', negotiate, data: pick(random, ['1', '-0', '1e999', 'true', 'null', '"str"', 'nul', 'NaN', '[]', '{}', '\u00e9', '"\\ud800"', '{"execute": "\\u0000"}']) };
    default:
      // Wrong types for the members QMP itself reads.
      return {
        kind: 'members',
        negotiate,
        data: JSON.stringify({ execute: randomValue(random, 1), arguments: randomValue(random, 1), id: randomValue(random, 1) }),
      };
  }
}

/** Counts and bounds of one run. */
export interface QmpFuzzStats {
  inputs: number;
  connections: number;
  concurrency: number;
  replies: number;
  errorReplies: number;
  /** Inputs whose connection the server closed after a fatal error (size or depth limit). */
  closedByServer: number;
  maxMs: number;
  bigLines: number;
  bigLineBytes: number;
  /** The most of a big line written before the server closed the connection. */
  bigLineSent: number;
  /** The most the process's RSS grew while a big line was being sent. */
  bigLineRssGrowth: number;
  peakRss: number;
  /** Times a fresh client asked query-status and got its answer. */
  healthChecks: number;
  readonly findings: string[];
}

/** Options for fuzzQmp. */
export interface QmpFuzzOptions {
  readonly count: number;
  readonly seed: number;
  /** Stops taking inputs after this many seconds even if fewer than `count` ran. Defaults to no limit. */
  readonly seconds?: number;
  /** Clients at once. Defaults to 200. */
  readonly concurrency?: number;
  /** Lines of `bigLineBytes` with no newline, sent besides. Defaults to 1. */
  readonly bigLines?: number;
  /** Defaults to 100 MiB. */
  readonly bigLineBytes?: number;
  /** A connection must be closed this long after its input was sent, in ms. Defaults to 10,000. */
  readonly timeoutMs?: number;
  readonly progress?: (line: string) => void;
}

/** One connection: connect, read the greeting, maybe negotiate, send, half-close, read until closed. */
async function exchange(address: string, input: HostileInput, timeoutMs: number): Promise<{ lines: string[]; ms: number; problem: string | null }> {
  const socket = net.connect({ path: address.slice('unix:'.length) });
  const lines: string[] = [];
  let pending = '';
  let waiter: (() => void) | null = null;
  let closed = false;
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    // Only the new text is searched: a reply of a megabyte comes in many pieces.
    let text = chunk;
    if (pending.endsWith('\r') && text.startsWith('\n')) {
      lines.push(pending.slice(0, -1));
      pending = '';
      text = text.slice(1);
    }
    let from = 0;
    let at: number;
    while ((at = text.indexOf('\r\n', from)) >= 0) {
      lines.push(pending + text.slice(from, at));
      pending = '';
      from = at + 2;
    }
    pending += text.slice(from);
    waiter?.();
  });
  let failure = '';
  socket.on('error', (e: NodeJS.ErrnoException) => (failure = e.code ?? e.message));
  const closedPromise = new Promise<void>((resolve) =>
    socket.on('close', () => {
      closed = true;
      waiter?.();
      resolve();
    }),
  );
  const waitLines = async (n: number, ms: number): Promise<boolean> => {
    const deadline = Date.now() + ms;
    while (lines.length < n && !closed && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, deadline - Date.now());
        waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
      waiter = null;
    }
    return lines.length >= n;
  };
  if (!(await waitLines(1, timeoutMs))) {
    socket.destroy();
    return { lines, ms: 0, problem: `no greeting${failure ? ` (${failure})` : closed ? ' (closed)' : ' (timeout)'}` };
  }
  let expected = 1;
  if (input.negotiate) {
    socket.write('{"execute": "qmp_capabilities"}');
    expected = 2;
    if (!(await waitLines(2, timeoutMs))) {
      socket.destroy();
      return { lines, ms: 0, problem: 'no reply to qmp_capabilities' };
    }
  }
  const started = performance.now();
  socket.end(input.data);
  const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), timeoutMs).unref());
  const outcome = await Promise.race([closedPromise.then(() => 'closed' as const), timer]);
  const ms = performance.now() - started;
  if (outcome === 'timeout') {
    socket.destroy();
    return { lines, ms, problem: `the server did not close the connection within ${timeoutMs} ms of the input` };
  }
  if (pending !== '') return { lines, ms, problem: `a partial line (${pending.length} bytes${failure ? `, ${failure}` : ''}): ${pending.slice(0, 80)}` };
  for (const line of lines.slice(expected)) {
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      return { lines, ms, problem: `a line that is not JSON: ${line.slice(0, 80)}` };
    }
    const keys = typeof v === 'object' && v !== null && !Array.isArray(v) ? Object.keys(v) : [];
    const kinds = keys.filter((k) => k === 'return' || k === 'error' || k === 'event');
    if (kinds.length !== 1) return { lines, ms, problem: `a line that is not one reply or event: ${line.slice(0, 80)}` };
  }
  return { lines, ms, problem: null };
}

/** A fresh client negotiates and asks query-status; null when it gets its answer. */
async function healthCheck(address: string): Promise<string | null> {
  const r = await exchange(address, { kind: 'health', negotiate: true, data: '{"execute": "query-status", "id": "health"}' }, 10_000);
  if (r.problem) return `health check: ${r.problem}`;
  const reply = r.lines.slice(2).find((l) => l.includes('"health"'));
  return reply && /^\{"return": \{"status": "[a-z-]+", "singlestep": false, "running": (true|false)\}, "id": "health"\}$/.test(reply) ? null : `health check: no query-status answer (${r.lines.slice(2).join(' | ').slice(0, 200)})`;
}

/**
 * Sends `bytes` of one value that never ends (a string in a request, no newline) in 1 MiB writes, all of
 * them: the client keeps writing after the server has refused the request at its limit and shut down its
 * side, and the server reads the rest and drops it, buffering no more than the limit.
 */
async function bigLine(address: string, bytes: number, timeoutMs: number): Promise<{ problem: string | null; ms: number; rssGrowth: number; sent: number }> {
  const socket = net.connect({ path: address.slice('unix:'.length), allowHalfOpen: true });
  let received = '';
  socket.setEncoding('utf8');
  socket.on('data', (t: string) => (received += t));
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  const rss0 = process.memoryUsage().rss;
  let rssMax = rss0;
  const started = performance.now();
  const chunk = Buffer.alloc(1 << 20, 0x61);
  socket.write('{"execute": "query-status", "id": "');
  let sent = 0;
  let gone = false;
  void closed.then(() => (gone = true));
  while (sent < bytes && !gone && !socket.destroyed) {
    const n = Math.min(chunk.length, bytes - sent);
    if (!socket.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
      await Promise.race([new Promise((resolve) => socket.once('drain', resolve)), closed]);
    }
    sent += n;
    if ((sent & ((16 << 20) - 1)) === 0) rssMax = Math.max(rssMax, process.memoryUsage().rss);
  }
  socket.end();
  const outcome = await Promise.race([closed.then(() => 'closed'), new Promise((resolve) => setTimeout(() => resolve('timeout'), timeoutMs).unref())]);
  const ms = performance.now() - started;
  socket.destroy();
  const rssGrowth = rssMax - rss0;
  if (outcome !== 'closed') return { problem: `a ${bytes}-byte line: the server did not close the connection`, ms, rssGrowth, sent };
  if (!/"desc": "JSON parse error, request exceeds the limit of \d+ bytes"/.test(received)) return { problem: `a ${bytes}-byte line: no size-limit error (${received.slice(-200)})`, ms, rssGrowth, sent };
  return { problem: null, ms, rssGrowth, sent };
}

/** Runs `count` hostile inputs through a QMP server, `concurrency` clients at once. */
export async function fuzzQmp(options: QmpFuzzOptions): Promise<QmpFuzzStats> {
  const concurrency = options.concurrency ?? 200;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const bigLineBytes = options.bigLineBytes ?? 100 << 20;
  const stats: QmpFuzzStats = {
    inputs: 0,
    connections: 0,
    concurrency,
    replies: 0,
    errorReplies: 0,
    closedByServer: 0,
    maxMs: 0,
    bigLines: 0,
    bigLineBytes,
    bigLineSent: 0,
    bigLineRssGrowth: 0,
    peakRss: process.memoryUsage().rss,
    healthChecks: 0,
    findings: [],
  };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmstate-qmp-fuzz-'));
  const vm = new FakeVm();
  const server = await startQmpServer(`unix:${path.join(dir, 'qmp.sock')}`, vm);
  const random = seededRandom(options.seed);
  const find = (f: string) => {
    if (stats.findings.length < 50) stats.findings.push(f);
  };
  try {
    for (let i = 0; i < (options.bigLines ?? 1); i++) {
      const r = await bigLine(server.address, bigLineBytes, 60_000);
      stats.bigLines++;
      stats.connections++;
      stats.bigLineSent = Math.max(stats.bigLineSent, r.sent);
      stats.bigLineRssGrowth = Math.max(stats.bigLineRssGrowth, r.rssGrowth);
      options.progress?.(
        `a ${bigLineBytes >> 20} MiB line: refused and closed in ${r.ms.toFixed(0)} ms, after ${(r.sent / 1048576).toFixed(0)} MiB were written; RSS grew ${(r.rssGrowth / 1048576).toFixed(0)} MiB meanwhile`,
      );
      if (r.problem) find(r.problem);
    }
    let next = 0;
    const stopAt = options.seconds === undefined ? Infinity : performance.now() + options.seconds * 1000;
    const inputs: HostileInput[] = [];
    const take = (): HostileInput | null => {
      if (next >= options.count || performance.now() >= stopAt) return null;
      const index = next++;
      // Inputs are made in order from one generator, whichever worker asks, so a seed is a replay.
      while (inputs.length <= index) inputs.push(hostileInput(random));
      const input = inputs[index];
      delete inputs[index];
      return input;
    };
    const worker = async () => {
      for (let input = take(); input !== null; input = take()) {
        const r = await exchange(server.address, input, timeoutMs);
        stats.inputs++;
        stats.connections++;
        stats.maxMs = Math.max(stats.maxMs, r.ms);
        const replies = r.lines.slice(input.negotiate ? 2 : 1).filter((l) => !l.startsWith('{"event"'));
        stats.replies += replies.length;
        stats.errorReplies += replies.filter((l) => l.startsWith('{"error"')).length;
        if (replies.some((l) => /exceeds the limit|nesting depth limit/.test(l))) stats.closedByServer++;
        if (r.problem) find(`${input.kind}: ${r.problem}: ${String(input.data).slice(0, 120)}`);
        const done = stats.inputs;
        if (done % 1000 === 0) {
          stats.peakRss = Math.max(stats.peakRss, process.memoryUsage().rss);
          const problem = await healthCheck(server.address);
          stats.healthChecks++;
          if (problem) find(problem);
          // Other clients have gone on meanwhile: `done` is this input's count.
          if (done % 5000 === 0) {
            options.progress?.(`${done} QMP inputs, max ${stats.maxMs.toFixed(0)} ms, peak RSS ${(stats.peakRss / 1048576).toFixed(0)} MiB, findings ${stats.findings.length}`);
          }
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    const problem = await healthCheck(server.address);
    stats.healthChecks++;
    if (problem) find(problem);
    stats.peakRss = Math.max(stats.peakRss, process.memoryUsage().rss);
  } finally {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return stats;
}
