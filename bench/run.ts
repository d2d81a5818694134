/**
 * vmstate benchmark: vmstate's `analyze` against QEMU's scripts/analyze-migration.py, all measured in
 * one run.
 *
 *   a. every fixture: whole-process wall time of the CLI and of the script (stdout to /dev/null), and the
 *      bare start-up of each runtime;
 *   b. every fixture: in-process decode+render time of the library (the CLI's path, and the value tree's
 *      for information) against the script's time minus Python's start-up;
 *   c. a 1 GiB-RAM stream of random memory written by QEMU (cached under os.tmpdir()): `cat`, the CLI,
 *      the script, and the in-process time.
 *
 * Usage: node dist/bench/run.js [--quick] [--no-big] [--runs N] [--keep-random] [--python PATH]
 * Plain Node, no dependencies. See bench/README.md.
 */
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ANALYZE_SCRIPTS,
  analyzeStream,
  analyzeStreamJson,
  DEFAULT_SCRIPT,
  formatAnalysis,
  openStreamFile,
  requireVmdesc,
  type AnalyzeScript,
} from '../src/analyze/index.js';

// ---------------------------------------------------------------------------------------------------
// Options and paths

interface Options {
  readonly quick: boolean;
  readonly big: boolean;
  /** Timed runs per whole-process measurement (fixtures). */
  readonly runs: number;
  /** Timed runs per in-process measurement (fixtures). */
  readonly inRuns: number;
  /** Timed runs per measurement on the 1 GiB stream (the script always runs once). */
  readonly bigRuns: number;
  readonly keepRandom: boolean;
  /** The Python interpreter to run the script with; default: the one `python3` on PATH really runs. */
  readonly python: string | undefined;
}

function parseOptions(argv: readonly string[]): Options {
  let quick = false;
  let big = true;
  let runs: number | undefined;
  let keepRandom = false;
  let python: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') quick = true;
    else if (a === '--no-big') big = false;
    else if (a === '--keep-random') keepRandom = true;
    else if (a === '--python') {
      python = argv[++i];
      if (!python) fail('--python needs a path');
    }
    else if (a === '--runs') {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 1) fail('--runs needs a positive integer');
      runs = v;
    } else if (a === '--help' || a === '-h') {
      process.stdout.write('usage: node dist/bench/run.js [--quick] [--no-big] [--runs N] [--keep-random] [--python PATH]\n');
      process.exit(0);
    } else fail(`unknown option ${a}`);
  }
  const r = runs ?? (quick ? 3 : 5);
  return { quick, big, runs: r, inRuns: quick ? 5 : 15, bigRuns: quick ? 1 : 3, keepRandom, python };
}

function fail(message: string): never {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}

const here = path.dirname(fileURLToPath(import.meta.url));
/** The repository root: this file runs as dist/bench/run.js. */
const repo = path.resolve(here, '..', '..');
const cli = path.join(repo, 'dist', 'src', 'cli', 'vmstate.cjs');
const fixturesDir = path.join(repo, 'test', 'fixtures');
const cacheDir = path.join(os.tmpdir(), 'vmstate-bench');
/** Prints the path of QEMU 7.2's source tree ($QEMU_SRC when set), fetching Debian's the first time. */
const QEMU_SOURCE_TOOL = path.join(repo, 'scripts', 'qemu-source.sh');
/** Fetches QEMU 10.0 the first time and prints KEY=VALUE lines, `source=TREE` among them. */
const QEMU_10_TOOL = path.join(repo, 'scripts', 'qemu-10.sh');

/** analyze-migration.py from the QEMU 7.2 tree scripts/qemu-source.sh names. */
function findScript(): string {
  const r = spawnSync('bash', [QEMU_SOURCE_TOOL], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) fail(`${QEMU_SOURCE_TOOL} failed (set QEMU_SRC to a QEMU source tree)`);
  const tree = r.stdout.trim().split('\n').at(-1) ?? '';
  const script = path.join(tree, 'scripts', 'analyze-migration.py');
  if (!fs.existsSync(script)) fail(`no ${script}`);
  return script;
}

