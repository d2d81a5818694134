// The long fuzz run: mutated streams through loadSnapshot and analyze, hostile inputs through the QMP
// server (see bench/README.md, "Fuzzing"). Prints counts, rates, the longest time one input took and the
// peak RSS; writes every finding's input to a directory and exits 1 when there is one.
//
//   node dist/bench/fuzz.js [--streams N] [--qmp N] [--seed S] [--seconds T] [--out DIR]
//
// --seconds bounds the time of each part (streams, then QMP): it stops there and reports how many inputs ran.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fuzzStreams, type Finding, type StreamFuzzStats } from '../test/support/fuzz/stream-fuzz.js';
import { fuzzQmp, type QmpFuzzStats } from '../test/support/fuzz/qmp-fuzz.js';

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < 0) throw new Error(`--${name} wants a non-negative integer`);
  return v;
}

const streams = option('streams', 1_000_000);
const qmp = option('qmp', 100_000);
const seed = option('seed', 1);
const budget = option('seconds', 0);
const outIndex = process.argv.indexOf('--out');
const out = outIndex >= 0 ? process.argv[outIndex + 1] : path.join(os.tmpdir(), `vmstate-fuzz-${seed}`);

const mib = (n: number) => `${(n / 1048576).toFixed(0)} MiB`;
const log = (line: string) => process.stderr.write(line + '\n');

function streamLine(s: StreamFuzzStats, seconds: number): string {
  return (
    `${s.inputs} streams (${(s.inputs / seconds).toFixed(0)}/s): ${s.loads} loads (${s.loadsAccepted} accepted), ` +
    `${s.analyses} analyses (${s.analysesAccepted} accepted); slowest load ${s.maxLoadMs.toFixed(0)} ms ` +
    `(CPU ${s.maxLoadCpuMs.toFixed(0)} ms), analysis ${s.maxAnalyzeMs.toFixed(0)} ms (CPU ${s.maxAnalyzeCpuMs.toFixed(0)} ms); ` +
    `peak RSS ${mib(s.peakRss)}; findings ${s.findings.length}`
  );
}

function writeFindings(kind: string, findings: readonly Finding[]): void {
  if (findings.length === 0) return;
  fs.mkdirSync(out, { recursive: true });
  findings.forEach((f, i) => {
    const base = path.join(out, `${kind}-${i}`);
    fs.writeFileSync(`${base}.mig`, f.bytes);
    fs.writeFileSync(`${base}.json`, JSON.stringify({ phase: f.phase, seed: f.seed, input: f.input, ops: f.ops, error: f.error }, null, 2) + '\n');
  });
  log(`findings written to ${out}`);
}

let failed = false;
if (streams > 0) {
  const t0 = performance.now();
  const s = await fuzzStreams({
    count: streams,
    seed,
    seconds: budget > 0 ? budget : undefined,
    maxFindings: 100,
    progressEvery: 20_000,
    progress: (p) => log(`  ${streamLine(p, (performance.now() - t0) / 1000)}`),
  });
  const seconds = (performance.now() - t0) / 1000;
  console.log(`streams: ${streamLine(s, seconds)}; ${seconds.toFixed(0)} s`);
  console.log(`  typed errors by code: ${JSON.stringify(s.codes)}`);
  console.log(`  run checks (machine vs its twin after rejected loads): ${s.runChecks}`);
  console.log(`  slowest input: ${s.slowest.ms.toFixed(1)} ms, ${s.slowest.seed}: ${s.slowest.ops.join('; ')}`);
  console.log(`  peak heap ${mib(s.peakHeap)}`);
  for (const f of s.findings.slice(0, 10)) console.log(`  FINDING ${f.phase} ${f.seed} #${f.input} [${f.ops.join('; ')}]: ${f.error}`);
  writeFindings('stream', s.findings);
  if (s.findings.length > 0) failed = true;
}
if (qmp > 0) {
  const t0 = performance.now();
  const q: QmpFuzzStats = await fuzzQmp({ count: qmp, seed, seconds: budget > 0 ? budget : undefined, progress: (line) => log(`  ${line}`) });
  const seconds = (performance.now() - t0) / 1000;
  console.log(
    `qmp: ${q.inputs} inputs (${(q.inputs / seconds).toFixed(0)}/s) on ${q.connections} connections, up to ${q.concurrency} at once; ` +
      `${q.replies} replies (${q.errorReplies} errors), ${q.closedByServer} connections closed by the server; ` +
      `max ${q.maxMs.toFixed(1)} ms per input; ${q.bigLines} lines of ${mib(q.bigLineBytes)}; peak RSS ${mib(q.peakRss)}; ` +
      `findings ${q.findings.length}; ${seconds.toFixed(0)} s`,
  );
  for (const f of q.findings.slice(0, 10)) console.log(`  FINDING qmp: ${f}`);
  if (q.findings.length > 0) failed = true;
}
process.exitCode = failed ? 1 : 0;
