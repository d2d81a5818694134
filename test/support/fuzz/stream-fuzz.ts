// The stream fuzzer: mutated streams through loadSnapshot into a reference machine and through analyze.
// The oracle, for every input:
//   * it loads (or analyzes), or fails with a VmstateError: never a TypeError, RangeError, stack
//     overflow or allocation failure;
//   * a rejected load leaves the machine as it was: RAM byte for byte, and every device's saved state;
//   * now and then, and at the end, the machine still runs as a twin that never saw a rejected load;
//   * the time each input takes and the process's peak RSS are measured (the caller bounds them).
import fs from 'node:fs';
import path from 'node:path';
import { ByteReader, ByteWriter, ChunkedSource, QEMU_DIALECTS, saveState, VmstateError, type QemuDialect } from '../../../src/index.js';
import { analyzeStreamJson, listRecords, parseVmdesc, SCRIPT_10_0, SCRIPT_7_2, type AnalyzeScript } from '../../../src/analyze/index.js';
import { loadMachineDescription, Machine, type MachineDescription } from '../../../src/machine/index.js';
import { findVmdescTrailer, readVmdesc } from '../../../src/savevm/index.js';
import { fixtures } from '../fixtures.js';
import { repoRoot } from '../paths.js';
import { seededRandom } from '../random.js';
import { mutateStream, seedStream, type SeedStream } from './mutate.js';

/** A machine the fuzzer loads into, and how to make one in a known state. */
interface Target {
  readonly seed: SeedStream;
  readonly script: AnalyzeScript;
  /** A fresh destination: booted and run a step, so its state differs from the seed's. */
  readonly make: () => Machine;
}

/** Reference machines with small RAM (the stream and every load stay cheap), each saved as 7.2 and 10.0. */
const MACHINES: readonly { file: string; ram: number; steps: number }[] = [
  { file: 'q35-default.json', ram: 4 << 20, steps: 2 },
  { file: 'q35-multi-iommu.json', ram: 4 << 20, steps: 1 },
  { file: 'virt-smmuv3.json', ram: 16 << 20, steps: 1 },
];

function saveBytes(m: Machine): Uint8Array {
  const w = new ByteWriter(1 << 20);
  m.save((c) => w.putBuffer(c));
  return w.peek().slice();
}

/** The seeds: reference machines' snapshots (to load and analyze) and real QEMU's fixtures (to analyze). */
export async function streamSeeds(): Promise<{ targets: Target[]; fixtureSeeds: { seed: SeedStream; script: AnalyzeScript }[] }> {
  const targets: Target[] = [];
  for (const { file, ram, steps } of MACHINES) {
    const base = loadMachineDescription(path.join(repoRoot, 'machines', file));
    const desc: MachineDescription = { ...base, ramBytes: ram };
    for (const version of ['7.2', '10.0']) {
      const dialect: QemuDialect = QEMU_DIALECTS[version];
      const src = new Machine(desc, { dialect });
      src.boot();
      src.run(steps);
      const seed = await seedStream(`${desc.name}@${version}`, saveBytes(src));
      const make = () => {
        const m = new Machine(desc, { dialect });
        m.boot();
        m.run(1);
        return m;
      };
      targets.push({ seed, make, script: version === '7.2' ? SCRIPT_7_2 : SCRIPT_10_0 });
    }
  }
  const fixtureSeeds = [];
  for (const fx of fixtures()) {
    fixtureSeeds.push({ seed: await seedStream(fx.name, new Uint8Array(fs.readFileSync(fx.stream))), script: fx.script });
  }
  return { targets, fixtureSeeds };
}

/** What a machine holds that a load may change: each RAM block's bytes, and every device's state as saved. */
interface MachineState {
  readonly ram: readonly Buffer[];
  readonly devices: Buffer;
}

function captureState(m: Machine): MachineState {
  return { ram: m.ram.blocks.map((b) => Buffer.from(b.data.slice().buffer)), devices: captureDevices(m) };
}

function captureDevices(m: Machine): Buffer {
  const w = new ByteWriter(64 << 10);
  for (const e of m.registry.entries) {
    if (!e.vmsd) continue;
    const needed = !e.vmsd.needed || (e.vmsd.needed as (s: unknown) => boolean)(e.state);
    w.putByte(needed ? 1 : 0);
    saveState(w, e.vmsd, e.state as object);
  }
  return Buffer.from(w.peek());
}

function sameState(m: Machine, before: MachineState): string | null {
  for (let i = 0; i < m.ram.blocks.length; i++) {
    const b = m.ram.blocks[i].data;
    if (!before.ram[i].equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))) return `RAM block ${m.ram.blocks[i].name} changed`;
  }
  if (!captureDevices(m).equals(before.devices)) return 'device state changed';
  return null;
}