/** QEMU 10.0's analyze-migration.py, from the tree scripts/qemu-10.sh names; null (with a note) when it cannot be had. */
function findScript10(): string | null {
  const r = spawnSync('bash', [QEMU_10_TOOL], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const tree = r.status === 0 ? /^source=(.*)$/m.exec(r.stdout)?.[1] : undefined;
  const script = tree === undefined ? '' : path.join(tree, 'scripts', 'analyze-migration.py');
  if (script === '' || !fs.existsSync(script)) {
    process.stderr.write(`bench: ${QEMU_10_TOOL} gave no analyze-migration.py: the QEMU 10.0 fixtures are skipped\n`);
    return null;
  }
  return script;
}

/**
 * The interpreter behind `python3`: version managers put a shell-script shim on PATH (pyenv's costs
 * ~100 ms per run), which is not Python's cost, so the script runs under the real binary.
 */
function resolvePython(explicit: string | undefined): string {
  if (explicit) return explicit;
  const r = spawnSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' });
  const exe = r.status === 0 ? r.stdout.trim() : '';
  if (!exe) fail('python3 not found (or pass --python PATH)');
  return exe;
}

// ---------------------------------------------------------------------------------------------------
// Measuring

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

interface ProcResult {
  readonly ms: number;
  readonly ok: boolean;
  readonly stderr: string;
  readonly status: number | null;
}

const devNull = fs.openSync('/dev/null', 'w');

/** Runs a command once with stdout to `stdoutFd` (default /dev/null); wall time in ms. */
function runOnce(cmd: string, args: readonly string[], stdoutFd: number = devNull, env: NodeJS.ProcessEnv = process.env): ProcResult {
  const t0 = nowMs();
  const r: SpawnSyncReturns<string> = spawnSync(cmd, args, {
    env,
    stdio: ['ignore', stdoutFd, 'pipe'],
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  const ms = nowMs() - t0;
  if (r.error) throw r.error;
  return { ms, ok: r.status === 0, stderr: r.stderr ?? '', status: r.status };
}

interface Timing {
  readonly ms: number;
  readonly all: readonly number[];
  readonly ok: boolean;
  readonly error: string;
}

/** Median wall time of `runs` runs (stdout to /dev/null); stops at the first failure. */
function timeProcess(cmd: string, args: readonly string[], runs: number, env: NodeJS.ProcessEnv = process.env): Timing {
  const all: number[] = [];
  for (let i = 0; i < runs; i++) {
    const r = runOnce(cmd, args, devNull, env);
    if (!r.ok) return { ms: r.ms, all: [r.ms], ok: false, error: lastLine(r.stderr) || `exit ${r.status}` };
    all.push(r.ms);
  }
  return { ms: median(all), all, ok: true, error: '' };
}

/** A command to time: program, arguments and (unless the bench's own) environment. */
type Command = readonly [cmd: string, args: readonly string[], env?: NodeJS.ProcessEnv];

/** Like timeProcess for several commands, alternating their runs so that load changes hit all alike. */
function timeAlternating(commands: readonly Command[], runs: number): Timing[] {
  const all: number[][] = commands.map(() => []);
  const err: string[] = commands.map(() => '');
  for (let i = 0; i < runs; i++) {
    commands.forEach(([cmd, args, env], k) => {
      if (err[k]) return;
      const r = runOnce(cmd, args, devNull, env);
      if (r.ok) all[k].push(r.ms);
      else err[k] = lastLine(r.stderr) || `exit ${r.status}`;
    });
  }
  return commands.map((_, k) => (err[k] ? { ms: NaN, all: all[k], ok: false, error: err[k] } : { ms: median(all[k]), all: all[k], ok: true, error: '' }));
}

function lastLine(s: string): string {
  return s.trim().split('\n').at(-1) ?? '';
}

/** Runs a command once with stdout captured in a file; returns its output (or null on failure). */
function captureOnce(cmd: string, args: readonly string[]): { out: string | null; ms: number; error: string } {
  const tmp = path.join(cacheDir, `capture-${process.pid}.out`);
  const fd = fs.openSync(tmp, 'w');
  let r: ProcResult;
  try {
    r = runOnce(cmd, args, fd);
  } finally {
    fs.closeSync(fd);
  }
  const out = r.ok ? fs.readFileSync(tmp, 'utf8') : null;
  fs.rmSync(tmp, { force: true });
  return { out, ms: r.ms, error: r.ok ? '' : lastLine(r.stderr) || `exit ${r.status}` };
}

/** How the in-process figure decodes: the CLI's path (straight to JSON text) or the public value tree. */
type InProcessPath = 'cli' | 'tree';

/** One in-process analyze: open, find the trailer, decode, render, as the CLI does it or through the tree. */
async function analyzeInProcess(file: string, how: InProcessPath, script: AnalyzeScript): Promise<string> {
  const f = openStreamFile(file);
  try {
    const { vmdesc } = requireVmdesc(f);
    if (how === 'tree') return formatAnalysis(await analyzeStream(f.source(), vmdesc, { script }));
    // What analyzeCommand does: JSON bytes, then the string it hands to stdout.
    const text = await analyzeStreamJson(f.source(), vmdesc, { script });
    return Buffer.from(text.buffer, text.byteOffset, text.byteLength).toString('latin1');
  } finally {
    f.close();
  }
}

/** Median in-process time after `warmup` untimed runs; also the output of the first run. */
async function timeInProcess(
  file: string,
  warmup: number,
  runs: number,
  how: InProcessPath = 'cli',
  script: AnalyzeScript = DEFAULT_SCRIPT,
): Promise<{ ms: number; all: number[]; out: string }> {
  let out = '';
  for (let i = 0; i < warmup; i++) {
    const s = await analyzeInProcess(file, how, script);
    if (i === 0) out = s;
  }
  const all: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = nowMs();
    const s = await analyzeInProcess(file, how, script);
    all.push(nowMs() - t0);
    if (!out) out = s;
  }
  return { ms: median(all), all, out };
}

/** True if the CLI entry point is the esbuild bundle `npm run build` makes, not tsc's module graph. */
// ---------------------------------------------------------------------------------------------------
// Printing

function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  if (ms >= 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 100) return `${ms.toFixed(0)} ms`;
  if (ms >= 10) return `${ms.toFixed(1)} ms`;
  return `${ms.toFixed(2)} ms`;
}

function fmtRatio(r: number): string {
  return Number.isFinite(r) ? `${r.toFixed(r >= 100 ? 0 : r >= 10 ? 1 : 2)}x` : '-';
}

function table(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ').trimEnd();
  return [line(head), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line)].join('\n') + '\n';
}

