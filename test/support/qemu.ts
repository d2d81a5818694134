// Test helpers that drive a real QEMU over QMP: find the binary (the distribution's 7.2 on PATH, or
// QEMU 10.0 from scripts/qemu-10.sh), start it with a QMP unix socket, migrate its state into a
// file, and load a file back with -incoming.
//
// QMP protocol as used here (docs/interop/qmp-spec.txt in the QEMU tree):
//   1. server -> {"QMP": {"version": ..., "capabilities": [...]}}        (greeting, on connect)
//   2. client -> {"execute": "qmp_capabilities", "id": N}                (leave negotiation mode)
//   3. client -> {"execute": CMD, "arguments": {...}, "id": N}
//      server -> {"return": ..., "id": N} | {"error": {"class", "desc"}, "id": N}
//   Asynchronous {"event": NAME, "data": {...}, "timestamp": {...}} may arrive at any time.
//   Every message is one line of JSON ending in "\r\n".
//
// Everything here is bounded by a timeout so that a wedged QEMU fails a test instead of hanging it.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, existsSync, rmSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { qemu10Script } from './paths.js';

/** A JSON value as QMP sends it. */
export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
/** A JSON object as QMP sends it. */
export interface JsonObject {
  [key: string]: JsonValue;
}

/** An asynchronous QMP event. */
export interface QmpEvent {
  event: string;
  data?: JsonObject;
  timestamp?: { seconds: number; microseconds: number };
}

/** The part of a test context the skip helpers need (node:test's TestContext fits). */
export interface Skippable {
  skip(message?: string): void;
}

/** Whether a missing QEMU (or its source tree) must fail the test instead of skipping it. */
export function qemuRequired(): boolean {
  return process.env.VMSTATE_REQUIRE_QEMU === '1';
}

/** The absolute path of an executable QEMU binary (`name` is looked up on PATH), or null. */
export function qemuBinary(name: string): string | null {
  const candidates = path.isAbsolute(name)
    ? [name]
    : (process.env.PATH ?? '')
        .split(path.delimiter)
        .filter((dir) => dir !== '')
        .map((dir) => path.resolve(dir, name));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not here; keep looking
    }
  }
  return null;
}

/**
 * The binary's path, or null after skipping the test when it is missing.
 * With VMSTATE_REQUIRE_QEMU=1 a missing binary throws, so CI cannot pass by skipping.
 */
export function qemuOrSkip(t: Skippable, name: string): string | null {
  const found = qemuBinary(name);
  if (found !== null) return found;
  const message = `${name} not found on PATH`;
  if (qemuRequired()) throw new Error(`${message} (VMSTATE_REQUIRE_QEMU=1)`);
  t.skip(message);
  return null;
}

/**
 * `get()`'s value, or null after skipping the test with the message of what `get` threw.
 * With VMSTATE_REQUIRE_QEMU=1 the error is thrown instead, so CI cannot pass by skipping.
 */
export function orSkip<T>(t: Skippable, get: () => T): T | null {
  try {
    return get();
  } catch (err) {
    if (qemuRequired()) throw err;
    t.skip(err instanceof Error ? err.message : String(err));
    return null;
  }
}

/**
 * Runs one of the project's fetch scripts (`scripts/qemu-*.sh`) and returns what it printed.
 * Throws with its stderr, naming `what` it was to provide. The first run may download with
 * apt-get, hence the generous bound.
 */
export function runFetchScript(script: string, what: string): string {
  const result = spawnSync('bash', [script], { encoding: 'utf8', timeout: 300_000, maxBuffer: 1 << 20 });
  if (result.error !== undefined || result.status !== 0) {
    const why = result.error?.message ?? `exit status ${result.status}`;
    const required = qemuRequired() ? ' (VMSTATE_REQUIRE_QEMU=1)' : '';
    throw new Error(`${script} failed (${why}), so ${what} is unavailable${required}: ${(result.stderr ?? '').trim()}`);
  }
  return result.stdout;
}

/** A QEMU to run: its binary, with the arguments and environment it needs before the test's own. */
export interface QemuCommand {
  binary: string;
  /** Arguments that go first, before the test's. */
  args: readonly string[];
  /** Variables added to QEMU's environment. */
  env: Readonly<Record<string, string>>;
}

