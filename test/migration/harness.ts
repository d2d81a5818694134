// Shared pieces of the end-to-end migration tests: VM processes on loopback, a hand-written QMP
// connection, a cutting proxy and the in-process reference machine the survivors are compared with.
// Every wait is bounded; a Scope owns every process, connection, server and directory a test makes.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { listSections, openStreamFile, readVmdescFromFile, type SectionRow } from '../../src/analyze/index.js';
import { Machine, loadMachineDescription, type MachineDescription } from '../../src/machine/index.js';
import { QmpClient } from '../../src/qmp/index.js';
import { Arrivals } from '../support/arrivals.js';
import { cliPath, repoRoot } from '../support/paths.js';
import { seededRandom } from '../support/random.js';

/** What x-vmstate-query-workload returns. */
export interface Workload {
  readonly step: number;
  readonly 'ram-hash': string;
  readonly engines: string;
}

/** query-migrate's reply, loosely typed: the tests check the members they need. */
export interface MigrateInfo {
  readonly status?: string;
  readonly 'total-time'?: number;
  readonly downtime?: number;
  readonly 'setup-time'?: number;
  readonly 'expected-downtime'?: number;
  readonly 'error-desc'?: string;
  readonly ram?: Readonly<Record<string, number>>;
}

/** Statuses after which a migration does not change any more. */
export const FINAL_STATUSES: ReadonlySet<string> = new Set(['completed', 'failed', 'cancelled']);

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` every `everyMs` until it returns a value other than undefined; throws after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000, everyMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Rejects with a message naming `what` if `p` has not settled within `ms`. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** A kernel-chosen free TCP port on 127.0.0.1 (closed again before it is returned). */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', resolve);
  });
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** q35-default with a different RAM size (and name), written as a description file into `dir`. */
export function writeMachine(dir: string, ram: string): string {
  const json = JSON.parse(fs.readFileSync(path.join(repoRoot, 'machines', 'q35-default.json'), 'utf8')) as Record<string, unknown>;
  json.name = `q35-${ram.toLowerCase()}`;
  json.ram = ram;
  const file = path.join(dir, `q35-${ram.toLowerCase()}.json`);
  fs.writeFileSync(file, JSON.stringify(json, null, 2));
  return file;
}

/** Writes `bytes` seeded pseudo-random bytes (no zero pages, in practice) to DIR/NAME; returns the path. */
export function writeRandomFile(dir: string, name: string, bytes: number, seed: number): string {
  const next = seededRandom(seed);
  const words = new Uint32Array(bytes / 4);
  for (let i = 0; i < words.length; i++) words[i] = Math.floor(next() * 0x100000000);
  const file = path.join(dir, name);
  fs.writeFileSync(file, new Uint8Array(words.buffer));
  return file;
}

/** The section table of a stream saved to a file (offset, type, idstr, size of every section). */
export async function streamSections(file: string): Promise<{ rows: SectionRow[]; size: number }> {
  const stream = openStreamFile(file);
  try {
    const rows = await listSections(stream.source(), readVmdescFromFile(stream)?.vmdesc ?? null);
    return { rows, size: stream.size };
  } finally {
    stream.close();
  }
}

/** One `vmstate vm` child process and its QMP address. */
export interface VmHandle {
  readonly name: string;
  readonly child: ChildProcess;
  readonly qmp: string;
  /** Settles with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
  /** The last few KiB the process wrote to stderr. */
  log(): string;
}

/** A QMP connection that records every event it receives, in order. */
export interface Monitor {
  readonly client: QmpClient;
  readonly events: { readonly event: string; readonly data?: Readonly<Record<string, unknown>> }[];
}

/** Owns what a test starts, and releases all of it, in reverse order, whatever happened. */
export class Scope {
  private readonly cleanups: (() => Promise<void> | void)[] = [];
  readonly dir: string;
  private vmCount = 0;

  constructor(prefix = 'vmstate-migration-') {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    this.defer(() => fs.rmSync(this.dir, { recursive: true, force: true }));
  }

  /** Runs `fn` at close(). */
  defer(fn: () => Promise<void> | void): void {
    this.cleanups.push(fn);
  }

  /** Starts `vmstate vm MACHINE --qmp unix:DIR/NAME.qmp ARGS...`. */
  spawnVm(name: string, machine: string, args: readonly string[] = []): VmHandle {
    const qmp = `unix:${path.join(this.dir, `${name}-${this.vmCount++}.qmp`)}`;
    const child = spawn(process.execPath, [cliPath, 'vm', machine, '--qmp', qmp, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (d: string) => (err = (err + d).slice(-8000)));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    this.defer(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await within(exited, 5000, `${name} to die`).catch(() => undefined);
      }
    });
    return { name, child, qmp, exited, log: () => err.trim() };
  }

  /**
   * Starts a destination waiting on `tcp:127.0.0.1:0` (the port it got is read from its log, so no port
   * can be stolen in between) or on a unix socket in the scope's directory; resolves with its URI.
   */
  async spawnDestination(name: string, machine: string, transport: 'tcp' | 'unix', args: readonly string[] = []): Promise<{ vm: VmHandle; uri: string }> {
    if (transport === 'unix') {
      const uri = `unix:${path.join(this.dir, `${name}-${this.vmCount}.mig`)}`;
      return { vm: this.spawnVm(name, machine, ['--incoming', uri, ...args]), uri };
    }
    const vm = this.spawnVm(name, machine, ['--incoming', 'tcp:127.0.0.1:0', ...args]);
    const uri = await waitFor(
      `${name} to listen`,
      () => {
        if (vm.child.exitCode !== null) throw new Error(`${name} exited early (${vm.child.exitCode}): ${vm.log()}`);
        return /waiting for an incoming migration on (tcp:127\.0\.0\.1:\d+)/.exec(vm.log())?.[1];
      },
      15_000,
    );
    return { vm, uri };
  }

  /** Connects a QmpClient once the VM listens (bounded); events are recorded in `events`. */
  async monitor(vm: VmHandle, timeoutMs = 15_000): Promise<Monitor> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (vm.child.exitCode !== null) throw new Error(`${vm.name} exited early (${vm.child.exitCode}): ${vm.log()}`);
      try {
        const client = await QmpClient.connect(vm.qmp, { timeoutMs: 10_000 });
        this.defer(() => client.close());
        const events: Monitor['events'] = [];
        client.on('event', (e) => events.push({ event: e.event, data: e.data }));
        return { client, events };
      } catch (e) {
        if (Date.now() > deadline) throw new Error(`cannot connect to ${vm.name} at ${vm.qmp}: ${(e as Error).message}; ${vm.log()}`);
        await sleep(25);
      }
    }
  }

  /** Runs every cleanup, last first; never throws. */
  async close(): Promise<void> {
    for (const fn of this.cleanups.reverse()) {
      try {
        await fn();
      } catch {
        // Cleaning up goes on.
      }
    }
    this.cleanups.length = 0;
  }
}

/** Runs `body` with a fresh Scope and always closes it. */
export async function withScope<T>(body: (s: Scope) => Promise<T>): Promise<T> {
  const scope = new Scope();
  try {
    return await body(scope);
  } finally {
    await scope.close();
  }
}

/** query-migrate until the status is final (each reply to `onInfo`); returns the last reply. A timeout names the status it stuck in. */
export async function waitForMigration(client: QmpClient, timeoutMs = 20_000, everyMs = 20, onInfo?: (info: MigrateInfo) => void): Promise<MigrateInfo> {
  let last: MigrateInfo = {};
  try {
    return await waitFor(
      'the migration to end',
      async () => {
        last = await client.execute<MigrateInfo>('query-migrate');
        onInfo?.(last);
        return last.status !== undefined && FINAL_STATUSES.has(last.status) ? last : undefined;
      },
      timeoutMs,
      everyMs,
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}; query-migrate still says ${JSON.stringify({ status: last.status, transferred: last.ram?.transferred })}`);
  }
}