const say = (s = ''): void => {
  process.stdout.write(s + '\n');
};

function verdict(ok: boolean): string {
  return ok ? 'MET' : 'MISSED';
}

// ---------------------------------------------------------------------------------------------------
// The 1 GiB stream

const BIG_RAM = '1G';
const RANDOM_BYTES = 900 << 20;
const BIG_NAME = 'q35-1g-random.mig';

/** Writes `size` random bytes to `file` in 16 MiB chunks. */
function writeRandomFile(file: string, size: number): void {
  const fd = fs.openSync(file, 'w');
  try {
    const chunk = 16 << 20;
    for (let done = 0; done < size; ) {
      const n = Math.min(chunk, size - done);
      const b = crypto.randomBytes(n);
      let off = 0;
      while (off < n) off += fs.writeSync(fd, b, off, n - off);
      done += n;
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** A minimal QMP client on a unix socket: one command at a time, events skipped. */
class Qmp {
  private buffered = '';
  private waiters: ((line: string) => void)[] = [];
  private lines: string[] = [];
  private closedError: Error | null = null;

  private constructor(private readonly sock: net.Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      this.buffered += d;
      let nl: number;
      while ((nl = this.buffered.indexOf('\n')) >= 0) {
        const line = this.buffered.slice(0, nl).trim();
        this.buffered = this.buffered.slice(nl + 1);
        if (!line) continue;
        const w = this.waiters.shift();
        if (w) w(line);
        else this.lines.push(line);
      }
    });
    sock.on('close', () => {
      this.closedError = new Error('QMP connection closed');
      for (const w of this.waiters.splice(0)) w('');
    });
    sock.on('error', () => undefined);
  }

  static async connect(socketPath: string, timeoutMs: number, alive: () => boolean): Promise<Qmp> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!alive()) throw new Error('qemu-system-x86_64 exited before its QMP socket answered');
      try {
        const sock = await new Promise<net.Socket>((resolve, reject) => {
          const s = net.createConnection(socketPath);
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        });
        const q = new Qmp(sock);
        const greeting = await q.nextMessage();
        if (!('QMP' in greeting)) throw new Error(`unexpected QMP greeting ${JSON.stringify(greeting)}`);
        return q;
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await sleep(100);
      }
    }
  }

  private nextLine(): Promise<string> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => {
      this.waiters.push((line) => (line ? resolve(line) : reject(this.closedError ?? new Error('QMP closed'))));
    });
  }

  private async nextMessage(): Promise<Record<string, unknown>> {
    const v: unknown = JSON.parse(await this.nextLine());
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('QMP: not an object');
    return v as Record<string, unknown>;
  }

  /** Sends a command; resolves to its `return`, rejects on `error`. */
  async execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    this.sock.write(JSON.stringify(args ? { execute: command, arguments: args } : { execute: command }) + '\n');
    for (;;) {
      const m = await this.nextMessage();
      if ('event' in m) continue;
      if ('error' in m) throw new Error(`QMP ${command}: ${JSON.stringify(m.error)}`);
      if ('return' in m) return m.return;
    }
  }

  close(): void {
    this.sock.destroy();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The cached 1 GiB stream, made with QEMU if absent. */
/** How a big stream is made: which QEMU, and how it migrates. */
interface BigStreamMaker {
  readonly name: string;
  readonly binary: string;
  /** Arguments before the machine's own (QEMU 10.0's -L and -audio none). */
  readonly args: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  readonly capabilities: readonly string[];
  /** The migration URI, given the file it writes. */
  uri(file: string): string;
}

/** The 1 GiB stream QEMU 7.2 writes through exec:cat. */
const PLAIN_BIG: BigStreamMaker = {
  name: BIG_NAME,
  binary: 'qemu-system-x86_64',
  args: [],
  env: process.env,
  capabilities: [],
  uri: (file) => `exec:cat > ${shellQuote(file)}`,
};

/** The same guest as QEMU 10.0 writes it with mapped-ram to a file: URI; null when scripts/qemu-10.sh gives no QEMU. */
function mappedBigMaker(): BigStreamMaker | null {
  const r = spawnSync('bash', [QEMU_10_TOOL], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const v = (key: string) => new RegExp(`^${key}=(.*)$`, 'm').exec(r.stdout)?.[1];
  const [bin, dataDir, moduleDir] = [v('bin'), v('data_dir'), v('module_dir')];
  if (r.status !== 0 || !bin || !dataDir || !moduleDir) return null;
  return {
    name: 'q35-1g-random-mapped-ram.mig',
    binary: path.join(bin, 'qemu-system-x86_64'),
    args: ['-L', dataDir, '-L', '/usr/share/seabios', '-L', '/usr/lib/ipxe/qemu', '-audio', 'none'],
    env: { ...process.env, QEMU_MODULE_DIR: moduleDir },
    capabilities: ['mapped-ram'],
    uri: (file) => `file:${file}`,
  };
}

async function ensureBigStream(opts: Options, maker: BigStreamMaker = PLAIN_BIG): Promise<string> {
  fs.mkdirSync(cacheDir, { recursive: true });
  const out = path.join(cacheDir, maker.name);
  if (fs.existsSync(out)) {
    say(`using cached ${out} (${(fs.statSync(out).size / 2 ** 20).toFixed(1)} MiB); delete it to remake`);
    return out;
  }
  const random = path.join(cacheDir, 'random-900M.bin');
  const partial = `${out}.partial`;
  const sock = path.join(cacheDir, `qmp-${process.pid}.sock`);
  fs.rmSync(partial, { force: true });
  fs.rmSync(sock, { force: true });

  const t0 = nowMs();
  if (!fs.existsSync(random) || fs.statSync(random).size !== RANDOM_BYTES) {
    process.stdout.write(`making ${random} (900 MiB of random bytes) ... `);
    writeRandomFile(random, RANDOM_BYTES);
    say(`${fmtMs(nowMs() - t0)}`);
  }

  const qemuArgs = [
    ...maker.args,
    '-machine', 'q35', '-accel', 'tcg', '-m', BIG_RAM, '-nodefaults', '-display', 'none', '-S',
    '-device', `loader,file=${random},addr=0x100000,force-raw=on`,
    '-qmp', `unix:${sock},server=on,wait=off`,
  ];
  say(`${maker.binary} ${qemuArgs.join(' ')}`);
  const t1 = nowMs();
  const qemu = spawn(maker.binary, qemuArgs, { stdio: ['ignore', 'inherit', 'inherit'], env: maker.env });
  let exited = false;
  const exitP = new Promise<number | null>((resolve) =>
    qemu.on('exit', (code) => {
      exited = true;
      resolve(code);
    }),
  );
  qemu.on('error', (e) => fail(`cannot run ${maker.binary}: ${e.message}`));
  let qmp: Qmp | null = null;
  let quitSent = false;
  try {
    qmp = await Qmp.connect(sock, 30_000, () => !exited);
    await qmp.execute('qmp_capabilities');
    // QEMU 7.2 limits migration to 32 MiB/s by default: lift it so the stream is written at disk speed.
    await qmp.execute('migrate-set-parameters', { 'max-bandwidth': 64 * 2 ** 30 });
    if (maker.capabilities.length > 0) {
      await qmp.execute('migrate-set-capabilities', { capabilities: maker.capabilities.map((capability) => ({ capability, state: true })) });
    }
    await qmp.execute('migrate', { uri: maker.uri(partial) });
    for (;;) {
      const st = (await qmp.execute('query-migrate')) as { status?: string; 'error-desc'?: string };
      if (st.status === 'completed') break;
      if (st.status === 'failed' || st.status === 'cancelled') throw new Error(`migration ${st.status}: ${st['error-desc'] ?? ''}`);
      await sleep(200);
    }
    await qmp.execute('quit').catch(() => undefined);
    quitSent = true;
  } finally {
    qmp?.close();
    if (!exited) {
      if (!quitSent) qemu.kill('SIGTERM');
      const timer = setTimeout(() => qemu.kill('SIGKILL'), 10_000);
      await exitP;
      clearTimeout(timer);
    }
    fs.rmSync(sock, { force: true });
  }
  // Flush it now, so that write-back does not run during the measurements.
  spawnSync('sync', [partial], { stdio: 'ignore' });
  fs.renameSync(partial, out);
  say(`wrote ${out} (${(fs.statSync(out).size / 2 ** 20).toFixed(1)} MiB) in ${fmtMs(nowMs() - t1)} with QEMU`);
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Main

/** A folder of streams written by one QEMU, timed against that QEMU's analyze-migration.py. */
interface FixtureSet {
  readonly qemu: '7.2' | '10.0';
  readonly dir: string;
  readonly script: string;
}

interface FixtureRow {
  /** `qemu-10.0/NAME` for 10.0's, as the tests name them. */
  readonly name: string;
  readonly size: number;
  readonly cli: Timing;
  /** The CLI with NODE_EXTRA_CA_CERTS removed from its environment; null when the variable is not set. */
  readonly cliNoCa: Timing | null;
  readonly py: Timing;
  readonly inproc: number;
  readonly tree: number;
  readonly identical: string;
}

/** One fixture: the CLI and the script alternating, then the in-process figures, and whether all agree. */
async function benchFixture(f: string, set: FixtureSet, analyzeScript: AnalyzeScript, python: string, noCaEnv: NodeJS.ProcessEnv | null, opts: Options): Promise<FixtureRow> {
  const base = path.basename(f, '.mig');
  const name = set.qemu === '7.2' ? base : `qemu-${set.qemu}/${base}`;
  process.stderr.write(`  ${name} ...\n`);
  const cliArgs = [cli, 'analyze', '--compat', set.qemu, f];
  // One captured run of each first: warms the page cache and checks the outputs agree.
  const cliCap = captureOnce(process.execPath, cliArgs);
  const pyCap = captureOnce(python, [set.script, '-f', f]);
  const commands: Command[] = [[process.execPath, cliArgs]];
  if (noCaEnv) commands.push([process.execPath, cliArgs, noCaEnv]);
  if (pyCap.out !== null) commands.push([python, [set.script, '-f', f]]);
  const timings = timeAlternating(commands, opts.runs);
  const cliT = timings[0];
  const cliNoCa = noCaEnv ? timings[1] : null;
  const pyT: Timing = pyCap.out === null ? { ms: NaN, all: [], ok: false, error: pyCap.error } : (timings.at(-1) as Timing);
  const ip = await timeInProcess(f, 2, opts.inRuns, 'cli', analyzeScript);
  const tree = await timeInProcess(f, 2, opts.inRuns, 'tree', analyzeScript);
  // Against the script's output; where the script fails, against the fixture's stored NAME.analyze.json.
  const golden = path.join(set.dir, `${base}.analyze.json`);
  const reference = pyCap.out ?? (fs.existsSync(golden) ? fs.readFileSync(golden, 'utf8') : null);
  const refName = pyCap.out !== null ? '' : ` (vs ${name}.analyze.json)`;
  let identical: string;
  if (cliCap.out === null) identical = `vmstate failed: ${cliCap.error}`;
  else if (reference === null) identical = 'script failed';
  else if (cliCap.out !== reference) identical = `DIFFERENT (CLI)${refName}`;
  else if (ip.out !== reference) identical = `DIFFERENT (in-process)${refName}`;
  else if (tree.out !== reference) identical = `DIFFERENT (tree)${refName}`;
  else identical = `yes${refName}`;
  return { name, size: fs.statSync(f).size, cli: cliT, cliNoCa, py: pyT, inproc: ip.ms, tree: tree.ms, identical };
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  if (!fs.existsSync(cli)) fail(`no ${cli}: build first (npm run build)`);
  fs.mkdirSync(cacheDir, { recursive: true });
  const script = findScript();
  const script10 = findScript10();
  const sets: FixtureSet[] = [{ qemu: '7.2', dir: fixturesDir, script }];
  if (script10 !== null) sets.push({ qemu: '10.0', dir: path.join(fixturesDir, 'qemu-10.0'), script: script10 });
  const qemuVersion = spawnSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' }).stdout?.split('\n')[0] ?? '?';
  const python = resolvePython(opts.python);
  const pyVersion = spawnSync(python, ['--version'], { encoding: 'utf8' }).stdout?.trim() ?? '?';

  // Node 20 reads the whole NODE_EXTRA_CA_CERTS bundle at start-up, before any script runs (nodejs/node
  // issue 40524); here that is most of Node's start-up. Where it is set, the CLI is also timed without it.
  const extraCa = process.env.NODE_EXTRA_CA_CERTS;
  const noCaEnv: NodeJS.ProcessEnv | null = extraCa ? { ...process.env } : null;
  if (noCaEnv) delete noCaEnv.NODE_EXTRA_CA_CERTS;

  say('vmstate benchmark');
  say(`  node ${process.version}, ${pyVersion}, ${qemuVersion}`);
  say(`  ${os.cpus().length} x ${os.cpus()[0]?.model ?? '?'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.platform()} ${os.release()}`);
  for (const set of sets) say(`  script for QEMU ${set.qemu}'s fixtures: ${python} ${set.script}`);
  say(`  runs: ${opts.runs} per whole-process figure (median), ${opts.inRuns} in-process after 2 warm-ups${opts.quick ? ' (--quick)' : ''}`);
  if (extraCa) say(`  NODE_EXTRA_CA_CERTS=${extraCa} is set: Node loads it at start-up, so the CLI is also timed without it`);
  say(`  CLI: dist/src/cli/vmstate.cjs (the bundle npm run build makes${fs.existsSync(`${path.dirname(cli)}/main.cjs.v8-cache`) ? ', with its code cache' : ', NO code cache'})`);
  say();

  // --- start-up
  say('== Start-up (whole process, median) ==');
  const nodeStart = timeProcess(process.execPath, ['-e', '0'], opts.runs * 2);
  const nodeStartNoCa = noCaEnv ? timeProcess(process.execPath, ['-e', '0'], opts.runs * 2, noCaEnv) : null;
  const pyStart = timeProcess(python, ['-c', 'pass'], opts.runs * 2);
  const pathPyStart = timeProcess('python3', ['-c', 'pass'], opts.runs);
  const cliStart = timeProcess(process.execPath, [cli, 'help'], opts.runs * 2);
  const pyImports = timeProcess(python, ['-c', 'import json, os, argparse, collections, struct, sys'], opts.runs * 2);
  say(
    table(
      ['command', 'median', 'min'],
      [
        ['node -e 0', fmtMs(nodeStart.ms), fmtMs(Math.min(...nodeStart.all))],
        ...(nodeStartNoCa ? [['node -e 0 without NODE_EXTRA_CA_CERTS', fmtMs(nodeStartNoCa.ms), fmtMs(Math.min(...nodeStartNoCa.all))]] : []),
        ['node dist/src/cli/vmstate.cjs help (loads the CLI)', fmtMs(cliStart.ms), fmtMs(Math.min(...cliStart.all))],
        [`${python} -c pass`, fmtMs(pyStart.ms), fmtMs(Math.min(...pyStart.all))],
        [`${python} -c "import <the script's imports>"`, fmtMs(pyImports.ms), fmtMs(Math.min(...pyImports.all))],
        ['python3 -c pass (via PATH: not used, for information)', fmtMs(pathPyStart.ms), fmtMs(Math.min(...pathPyStart.all))],
      ],
    ),
  );

  // --- fixtures
  say("== Fixtures: `analyze F > /dev/null` whole process (a) and in-process decode+render (b), each QEMU's streams against that QEMU's script ==");
  const rows: FixtureRow[] = [];
  for (const set of sets) {
    const analyzeScript = ANALYZE_SCRIPTS[set.qemu];
    for (const f of fs.readdirSync(set.dir).filter((n) => n.endsWith('.mig')).sort().map((n) => path.join(set.dir, n))) {
      rows.push(await benchFixture(f, set, analyzeScript, python, noCaEnv, opts));
    }
  }
  const pyBase = pyStart.ms;
  say(
    table(
      [
        'fixture',
        'size',
        'vmstate',
        'script',
        'script/vmstate',
        ...(noCaEnv ? ['vmstate (no extra CA)', 'script/that'] : []),
        'in-process',
        'script-py0',
        '(script-py0)/in-proc',
        'tree',
        'same output',
      ],
      rows.map((r) => [
        r.name,
        `${(r.size / 1024).toFixed(0)} KiB`,
        r.cli.ok ? fmtMs(r.cli.ms) : 'FAILED',
        r.py.ok ? fmtMs(r.py.ms) : 'FAILED',
        r.py.ok && r.cli.ok ? fmtRatio(r.py.ms / r.cli.ms) : '-',
        ...(r.cliNoCa ? [r.cliNoCa.ok ? fmtMs(r.cliNoCa.ms) : 'FAILED', r.py.ok && r.cliNoCa.ok ? fmtRatio(r.py.ms / r.cliNoCa.ms) : '-'] : []),
        fmtMs(r.inproc),
        r.py.ok ? fmtMs(r.py.ms - pyBase) : '-',
        r.py.ok ? fmtRatio((r.py.ms - pyBase) / r.inproc) : '-',
        fmtMs(r.tree),
        r.identical,
      ]),
    ),
  );
  for (const r of rows) {
    if (!r.py.ok) say(`  note: the script fails on ${r.name}: ${r.py.error}`);
    if (!r.cli.ok) say(`  note: vmstate fails on ${r.name}: ${r.cli.error}`);
  }
  say(`  vmstate / script: median whole-process wall time of \`node dist/src/cli/vmstate.cjs analyze F\` / \`${python} analyze-migration.py -f F\`.`);
  say(`  in-process: what the CLI runs (openStreamFile+requireVmdesc+analyzeStreamJson+bytes to string), median after warm-up.`);
  say(`  tree: the same through the public value tree (analyzeStream+formatAnalysis), for information.`);
  say(`  script-py0: the script's time minus \`${python} -c pass\` (${fmtMs(pyBase)}).`);
  if (noCaEnv) say(`  vmstate (no extra CA): the same CLI run with NODE_EXTRA_CA_CERTS removed from its environment (the script does not read it).`);
  say(`  vmstate and script runs alternate, so that load changes on the machine hit both alike.`);
  say();

  // --- the 1 GiB stream
  interface BigResult {
    file: string;
    size: number;
    cat: number;
    cli: Timing;
    cliNoCa: Timing | null;
    py: Timing;
    inproc: number;
    identical: string;
  }
  let big: BigResult | null = null;
  if (opts.big) {
    say('== 1 GiB-RAM stream of random memory (q35, 900 MiB random at 0x100000) ==');
    const file = await ensureBigStream(opts);
    process.stderr.write('  timing cat, vmstate, script on the 1 GiB stream ...\n');
    runOnce('cat', [file]);
    runOnce('cat', [file]);
    const cat = timeProcess('cat', [file], Math.max(3, opts.bigRuns));
    const cliCap = captureOnce(process.execPath, [cli, 'analyze', file]);
    const cliT = timeProcess(process.execPath, [cli, 'analyze', file], opts.bigRuns);
    const cliNoCa = noCaEnv ? timeProcess(process.execPath, [cli, 'analyze', file], opts.bigRuns, noCaEnv) : null;
    const pyCap = captureOnce(python, [script, '-f', file]);
    const pyT: Timing = pyCap.out === null ? { ms: pyCap.ms, all: [pyCap.ms], ok: false, error: pyCap.error } : { ms: pyCap.ms, all: [pyCap.ms], ok: true, error: '' };
    const ip = await timeInProcess(file, 1, opts.bigRuns);
    let identical: string;
    if (cliCap.out === null) identical = `vmstate failed: ${cliCap.error}`;
    else if (pyCap.out === null) identical = 'script failed';
    else identical = cliCap.out === pyCap.out && ip.out === pyCap.out ? 'yes' : 'DIFFERENT';
    big = { file, size: fs.statSync(file).size, cat: cat.ms, cli: cliT, cliNoCa, py: pyT, inproc: ip.ms, identical };
    const mib = big.size / 2 ** 20;
    const rate = (ms: number) => `${((mib / ms) * 1000).toFixed(0)} MiB/s`;
    say(
      table(
        ['command', 'time', 'throughput', 'ratio'],
        [
          ['cat FILE > /dev/null (page cache warm)', fmtMs(cat.ms), rate(cat.ms), '1x'],
          ['vmstate analyze FILE > /dev/null', cliT.ok ? fmtMs(cliT.ms) : 'FAILED', rate(cliT.ms), `${fmtRatio(cliT.ms / cat.ms)} of cat`],
          ...(cliNoCa
            ? [['  the same without NODE_EXTRA_CA_CERTS', cliNoCa.ok ? fmtMs(cliNoCa.ms) : 'FAILED', rate(cliNoCa.ms), `${fmtRatio(cliNoCa.ms / cat.ms)} of cat`]]
            : []),
          ['vmstate in-process', fmtMs(ip.ms), rate(ip.ms), `${fmtRatio(ip.ms / cat.ms)} of cat`],
          [
            'analyze-migration.py -f FILE > /dev/null (1 run)',
            pyT.ok ? fmtMs(pyT.ms) : 'FAILED',
            rate(pyT.ms),
            pyT.ok && cliT.ok ? `script/vmstate ${fmtRatio(pyT.ms / cliT.ms)}` : '-',
          ],
        ],
      ),
    );
    say(`  file: ${file}, ${mib.toFixed(1)} MiB; same output (CLI, in-process, script): ${identical}`);
    if (!pyT.ok) say(`  note: the script failed: ${pyT.error}`);
    say();
  }

  // --- the same guest as a mapped-ram file (QEMU 10.0), written out by --ram-dir
  let mapped: { cp: Timing; ramDir: Timing } | null = null;
  if (opts.big) {
    const maker = mappedBigMaker();
    if (maker === null) {
      say('  note: scripts/qemu-10.sh gave no QEMU 10.0, so the mapped-ram figure is left out');
    } else {
      say('== The same guest as a mapped-ram file (QEMU 10.0, file: URI): `analyze --ram-dir` against `cp` ==');
      const file = await ensureBigStream(opts, maker);
      const out = fs.mkdtempSync(path.join(os.tmpdir(), 'vmstate-bench-ram-'));
      try {
        runOnce('cat', [file]);
        const [cp, ramDir] = timeAlternating(
          [
            ['cp', [file, path.join(out, 'copy.mig')]],
            [process.execPath, [cli, 'analyze', '--ram-dir', path.join(out, 'ram'), file]],
          ],
          Math.max(5, opts.bigRuns),
        );
        mapped = { cp, ramDir };
        say(
          table(
            ['command', 'time', 'ratio'],
            [
              ['cp FILE COPY (page cache warm)', fmtMs(cp.ms), '1x'],
              ['vmstate analyze --ram-dir DIR FILE > /dev/null', ramDir.ok ? fmtMs(ramDir.ms) : `FAILED: ${ramDir.error}`, `${fmtRatio(ramDir.ms / cp.ms)} of cp`],
            ],
          ),
        );
        say(`  file: ${file}, ${(fs.statSync(file).size / 2 ** 20).toFixed(1)} MiB long, its pages at fixed offsets (sparse); runs alternate`);
      } finally {
        fs.rmSync(out, { recursive: true, force: true });
      }
      say();
    }
    if (!opts.keepRandom) fs.rmSync(path.join(cacheDir, 'random-900M.bin'), { force: true });
  }

  // --- targets
  say('== Targets ==');
  const results: string[][] = [];
  // The whole-process target applies where the script takes > 0.5 s; the others are listed for information.
  const compared = rows.filter((r) => r.py.ok && r.cli.ok);
  if (!compared.some((r) => r.py.ms > 500)) results.push(['whole process >= 5x (script > 0.5 s)', 'no fixture where the script takes > 0.5 s', '-']);
  for (const r of compared) {
    const x = r.py.ms / r.cli.ms;
    const heavy = r.py.ms > 500;
    results.push([`whole process >= 5x (script > 0.5 s): ${r.name}`, fmtRatio(x), heavy ? verdict(x >= 5) : `(script ${fmtMs(r.py.ms)}: n/a)`]);
    if (r.cliNoCa?.ok) {
      const y = r.py.ms / r.cliNoCa.ms;
      results.push([`  the same without NODE_EXTRA_CA_CERTS`, fmtRatio(y), heavy ? verdict(y >= 5) : '(n/a)']);
    }
  }
  for (const r of rows.filter((r) => r.py.ok)) {
    const x = (r.py.ms - pyBase) / r.inproc;
    results.push([`in-process >= 20x script-py0: ${r.name}`, fmtRatio(x), verdict(x >= 20)]);
  }
  if (big) {
    const x = big.cli.ms / big.cat;
    results.push(['1 GiB stream: vmstate analyze within 2x of cat', `${fmtRatio(x)} of cat`, verdict(big.cli.ok && x <= 2)]);
    if (big.cliNoCa?.ok) {
      const y = big.cliNoCa.ms / big.cat;
      results.push(['  the same without NODE_EXTRA_CA_CERTS', `${fmtRatio(y)} of cat`, verdict(y <= 2)]);
    }
    if (big.py.ok && big.cli.ok) results.push(['1 GiB stream: script/vmstate (information)', fmtRatio(big.py.ms / big.cli.ms), '']);
  }
  if (mapped) {
    const x = mapped.ramDir.ms / mapped.cp.ms;
    results.push(['1 GiB mapped-ram file: analyze --ram-dir within 2x of cp', `${fmtRatio(x)} of cp`, verdict(mapped.ramDir.ok && x <= 2)]);
  }
  say(table(['target', 'measured', ''], results));
  const bad = rows.filter((r) => !r.identical.startsWith('yes') && r.identical !== 'script failed');
  if (bad.length || (big && big.identical !== 'yes' && big.identical !== 'script failed')) {
    say('WARNING: vmstate and the script printed different output (see "same output").');
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