/** Where scripts/qemu-10.sh unpacked QEMU 10.0 (see the top of that script). */
export interface Qemu10 {
  /** The upstream version, e.g. "10.0.2". */
  version: string;
  /** The folder holding qemu-system-x86_64 and qemu-system-aarch64. */
  bin: string;
  /** QEMU_MODULE_DIR for these binaries. */
  moduleDir: string;
  /** Their own firmware and data folder, the first -L. */
  dataDir: string;
  /** QEMU 10.0's source tree (its scripts/ folder). */
  source: string;
}

/**
 * QEMU 10.0 from Debian's bookworm-backports, which scripts/qemu-10.sh fetches into a cache folder
 * outside the repository the first time. Throws when it cannot be had; one try per process.
 */
export const qemu10: () => Qemu10 = once(() => {
  const get = fetchScriptValues(qemu10Script, 'QEMU 10.0');
  return { version: get('version'), bin: get('bin'), moduleDir: get('module_dir'), dataDir: get('data_dir'), source: get('source') };
});

/** `make`'s result, made on the first call and kept, a failure too: one try per process. */
export function once<T>(make: () => T): () => T {
  let kept: { value: T } | { error: unknown } | undefined;
  return () => {
    kept ??= (() => {
      try {
        return { value: make() };
      } catch (error) {
        return { error };
      }
    })();
    if ('error' in kept) throw kept.error;
    return kept.value;
  };
}

/** Runs a fetch script (see runFetchScript) and reads the KEY=VALUE lines it prints; a key it left out or empty throws. */
export function fetchScriptValues(script: string, what: string): (key: string) => string {
  const printed = new Map<string, string>();
  for (const line of runFetchScript(script, what).split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) printed.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return (key) => {
    const value = printed.get(key);
    if (value === undefined || value === '') throw new Error(`${script} printed no ${key}=`);
    return value;
  };
}

/** The QEMU 10.0 binaries the tests run. */
export type Qemu10Binary = 'qemu-system-x86_64' | 'qemu-system-aarch64';

/**
 * How to run QEMU 10.0's `name`: with its own modules (QEMU_MODULE_DIR), its own firmware first, then
 * the system's SeaBIOS and iPXE ROMs as 7.2 uses them, and `-audio none` (else it probes audio
 * drivers, and with 7.2's modules found instead of its own it aborts).
 */
export function qemu10Command(name: Qemu10Binary): QemuCommand {
  const q = qemu10();
  return {
    binary: path.join(q.bin, name),
    args: ['-L', q.dataDir, '-L', '/usr/share/seabios', '-L', '/usr/lib/ipxe/qemu', '-audio', 'none'],
    env: { QEMU_MODULE_DIR: q.moduleDir },
  };
}

/** {@link qemu10Command}, or null after skipping the test when QEMU 10.0 cannot be had (fails under VMSTATE_REQUIRE_QEMU=1). */
export function qemu10OrSkip(t: Skippable, name: Qemu10Binary): QemuCommand | null {
  return orSkip(t, () => qemu10Command(name));
}

/** Quotes a string for /bin/sh (QEMU runs `exec:` URIs with `/bin/sh -c`). */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** Escapes a value for a QEMU `-opt key=value,...` list, where a literal comma is doubled. */
function qemuOptValue(value: string): string {
  return value.replace(/,/g, ',,');
}

/** Resolves with `promise`, or rejects with `message` after `ms`; never keeps the process alive. */
async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
    timer.unref();
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A command that QEMU answered with an error. */
export class QmpCommandError extends Error {
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly desc: string,
  ) {
    super(`QMP ${command} failed: ${errorClass}: ${desc}`);
    this.name = 'QmpCommandError';
  }
}

interface Pending {
  command: string;
  resolve: (value: JsonValue) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/** Options for {@link QmpClient.connect}. */
export interface QmpConnectOptions {
  /** Bound on connecting, the greeting and qmp_capabilities. Defaults to 10 s. */
  timeoutMs?: number;
  /** Extra context (e.g. QEMU's stderr) appended to "connection closed" errors. */
  describe?: () => string;
}

/** A QMP client over a unix socket, speaking raw line-delimited JSON. */
export class QmpClient {
  /** Every event received so far, in arrival order. */
  readonly events: QmpEvent[] = [];
  /** The server's greeting (`{"QMP": ...}`). */
  greeting: JsonObject | undefined;