/** Something the oracle refuses, with what it takes to replay it. */
export interface Finding {
  readonly phase: 'load' | 'analyze' | 'state' | 'run';
  readonly seed: string;
  readonly input: number;
  readonly ops: readonly string[];
  readonly error: string;
  readonly bytes: Uint8Array;
}

/** Counts and bounds of one run. */
export interface StreamFuzzStats {
  inputs: number;
  loads: number;
  loadsAccepted: number;
  analyses: number;
  analysesAccepted: number;
  /** Typed errors by code, loads and analyses together. */
  readonly codes: Record<string, number>;
  /** Wall-clock time of the slowest load and analysis (on a shared machine, includes time waiting for a CPU). */
  maxLoadMs: number;
  maxAnalyzeMs: number;
  /** CPU time (user + system) of the slowest load and analysis: the bound that does not depend on the machine's load. */
  maxLoadCpuMs: number;
  maxAnalyzeCpuMs: number;
  /** The input that took longest (load or analyze), for a report. */
  slowest: { ms: number; seed: string; ops: readonly string[] };
  peakRss: number;
  peakHeap: number;
  /** Times the machine was run against its twin after rejected loads. */
  runChecks: number;
  readonly findings: Finding[];
}

/** Options for fuzzStreams. */
export interface StreamFuzzOptions {
  readonly count: number;
  readonly seed: number;
  /** Stops after this many seconds even if fewer than `count` inputs ran. Defaults to no limit. */
  readonly seconds?: number;
  /** One input in this many is a real QEMU fixture, analyzed only. Defaults to 8. */
  readonly fixtureEvery?: number;
  /** Runs the machine against a twin after this many rejected loads. Defaults to 2000. */
  readonly runCheckEvery?: number;
  /** Stops collecting after this many findings. Defaults to 20. */
  readonly maxFindings?: number;
  /** Told of progress every `progressEvery` inputs. */
  readonly progress?: (stats: StreamFuzzStats) => void;
  readonly progressEvery?: number;
}

/** CPU time since `since`, in ms. */
function cpuMs(since: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1000;
}

function describe(e: unknown): string {
  return e instanceof Error ? `${e.constructor.name}: ${e.message}`.slice(0, 500) : String(e);
}

