/**
 * What the migration benchmarks share: the 900 MiB of random data both guests hold, a 1 GiB copy of the
 * default machine, child processes killed at exit, free ports and QMP connections that wait for the
 * process to listen.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { QmpClient } from '../src/qmp/index.js';
import { withHugePages } from '../src/cli/huge-pages.js';

export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The `vmstate` command as built. */
export const cli = path.join(repo, 'dist', 'src', 'cli', 'vmstate.cjs');
export const RANDOM_BYTES = 900 << 20;

/** The 900 MiB random file, made once under the OS temp folder. */
export function randomFile(): string {
  const cache = path.join(os.tmpdir(), 'vmstate-bench');
  fs.mkdirSync(cache, { recursive: true });
  const random = path.join(cache, 'random-900M.bin');
  if (!fs.existsSync(random) || fs.statSync(random).size !== RANDOM_BYTES) {
    process.stderr.write('making 900 MiB of random data...\n');
    const fd = fs.openSync(random, 'w');
    for (let i = 0; i < RANDOM_BYTES; i += 16 << 20) fs.writeSync(fd, crypto.randomBytes(Math.min(16 << 20, RANDOM_BYTES - i)));
    fs.closeSync(fd);
  }
  return random;
}

const children: ChildProcess[] = [];
const dirs: string[] = [];
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** A folder removed at exit. */
export function workDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

/** The default machine with 1 GiB of RAM, written to `dir`. */
export function machine1G(dir: string): string {
  const file = path.join(dir, 'q35-1g.json');
  const desc = JSON.parse(fs.readFileSync(path.join(repo, 'machines', 'q35-default.json'), 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(file, JSON.stringify({ ...desc, name: 'q35-1g', ram: '1G' }));
  return file;
}

/**
 * Starts a process that is killed when the benchmark exits: stdout dropped and stderr shown, or both
 * piped to the caller with `pipe`.
 */
export function start(cmd: string, args: string[], options: { env?: NodeJS.ProcessEnv; pipe?: boolean } = {}): ChildProcess {
  const c = spawn(cmd, args, { stdio: options.pipe ? ['ignore', 'pipe', 'pipe'] : ['ignore', 'ignore', 'inherit'], env: options.env ?? process.env });
  children.push(c);
  return c;
}

/** `vmstate vm ARGS`, as the installed command runs it: with guest RAM in huge pages (src/cli/huge-pages.ts). */
export function startVmstate(args: string[]): ChildProcess {
  return start(process.execPath, [cli, 'vm', ...args], { env: withHugePages(process.env) });
}

export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

/** Connects to a QMP server that may not listen yet (up to 60 s: a source loads 900 MiB first). */
export async function connectQmp(address: string): Promise<QmpClient> {
  for (let i = 0; ; i++) {
    try {
      return await QmpClient.connect(address);
    } catch (e) {
      if (i > 1200) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

/** What the benches read of query-migrate. */
export interface MigrateInfo {
  status: string;
  'total-time'?: number;
  downtime?: number;
  ram?: { transferred?: number; 'dirty-pages-rate'?: number; 'dirty-sync-count'?: number };
}

/**
 * query-migrate every `everyMs` until the migration ends, each reply to `onInfo`; the last reply, or
 * null once `timeoutMs` has passed with the migration still going.
 */
export async function pollMigration(
  client: QmpClient,
  o: { everyMs?: number; timeoutMs?: number; onInfo?: (info: MigrateInfo) => void } = {},
): Promise<MigrateInfo | null> {
  const t0 = performance.now();
  for (;;) {
    const info = await client.execute<MigrateInfo>('query-migrate');
    o.onInfo?.(info);
    if (info.status === 'completed' || info.status === 'failed' || info.status === 'cancelled') return info;
    if (o.timeoutMs !== undefined && performance.now() - t0 > o.timeoutMs) return null;
    await new Promise((r) => setTimeout(r, o.everyMs ?? 20));
  }
}

/** Quits each QMP client's VM (once, though a client be given twice), closes it, and kills the processes. */
export async function quitAll(clients: readonly QmpClient[], procs: readonly ChildProcess[]): Promise<void> {
  for (const c of new Set(clients)) {
    await c.execute('quit').catch(() => undefined);
    await c.close().catch(() => undefined);
  }
  for (const p of procs) p.kill();
}