  private buffer = '';
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private closedError: Error | undefined;
  private readonly greetingWaiters: Array<() => void> = [];
  private readonly eventWaiters = new Set<() => void>();

  private constructor(
    private readonly socket: net.Socket,
    private readonly describe: () => string,
  ) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (err) => this.onClose(err));
    socket.on('close', () => this.onClose(undefined));
  }

  /** Connects, waits for the greeting and leaves capabilities negotiation mode. */
  static async connect(socketPath: string, options: QmpConnectOptions = {}): Promise<QmpClient> {
    const timeoutMs = options.timeoutMs ?? 10_000;
    const describe = options.describe ?? (() => '');
    const socket = net.createConnection(socketPath);
    try {
      await withTimeout(
        new Promise<void>((resolve, reject) => {
          socket.once('connect', () => resolve());
          socket.once('error', reject);
        }),
        timeoutMs,
        `QMP connect to ${socketPath} timed out after ${timeoutMs} ms`,
      );
    } catch (err) {
      socket.destroy();
      throw err;
    }
    const client = new QmpClient(socket, describe);
    try {
      await withTimeout(client.waitForGreeting(), timeoutMs, `no QMP greeting within ${timeoutMs} ms`);
      await client.execute('qmp_capabilities', undefined, { timeoutMs });
    } catch (err) {
      client.close();
      throw err;
    }
    return client;
  }

  /** Runs a command; resolves with its `return` value, rejects with a {@link QmpCommandError}. */
  execute(command: string, args?: JsonObject, options: { timeoutMs?: number } = {}): Promise<JsonValue> {
    if (this.closedError !== undefined) return Promise.reject(this.closedError);
    const timeoutMs = options.timeoutMs ?? 10_000;
    const id = `vmstate-${this.nextId++}`;
    const message: JsonObject = { execute: command, id };
    if (args !== undefined) message.arguments = args;
    return new Promise<JsonValue>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`QMP ${command} got no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      this.pending.set(id, { command, resolve, reject, timer });
      this.socket.write(`${JSON.stringify(message)}\n`);
    });
  }

  /** Resolves with the first event named `name` (already received or future) that matches. */
  async waitForEvent(
    name: string,
    timeoutMs: number,
    matches: (event: QmpEvent) => boolean = () => true,
  ): Promise<QmpEvent> {
    const find = (): QmpEvent | undefined => this.events.find((e) => e.event === name && matches(e));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = find();
      if (found !== undefined) return found;
      if (this.closedError !== undefined) throw this.closedError;
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`no QMP event ${name} within ${timeoutMs} ms`);
      let wake: () => void = () => {};
      try {
        await withTimeout(
          new Promise<void>((resolve) => {
            wake = resolve;
            this.eventWaiters.add(resolve);
          }),
          remaining,
          `no QMP event ${name} within ${timeoutMs} ms`,
        );
      } finally {
        this.eventWaiters.delete(wake);
      }
    }
  }

  /** Closes the socket; outstanding commands are rejected. */
  close(): void {
    this.socket.destroy();
    this.onClose(undefined);
  }

  private waitForGreeting(): Promise<void> {
    if (this.greeting !== undefined) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      if (this.closedError !== undefined) {
        reject(this.closedError);
        return;
      }
      this.greetingWaiters.push(resolve);
      // A close before the greeting is reported through the same waiter list.
      this.socket.once('close', () => reject(this.closedError ?? new Error('QMP connection closed')));
    });
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    let newline: number;
    while ((newline = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, newline).trim();
      this.buffer = this.buffer.slice(newline + 1);
      if (line !== '') this.onMessage(line);
    }
  }

  private onMessage(line: string): void {
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch {
      this.onClose(new Error(`QMP sent invalid JSON: ${line.slice(0, 200)}`));
      return;
    }
    if (!isObject(message)) return;
    if (isObject(message.QMP)) {
      this.greeting = message;
      for (const waiter of this.greetingWaiters.splice(0)) waiter();
      return;
    }
    if (typeof message.event === 'string') {
      const event: QmpEvent = { event: message.event };
      if (isObject(message.data)) event.data = message.data;
      const ts = message.timestamp;
      if (isObject(ts) && typeof ts.seconds === 'number' && typeof ts.microseconds === 'number') {
        event.timestamp = { seconds: ts.seconds, microseconds: ts.microseconds };
      }
      this.events.push(event);
      for (const waiter of [...this.eventWaiters]) waiter();
      return;
    }
    const id = typeof message.id === 'string' ? message.id : undefined;
    const pending = id === undefined ? undefined : this.pending.get(id);
    // Replies carry our id back; anything else is not ours to settle.
    if (id === undefined || pending === undefined) return;
    this.pending.delete(id);
    clearTimeout(pending.timer);
    if (isObject(message.error)) {
      const cls = typeof message.error.class === 'string' ? message.error.class : 'UnknownError';
      const desc = typeof message.error.desc === 'string' ? message.error.desc : JSON.stringify(message.error);
      pending.reject(new QmpCommandError(pending.command, cls, desc));
    } else {
      pending.resolve(message.return === undefined ? null : message.return);
    }
  }

  private onClose(cause: Error | undefined): void {
    if (this.closedError !== undefined) return;
    const extra = this.describe();
    const reason = cause === undefined ? 'QMP connection closed' : `QMP connection failed: ${cause.message}`;
    this.closedError = new Error(extra === '' ? reason : `${reason}; ${extra}`);
    for (const [id, pending] of this.pending) {
      clearTimeout(pending.timer);
      pending.reject(this.closedError);
      this.pending.delete(id);
    }
    for (const waiter of [...this.eventWaiters]) waiter();
  }
}

/** How a QEMU process ended. */
export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

/** A running QEMU with its QMP connection. */
export interface QemuHandle {
  qmp: QmpClient;
  process: ChildProcess;
  /** A fresh temporary directory holding the QMP socket; removed by stop(). */
  dir: string;
  /** Everything QEMU wrote to stderr so far (capped). */
  stderr(): string;
  /** Settles when the process has exited. */
  exited: Promise<ExitInfo>;
  /** Sends `quit`, kills the process if it lingers, and removes `dir`. Safe to call twice. */
  stop(): Promise<void>;
}

/** Options for {@link startQemu}. */
export interface StartQemuOptions {
  binary: string;
  /** QEMU arguments; `-qmp` is added, and `-display none` unless a `-display` is given. */
  args: readonly string[];
  /** Working directory for QEMU. Defaults to the handle's temporary directory. */
  cwd?: string;
  /** Variables added to QEMU's environment (e.g. a {@link QemuCommand}'s). Defaults to none. */
  env?: Readonly<Record<string, string>>;
  /** Bound on QMP becoming ready. Defaults to 10 s. */
  timeoutMs?: number;
}

// QEMUs still running, killed if the test process exits without stopping them.
const live = new Map<ChildProcess, string>();
process.once('exit', () => {
  for (const [child, dir] of live) {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

const STDERR_CAP = 64 * 1024;

/** Starts QEMU with a QMP unix socket in a fresh temporary directory and connects to it. */
export async function startQemu(options: StartQemuOptions): Promise<QemuHandle> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'vmstate-qemu-'));
  const socketPath = path.join(dir, 'qmp.sock');
  const argv = [...options.args, '-qmp', `unix:${qemuOptValue(socketPath)},server=on,wait=off`];
  if (!options.args.includes('-display')) argv.push('-display', 'none');

  let child: ChildProcess;
  try {
    child = spawn(options.binary, argv, {
      cwd: options.cwd ?? dir,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  live.set(child, dir);

  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    if (stderr.length < STDERR_CAP) stderr += chunk.slice(0, STDERR_CAP - stderr.length);
  });
  child.stdout?.resume(); // drain so a chatty QEMU never blocks on a full pipe

  let exitInfo: ExitInfo | undefined;
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo ??= { code, signal };
      resolve(exitInfo);
    });
    // A spawn failure (e.g. ENOENT) may emit 'error' without 'exit'.
    child.once('error', (error) => {
      exitInfo ??= { code: null, signal: null, error };
      resolve(exitInfo);
    });
  });
  const describeExit = (): string => {
    const status =
      exitInfo === undefined
        ? 'still running'
        : exitInfo.error !== undefined
          ? `failed to start: ${exitInfo.error.message}`
          : `exited with ${exitInfo.signal ?? `code ${exitInfo.code}`}`;
    const text = stderr.trim();
    return `${path.basename(options.binary)} ${status}${text === '' ? '' : `, stderr: ${text}`}`;
  };

  const kill = async (): Promise<void> => {
    if (exitInfo === undefined) {
      child.kill('SIGKILL');
      await withTimeout(exited, 5_000, `${options.binary} did not die after SIGKILL`).catch(() => undefined);
    }
    live.delete(child);
    await rm(dir, { recursive: true, force: true });
  };

  // The socket appears once QEMU has parsed -qmp; retry until it accepts, QEMU dies, or time runs out.
  const deadline = Date.now() + timeoutMs;
  let qmp: QmpClient | undefined;
  let lastError: unknown;
  while (qmp === undefined) {
    if (exitInfo !== undefined) {
      await kill();
      throw new Error(`QEMU did not come up: ${describeExit()}`);
    }
    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      await kill();
      const last = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(`QMP not ready within ${timeoutMs} ms${last}: ${describeExit()}`);
    }
    if (existsSync(socketPath)) {
      try {
        qmp = await QmpClient.connect(socketPath, { timeoutMs: remaining, describe: describeExit });
        break;
      } catch (err) {
        lastError = err;
      }
    }
    await sleep(50);
  }
  const client = qmp;

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      if (exitInfo === undefined) {
        // QEMU may close the socket before answering quit; either way we wait for the exit below.
        await client.execute('quit', undefined, { timeoutMs: 2_000 }).catch(() => undefined);
        await withTimeout(exited, 3_000, 'quit ignored').catch(() => undefined);
      }
      client.close();
      await kill();
    })());

  return { qmp: client, process: child, dir, stderr: () => stderr, exited, stop };
}

/** The fields of query-migrate's MigrationInfo that the tests look at. */
export interface MigrationInfo {
  status?: string;
  'error-desc'?: string;
  'total-time'?: number;
  [key: string]: JsonValue | undefined;
}

/** query-status's StatusInfo. */
export interface StatusInfo {
  running: boolean;
  status: string;
  singlestep?: boolean;
}

/** query-pci's PciBusInfo. */
export interface PciBusInfo {
  number: number;
  secondary: number;
  subordinate: number;
}

/** query-pci's PciDeviceInfo (the fields the tests use). */
export interface PciDeviceInfo {
  bus: number;
  slot: number;
  function: number;
  class_info: { class: number; desc?: string };
  id: { device: number; vendor: number };
  qdev_id: string;
  pci_bridge?: { bus: PciBusInfo; devices?: PciDeviceInfo[] };
}

/** query-pci's PciInfo: one root bus with its devices. */
export interface PciInfo {
  bus: number;
  devices: PciDeviceInfo[];
}

/** Runs query-migrate. */
export async function queryMigrate(qmp: QmpClient): Promise<MigrationInfo> {
  const info = await qmp.execute('query-migrate');
  if (!isObject(info)) throw new Error(`query-migrate returned ${JSON.stringify(info)}`);
  return info;
}

/** Runs query-status. */
export async function queryStatus(qmp: QmpClient): Promise<StatusInfo> {
  const info = await qmp.execute('query-status');
  if (!isObject(info) || typeof info.status !== 'string' || typeof info.running !== 'boolean') {
    throw new Error(`query-status returned ${JSON.stringify(info)}`);
  }
  return { running: info.running, status: info.status };
}

/** Runs query-pci. */
export async function queryPci(qmp: QmpClient): Promise<PciInfo[]> {
  const info = await qmp.execute('query-pci');
  if (!Array.isArray(info)) throw new Error(`query-pci returned ${JSON.stringify(info)}`);
  // Shape is QEMU's PciInfo list; the tests check the fields they read.
  return info as unknown as PciInfo[];
}

/** Every device in a query-pci result, walking down through bridges. */
export function allPciDevices(buses: readonly PciInfo[]): PciDeviceInfo[] {
  const out: PciDeviceInfo[] = [];
  const walk = (devices: readonly PciDeviceInfo[]): void => {
    for (const device of devices) {
      out.push(device);
      if (device.pci_bridge?.devices !== undefined) walk(device.pci_bridge.devices);
    }
  };
  for (const bus of buses) walk(bus.devices);
  return out;
}

/** Polls `probe` every `intervalMs` until it returns a value other than undefined, or throws on timeout. */
export async function pollUntil<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/**
 * Migrates the VM into `file` with `migrate exec:cat > FILE` and waits for completion.
 * QEMU reports "completed" before it reaps the `cat` child, so `cat` writes a `.part` file that
 * is renamed once complete, and we also wait for the rename.
 */
export async function migrateToFile(qmp: QmpClient, file: string, timeoutMs = 60_000, uri?: string, extra: Readonly<JsonObject> = {}): Promise<MigrationInfo> {
  const deadline = Date.now() + timeoutMs;
  const part = `${file}.part`;
  await rm(file, { force: true });
  // `uri` (a file: URI naming `file`, for mapped-ram) writes in place; by default the file appears whole at the end.
  // `extra` goes into migrate's arguments too (7.2's `blk: true` for block migration).
  await qmp.execute('migrate', {
    ...extra,
    uri: uri ?? `exec:cat > ${shellQuote(part)} && mv -f ${shellQuote(part)} ${shellQuote(file)}`,
  });
  const info = await pollUntil(`migration to ${file}`, timeoutMs, async () => {
    const current = await queryMigrate(qmp);
    if (current.status === 'completed') return current;
    if (current.status === 'failed' || current.status === 'cancelled') {
      throw new Error(`migration to ${file} ${current.status}: ${current['error-desc'] ?? 'no error-desc'}`);
    }
    return undefined;
  });
  await pollUntil(`${file} to be written`, Math.max(deadline - Date.now(), 1_000), async () =>
    (await stat(file).catch(() => undefined)) === undefined ? undefined : true,
  );
  return info;
}

/** A QEMU that has loaded a stream with -incoming. */
export interface LoadedQemu extends QemuHandle {
  /** query-migrate on the incoming side once the load finished. */
  migration: MigrationInfo;
  /** query-status after the load ("paused" or "prelaunch" with -S, depending on the source). */
  status: StatusInfo;
}

/**
 * Starts QEMU with `args` plus `-S -incoming 'exec:cat FILE'` and waits until the incoming
 * migration has completed. The caller owns the returned handle and must stop() it.
 *
 * Observed with QEMU 7.2: while loading, query-migrate returns `{}` and the runstate is
 * "inmigrate"; afterwards query-migrate says `{"status": "completed"}` and the runstate is the
 * source's (from its globalstate section): "prelaunch" for a source started with -S and never
 * run, "paused" for one that ran and was stopped. A stream QEMU rejects makes QEMU exit (the
 * error then carries its stderr); an empty or truncated one can leave it in "inmigrate" for
 * good, which only the timeout catches.
 */
export async function loadFromFile(
  binary: string,
  args: readonly string[],
  file: string,
  options: { cwd?: string; env?: Readonly<Record<string, string>>; timeoutMs?: number } = {},
): Promise<LoadedQemu> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  // A missing file would leave QEMU waiting in "inmigrate" until the timeout.
  if ((await stat(file).catch(() => undefined)) === undefined) throw new Error(`loading ${file}: no such file`);
  const argv = [...args];
  if (!argv.includes('-S')) argv.push('-S');
  argv.push('-incoming', `exec:cat ${shellQuote(file)}`);
  let handle: QemuHandle;
  try {
    handle = await startQemu({ binary, args: argv, cwd: options.cwd, env: options.env });
  } catch (err) {
    // QEMU may reject the stream before QMP is even up.
    const message = err instanceof Error ? err.message : String(err);
    throw new Error(`loading ${file} failed: ${message}`, { cause: err });
  }
  try {
    const migration = await pollUntil(`incoming migration from ${file}`, timeoutMs, async () => {
      const current = await queryMigrate(handle.qmp);
      if (current.status === 'completed') return current;
      if (current.status === 'failed') {
        throw new Error(`incoming migration failed: ${current['error-desc'] ?? 'no error-desc'}`);
      }
      return undefined;
    });
    const status = await queryStatus(handle.qmp);
    return { ...handle, migration, status };
  } catch (err) {
    // QEMU exits when a load fails; give it a moment so its stderr is complete.
    await withTimeout(handle.exited, 2_000, 'still running').catch(() => undefined);
    const stderr = handle.stderr().trim();
    await handle.stop();
    const message = err instanceof Error ? err.message : String(err);
    throw new Error(`loading ${file} failed: ${message}${stderr === '' ? '' : `; QEMU stderr: ${stderr}`}`, {
      cause: err,
    });
  }
}
