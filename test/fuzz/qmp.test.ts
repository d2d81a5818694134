// The short QMP fuzz run (the long one is `npm run fuzz`, bench/fuzz.ts): hostile inputs through a real
// server over unix sockets, 200 clients at once, and a 100 MiB line with no newline. Only JSON replies
// come back, every connection is closed within the bound, the big line costs no memory, and a new
// client still gets its query-status answered.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fuzzQmp } from '../support/fuzz/qmp-fuzz.js';

test('1,000 hostile QMP inputs from 200 clients at once, and a 100 MiB line', { timeout: 120_000 }, async () => {
  const stats = await fuzzQmp({ count: 1000, seed: 0x5eed, concurrency: 200, bigLines: 1, bigLineBytes: 100 << 20, timeoutMs: 10_000 });
  assert.deepEqual(stats.findings, []);
  assert.equal(stats.inputs, 1000);
  assert.ok(stats.replies > 0 && stats.errorReplies > 0 && stats.errorReplies < stats.replies, `${stats.errorReplies} errors of ${stats.replies} replies`);
  assert.ok(stats.closedByServer > 0, 'some inputs hit the size or depth limit');
  assert.ok(stats.healthChecks >= 2);
  // All 100 MiB go out; the server refuses the request at 1 MiB and drops the rest as it reads it.
  assert.equal(stats.bigLineSent, 100 << 20);
  assert.ok(stats.bigLineRssGrowth < 64 << 20, `RSS grew ${stats.bigLineRssGrowth >> 20} MiB during the big line`);
  assert.ok(stats.maxMs < 10_000, `slowest input ${stats.maxMs.toFixed(0)} ms`);
});