/** Turns the events capability on and sets the given parameters. */
export async function prepareSource(client: QmpClient, params: Readonly<Record<string, number>> = {}): Promise<void> {
  await client.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
  if (Object.keys(params).length > 0) await client.execute('migrate-set-parameters', params);
}

/** x-vmstate-query-workload. */
export async function queryWorkload(client: QmpClient): Promise<Workload> {
  return client.execute<Workload>('x-vmstate-query-workload');
}

/** query-status's run state. */
export async function queryStatus(client: QmpClient): Promise<string> {
  return (await client.execute<{ status: string }>('query-status')).status;
}

/**
 * A machine booted in this process and run forward on demand: what a VM that never migrated holds at
 * a given step. Steps only go forward, so one instance serves a whole test.
 */
export class ReferenceMachine {
  private readonly machine: Machine;

  /** `loaders` are the VM's `--loader FILE@ADDR` options, copied into RAM after boot as the VM does. */
  constructor(description: MachineDescription | string, loaders: readonly { readonly file: string; readonly addr: number }[] = []) {
    this.machine = new Machine(typeof description === 'string' ? loadMachineDescription(description) : description);
    this.machine.boot();
    for (const l of loaders) this.machine.ram.write(l.addr, fs.readFileSync(l.file));
  }

  /** The workload as x-vmstate-query-workload reports it, at `step`. */
  at(step: number): Workload {
    if (step < this.machine.step) throw new Error(`the reference machine is at step ${this.machine.step}, past ${step}`);
    this.machine.run(step - this.machine.step);
    const engines = this.machine.engines.map((e) => `${e.fn.path}:${e.state.status}:${e.state.checksum}:${e.state.completed}:${e.state.faults}`).join(';');
    return { step: this.machine.step, 'ram-hash': this.machine.ramHash(), engines };
  }
}

