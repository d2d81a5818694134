// The short fuzz run (the long one is `npm run fuzz`, bench/fuzz.ts): seeded mutated streams through
// loadSnapshot into reference machines and through analyze. Only typed errors come out, no input takes
// a second, a rejected load leaves the machine as it was, and the machines still run as their twins do.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fuzzStreams } from '../support/fuzz/stream-fuzz.js';

test('1,000 mutated streams: typed errors only, bounded time, the machine intact after every rejected load', { timeout: 120_000 }, async () => {
  const stats = await fuzzStreams({ count: 1000, seed: 0x5eed, runCheckEvery: 300 });
  const found = stats.findings.map((f) => `${f.phase} ${f.seed} #${f.input} [${f.ops.join('; ')}]: ${f.error}`);
  assert.deepEqual(found, []);
  assert.equal(stats.inputs, 1000);
  // Both ways out are exercised: some inputs load, most are refused, with each kind of stream error.
  assert.ok(stats.loadsAccepted > 0 && stats.loadsAccepted < stats.loads, `${stats.loadsAccepted} of ${stats.loads} loads accepted`);
  assert.ok(stats.codes.STREAM_FORMAT > 0 && stats.codes.STREAM_TRUNCATED > 0 && stats.codes.LOAD > 0, JSON.stringify(stats.codes));
  assert.ok(stats.runChecks >= 2, `${stats.runChecks} run checks`);
  // CPU time, which the shared machine's load does not stretch as it does wall-clock time.
  assert.ok(stats.maxLoadCpuMs < 1000 && stats.maxAnalyzeCpuMs < 1000, `slowest input ${stats.slowest.ms.toFixed(0)} ms: ${stats.slowest.seed} ${stats.slowest.ops.join('; ')}`);
  assert.ok(stats.peakRss < 1536 << 20, `peak RSS ${stats.peakRss >> 20} MiB`);
});