/** Runs `count` mutated streams through loadSnapshot (machine seeds) and analyze (all). */
export async function fuzzStreams(options: StreamFuzzOptions): Promise<StreamFuzzStats> {
  const { targets, fixtureSeeds } = await streamSeeds();
  const allSeeds = [...targets.map((t) => t.seed), ...fixtureSeeds.map((f) => f.seed)];
  const random = seededRandom(options.seed);
  const fixtureEvery = options.fixtureEvery ?? 8;
  const runCheckEvery = options.runCheckEvery ?? 2000;
  const maxFindings = options.maxFindings ?? 20;
  const stats: StreamFuzzStats = {
    inputs: 0,
    loads: 0,
    loadsAccepted: 0,
    analyses: 0,
    analysesAccepted: 0,
    codes: {},
    maxLoadMs: 0,
    maxAnalyzeMs: 0,
    maxLoadCpuMs: 0,
    maxAnalyzeCpuMs: 0,
    slowest: { ms: 0, seed: '', ops: [] },
    peakRss: 0,
    peakHeap: 0,
    runChecks: 0,
    findings: [],
  };
  const machines = targets.map((t) => t.make());
  const states = machines.map(captureState);
  // Putting a machine back after an accepted load: loading its own first snapshot is much cheaper than
  // building and booting another; checked, and built afresh when it does not give the same state.
  const initial = machines.map(saveBytes);
  const reset = async (t: number) => {
    try {
      await machines[t].load(ChunkedSource.fromBytes(initial[t]));
      if (sameState(machines[t], states[t]) === null) return;
    } catch {
      // Built afresh below.
    }
    machines[t] = targets[t].make();
    states[t] = captureState(machines[t]);
    initial[t] = saveBytes(machines[t]);
  };
  let rejectedSinceCheck = 0;
  const typed = (e: unknown): boolean => {
    if (!(e instanceof VmstateError)) return false;
    stats.codes[e.code] = (stats.codes[e.code] ?? 0) + 1;
    return true;
  };
  const find = (f: Finding) => {
    if (stats.findings.length < maxFindings) stats.findings.push(f);
  };
  const slow = (ms: number, seed: string, ops: readonly string[]) => {
    if (ms > stats.slowest.ms) stats.slowest = { ms, seed, ops };
  };

  const stopAt = options.seconds === undefined ? Infinity : performance.now() + options.seconds * 1000;
  for (let input = 0; input < options.count && performance.now() < stopAt; input++) {
    stats.inputs++;
    const fromFixture = fixtureSeeds.length > 0 && input % fixtureEvery === fixtureEvery - 1;
    const t = fromFixture ? -1 : Math.floor(random() * targets.length);
    const { seed, script } = fromFixture ? fixtureSeeds[Math.floor(random() * fixtureSeeds.length)] : targets[t];
    const { bytes, ops } = mutateStream(seed, random, allSeeds);

    if (t >= 0) {
      stats.loads++;
      const m = machines[t];
      const started = performance.now();
      const cpu = process.cpuUsage();
      let accepted = false;
      try {
        await m.load(ChunkedSource.fromBytes(bytes));
        accepted = true;
      } catch (e) {
        if (!typed(e)) find({ phase: 'load', seed: seed.name, input, ops, error: describe(e), bytes });
      }
      const ms = performance.now() - started;
      stats.maxLoadCpuMs = Math.max(stats.maxLoadCpuMs, cpuMs(cpu));
      stats.maxLoadMs = Math.max(stats.maxLoadMs, ms);
      slow(ms, seed.name, ops);
      if (accepted) {
        stats.loadsAccepted++;
        await reset(t);
      } else {
        const changed = sameState(m, states[t]);
        if (changed) {
          find({ phase: 'state', seed: seed.name, input, ops, error: `a rejected load changed the machine: ${changed}`, bytes });
          machines[t] = targets[t].make();
          states[t] = captureState(machines[t]);
        } else if (++rejectedSinceCheck >= runCheckEvery) {
          rejectedSinceCheck = 0;
          const problem = await runCheck(machines, targets);
          stats.runChecks++;
          if (problem) find({ phase: 'run', seed: seed.name, input, ops, error: problem, bytes });
          for (let i = 0; i < machines.length; i++) await reset(i);
        }
      }
    }

    stats.analyses++;
    const started = performance.now();
    const cpu = process.cpuUsage();
    try {
      await analyzeBytes(bytes, script);
      stats.analysesAccepted++;
    } catch (e) {
      if (!typed(e)) find({ phase: 'analyze', seed: seed.name, input, ops, error: describe(e), bytes });
    }
    const ms = performance.now() - started;
    stats.maxAnalyzeCpuMs = Math.max(stats.maxAnalyzeCpuMs, cpuMs(cpu));
    stats.maxAnalyzeMs = Math.max(stats.maxAnalyzeMs, ms);
    slow(ms, seed.name, ops);

    if ((input & 255) === 0) {
      const mem = process.memoryUsage();
      stats.peakRss = Math.max(stats.peakRss, mem.rss);
      stats.peakHeap = Math.max(stats.peakHeap, mem.heapUsed);
    }
    if (options.progress && (input + 1) % (options.progressEvery ?? 10000) === 0) options.progress(stats);
  }
  const problem = await runCheck(machines, targets);
  stats.runChecks++;
  if (problem) find({ phase: 'run', seed: '', input: options.count, ops: [], error: problem, bytes: new Uint8Array(0) });
  const mem = process.memoryUsage();
  stats.peakRss = Math.max(stats.peakRss, mem.rss);
  stats.peakHeap = Math.max(stats.peakHeap, mem.heapUsed);
  return stats;
}

/** Every machine, after its rejected loads, runs as a fresh twin does; null when they all agree. */
async function runCheck(machines: readonly Machine[], targets: readonly Target[]): Promise<string | null> {
  for (let i = 0; i < machines.length; i++) {
    const twin = targets[i].make();
    const got = JSON.stringify(machines[i].run(2));
    const want = JSON.stringify(twin.run(2));
    if (got !== want || machines[i].ramHash() !== twin.ramHash()) return `${targets[i].seed.name}: after rejected loads the machine runs differently from its twin`;
  }
  return null;
}

/** What `vmstate analyze` does with a stream: its trailer's description, then every section decoded. */
export async function analyzeBytes(bytes: Uint8Array, script: AnalyzeScript): Promise<void> {
  const p = findVmdescTrailer(bytes, 0, bytes.length);
  if (p < 0) {
    await listRecords(ChunkedSource.fromBytes(bytes), null);
    return;
  }
  const vmdesc = parseVmdesc(readVmdesc(new ByteReader(bytes, 0, p)), p + 5);
  await analyzeStreamJson(ChunkedSource.fromBytes(bytes), vmdesc, { script });
}