/**
 * Checks that a VM that was (or tried to be) a migration source runs on as if nothing happened: it is
 * running, its step goes up, and its workload equals the reference machine's at the step it reports.
 * Returns the workload it read last.
 */
export async function assertRunsOnIntact(client: QmpClient, reference: ReferenceMachine, what: string): Promise<Workload> {
  const status = await queryStatus(client);
  if (status !== 'running') throw new Error(`${what}: the source is ${status}, not running`);
  const first = await queryWorkload(client);
  const later = await waitFor(
    `${what}: the source's step to go up from ${first.step}`,
    async () => {
      const w = await queryWorkload(client);
      return w.step > first.step ? w : undefined;
    },
    5000,
  );
  const expected = reference.at(later.step);
  if (later['ram-hash'] !== expected['ram-hash'] || later.engines !== expected.engines) {
    throw new Error(`${what}: at step ${later.step} the source's state differs from a machine that never migrated`);
  }
  return later;
}

/**
 * QMP spoken by hand over a socket: lines of JSON in, lines of JSON out (the protocol in
 * src/qmp/server.ts), with no code shared with QmpClient.
 */
export class RawQmpConnection {
  private buffered = '';
  private readonly messages = new Arrivals<Record<string, unknown>>('QMP message');
  private nextId = 1;
  /** Every event seen so far, in order of arrival. */
  readonly events: { event: string; data?: Record<string, unknown> }[] = [];

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      this.buffered += text;
      let at: number;
      while ((at = this.buffered.indexOf('\n')) >= 0) {
        const line = this.buffered.slice(0, at).trim();
        this.buffered = this.buffered.slice(at + 1);
        if (!line) continue;
        const msg = JSON.parse(line) as Record<string, unknown>;
        if (typeof msg.event === 'string') this.events.push({ event: msg.event, data: msg.data as Record<string, unknown> | undefined });
        this.messages.push(msg);
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => this.messages.end());
  }

  /** Connects to `unix:PATH`, reads the greeting and negotiates; retries until the server listens. */
  static async connect(address: string, timeoutMs = 15_000): Promise<RawQmpConnection> {
    if (!address.startsWith('unix:')) throw new Error(`only unix: addresses here, got ${address}`);
    const deadline = Date.now() + timeoutMs;
    let socket: net.Socket;
    for (;;) {
      try {
        socket = await new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect({ path: address.slice('unix:'.length) });
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        });
        break;
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await sleep(25);
      }
    }
    const conn = new RawQmpConnection(socket);
    const greeting = await conn.nextMessage(5000);
    if (typeof greeting.QMP !== 'object' || greeting.QMP === null) throw new Error(`no QMP greeting but ${JSON.stringify(greeting)}`);
    const reply = await conn.roundTrip({ execute: 'qmp_capabilities' });
    if (JSON.stringify(reply) !== '{"return":{}}') throw new Error(`qmp_capabilities answered ${JSON.stringify(reply)}`);
    return conn;
  }

  /** The next message of any kind. */
  nextMessage(timeoutMs: number): Promise<Record<string, unknown>> {
    return this.messages.next(timeoutMs);
  }

  /** Sends one request without waiting. */
  send(request: Record<string, unknown>): void {
    this.socket.write(JSON.stringify(request) + '\n');
  }

  /** Sends a request and returns the reply carrying its id (events in between are recorded, not returned). */
  async roundTrip(request: Record<string, unknown>, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    this.send({ ...request, id });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const msg = await this.nextMessage(Math.max(1, deadline - Date.now()));
      if (msg.id === id) {
        const { id: _id, ...rest } = msg;
        return rest;
      }
    }
  }

  /** Runs a command; returns `return`, throws on an `error` reply. */
  async execute<T>(command: string, args?: Record<string, unknown>): Promise<T> {
    const reply = await this.roundTrip(args === undefined ? { execute: command } : { execute: command, arguments: args });
    if ('error' in reply) throw new Error(`${command}: ${JSON.stringify(reply.error)}`);
    return reply.return as T;
  }

  /** Waits for an event named `name` whose data satisfies `match`, among those already seen or still to come. */
  async waitForEvent(name: string, match: (data: Record<string, unknown> | undefined) => boolean, timeoutMs: number): Promise<void> {
    await waitFor(`event ${name}`, () => (this.events.some((e) => e.event === name && match(e.data)) ? true : undefined), timeoutMs, 10);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Options of a ForwardingProxy. */
export interface ProxyOptions {
  /** Drop the connection once this many bytes went from the source to the destination. */
  readonly cutAfter?: number;
  /**
   * How the source's side is dropped at the cut: `reset` (RST, as when the peer dies with data unread)
   * or `close` (an orderly FIN, reading and discarding whatever the source still sends, as when the peer
   * exits after reading everything). The destination's side is always just closed. Defaults to reset.
   */
  readonly cutWith?: 'reset' | 'close';
  /** Forward at most this many bytes per second from the source (it then stalls on back-pressure). */
  readonly bytesPerSecond?: number;
  /** Listen on this unix socket path instead of a TCP port on 127.0.0.1 (unix sockets buffer far less). */
  readonly listenPath?: string;
  /** Keep a copy of every byte forwarded from the source (`tapped()`) and back (`tappedBack()`). Defaults to false. */
  readonly tap?: boolean;
  /** Drop the connection once this many bytes went back from the destination to the source (the return path). */
  readonly cutAfterReturned?: number;
  /** Once `returned` bytes went back to the source, drop the connection when `then` more went forward. */
  readonly cutAfterAnswer?: { readonly returned: number; readonly then: number };
  /**
   * Hold back the last `held` bytes the source sent; once it sent nothing for `quietMs` (a source
   * waiting for an answer), drop the connection without them: a cut `held` bytes before where it paused.
   */
  readonly cutBeforePause?: { readonly held: number; readonly quietMs: number };
}

/** Where a proxy forwards to: a TCP port on 127.0.0.1 or a unix socket path. */
export type ProxyTarget = { readonly port: number } | { readonly path: string };

/**
 * A one-connection TCP proxy on 127.0.0.1 between a migration source and its destination. It forwards
 * both ways, counts the source's bytes, can cut the connection after a given number of them, can
 * throttle, and can stop reading from the source altogether (hold()).
 */
export class ForwardingProxy {
  /** Bytes forwarded from the source to the destination. */
  forwarded = 0;
  /** Bytes forwarded back from the destination to the source. */
  returned = 0;
  /** Set once the proxy destroyed the connection itself. */
  cut = false;
  /** performance.now() when the source's first and (so far) last bytes arrived. */
  firstByteAt = 0;
  lastByteAt = 0;
  private held = false;
  private readonly copies: Buffer[] = [];
  private readonly backCopies: Buffer[] = [];
  /** Where the source's bytes are cut (cutAfter, or cutAfterAnswer once it is known). */
  private cutAt: number | undefined;
  /** cutBeforePause: bytes received and not forwarded yet, and the timer that ends the wait. */
  private pending: Buffer = Buffer.alloc(0);
  private quiet: NodeJS.Timeout | undefined;
  private bytesPerSecond: number | undefined;
  private upstream: net.Socket | undefined;
  private downstream: net.Socket | undefined;
  private readonly server: net.Server;

  private constructor(
    private readonly target: ProxyTarget,
    private readonly options: ProxyOptions,
  ) {
    this.bytesPerSecond = options.bytesPerSecond;
    this.cutAt = options.cutAfter;
    this.server = net.createServer((sock) => this.accept(sock));
  }

  /** Listens on 127.0.0.1 (a free port) or `options.listenPath` and forwards the first connection to `target`. */
  static async start(scope: Scope, target: ProxyTarget, options: ProxyOptions = {}): Promise<ForwardingProxy> {
    const proxy = new ForwardingProxy(target, options);
    await new Promise<void>((resolve, reject) => {
      proxy.server.once('error', reject);
      if (options.listenPath !== undefined) proxy.server.listen(options.listenPath, resolve);
      else proxy.server.listen(0, '127.0.0.1', resolve);
    });
    scope.defer(() => proxy.close());
    return proxy;
  }

  /** The migration URI of the proxy. */
  get uri(): string {
    if (this.options.listenPath !== undefined) return `unix:${this.options.listenPath}`;
    return `tcp:127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  /** What the source sent, with the `tap` option: the stream as it went over the wire. */
  tapped(): Buffer {
    return Buffer.concat(this.copies);
  }

  /** With the `tap` option: what the destination sent back (the return path). */
  tappedBack(): Buffer {
    return Buffer.concat(this.backCopies);
  }

  /** Stops reading from the source: its writes pile up in the kernel and then block. */
  hold(): void {
    this.held = true;
    this.upstream?.pause();
  }

  /** Reads from the source again, unthrottled: what it sent, and its end, reach the destination. */
  release(): void {
    this.held = false;
    this.bytesPerSecond = undefined;
    this.upstream?.resume();
  }

  close(): void {
    clearTimeout(this.quiet);
    this.server.close();
    this.upstream?.destroy();
    this.downstream?.destroy();
  }

  private accept(up: net.Socket): void {
    this.server.close(); // one connection, as a migration has
    this.upstream = up;
    up.pause();
    const down = 'port' in this.target ? net.connect(this.target.port, '127.0.0.1') : net.connect(this.target.path);
    this.downstream = down;
    up.on('error', () => down.destroy());
    down.on('error', () => {
      if (!this.cut) up.destroy();
    });
    up.on('end', () => down.end());
    down.on('end', () => {
      if (!this.cut) up.end();
    });
    down.on('data', (d: Buffer) => this.back(up, down, d));
    down.once('connect', () => {
      if (!this.held) up.resume();
    });
    up.on('data', (d: Buffer) => this.forward(up, down, d));
  }

  /**
   * Drops both connections after `toDestination` reached the destination (and `toSource` the source). Both
   * directions stop at once: nothing the proxy reads afterwards goes anywhere.
   */
  private dropBoth(up: net.Socket, down: net.Socket, toDestination: Buffer, toSource: Buffer): void {
    this.cut = true;
    clearTimeout(this.quiet);
    up.pause();
    let waiting = 2;
    const drop = () => {
      if (--waiting > 0) return;
      down.destroy();
      if (this.options.cutWith === 'close') {
        up.removeAllListeners('data');
        up.on('data', () => undefined); // nothing left unread, so the close is a FIN, not a RST
        up.resume();
        up.end();
      } else {
        up.resetAndDestroy();
      }
    };
    down.write(toDestination, drop);
    up.write(toSource, drop);
  }

  /** Bytes from the destination to the source (the return path). */
  private back(up: net.Socket, down: net.Socket, d: Buffer): void {
    if (this.cut) return;
    const limit = this.options.cutAfterReturned;
    if (limit !== undefined && this.returned + d.length >= limit) {
      const part = d.subarray(0, limit - this.returned);
      this.returned += part.length;
      if (this.options.tap) this.backCopies.push(part);
      this.dropBoth(up, down, Buffer.alloc(0), part);
      return;
    }
    this.returned += d.length;
    if (this.options.tap) this.backCopies.push(d);
    up.write(d);
    const answer = this.options.cutAfterAnswer;
    if (answer !== undefined && this.cutAt === undefined && this.returned >= answer.returned) this.cutAt = this.forwarded + answer.then;
  }

  private forward(up: net.Socket, down: net.Socket, d: Buffer): void {
    if (this.cut) return;
    this.lastByteAt = performance.now();
    if (this.firstByteAt === 0) this.firstByteAt = this.lastByteAt;
    const pause = this.options.cutBeforePause;
    if (pause !== undefined) {
      // Keep the last `held` bytes back until more come; when none come for a while, drop the connection.
      this.pending = Buffer.concat([this.pending, d]);
      clearTimeout(this.quiet);
      this.quiet = setTimeout(() => this.dropBoth(up, down, Buffer.alloc(0), Buffer.alloc(0)), pause.quietMs);
      if (this.pending.length <= pause.held) return;
      d = this.pending.subarray(0, this.pending.length - pause.held);
      this.pending = this.pending.subarray(this.pending.length - pause.held);
    }
    const limit = this.cutAt;
    if (limit !== undefined && this.forwarded + d.length >= limit) {
      // Send what is below the cut, then drop both connections mid-stream.
      const part = d.subarray(0, limit - this.forwarded);
      this.forwarded += part.length;
      this.dropBoth(up, down, part, Buffer.alloc(0));
      return;
    }
    this.forwarded += d.length;
    if (this.options.tap) this.copies.push(d);
    const drained = down.write(d);
    const bps = this.bytesPerSecond;
    if (bps !== undefined || !drained) {
      up.pause();
      const wait = bps === undefined ? 0 : (d.length / bps) * 1000;
      const resume = () => {
        if (!this.held && !this.cut) up.resume();
      };
      if (!drained) down.once('drain', () => setTimeout(resume, wait));
      else setTimeout(resume, wait);
    }
  }
}

/** The destination of an attempt that must not succeed: its process and its QMP monitor. */
export interface AbortedDestination {
  readonly vm: VmHandle;
  readonly monitor: Monitor;
}

/**
 * Checks that a destination whose migration did not complete exits non-zero (within `timeoutMs`) and
 * never resumed its guest (no RESUME event on its monitor; it was started without --paused, so a load
 * that completed would have resumed). Returns the exit code.
 */
export async function assertDestinationGaveUp(d: AbortedDestination, what: string, timeoutMs = 5000): Promise<number | null> {
  const code = await within(d.vm.exited, timeoutMs, `${what}: the destination to exit`);
  if (code === 0) throw new Error(`${what}: the destination exited 0: ${d.vm.log()}`);
  const resumed = d.monitor.events.filter((e) => e.event === 'RESUME');
  if (resumed.length > 0) throw new Error(`${what}: the destination resumed before it exited`);
  return code;
}

/**
 * Migrates `source` to a fresh paused destination with no bandwidth limit and checks the destination
 * holds the source's state at switch-over (and, given a reference, a never-migrated machine's).
 */
export async function migrateToFreshDestination(scope: Scope, source: QmpClient, machine: string, reference?: ReferenceMachine): Promise<MigrateInfo> {
  const { vm, uri } = await scope.spawnDestination('fresh-destination', machine, 'tcp', ['--paused']);
  const dst = await scope.monitor(vm);
  await source.execute('migrate-set-parameters', { 'max-bandwidth': 0, 'downtime-limit': 300 });
  await source.execute('migrate', { uri });
  const info = await waitForMigration(source, 20_000);
  if (info.status !== 'completed') throw new Error(`the migration to a fresh destination ended ${info.status}: ${info['error-desc'] ?? ''}`);
  await waitFor('the fresh destination to load', async () => ((await queryStatus(dst.client)) === 'paused' ? true : undefined), 10_000);
  const atSwitchover = await queryWorkload(source);
  const arrived = await queryWorkload(dst.client);
  if (JSON.stringify(arrived) !== JSON.stringify(atSwitchover)) {
    throw new Error(`the fresh destination holds ${JSON.stringify(arrived)}, the source had ${JSON.stringify(atSwitchover)}`);
  }
  if (reference && JSON.stringify(arrived) !== JSON.stringify(reference.at(arrived.step))) {
    throw new Error(`the fresh destination's state at step ${arrived.step} differs from a machine that never migrated`);
  }
  return info;
}

/** The MIGRATION statuses among recorded events, in order. */
export function migrationStatuses(events: Monitor['events']): string[] {
  return events.filter((e) => e.event === 'MIGRATION').map((e) => String(e.data?.status));
}
