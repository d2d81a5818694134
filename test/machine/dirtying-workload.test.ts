// The dirtying workload behind `vmstate vm --dirty`: its rate, its window, and that pausing owes nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DirtyingWorkload } from '../../src/machine/index.js';
import { GuestRam } from '../../src/ram/index.js';

function ram(bytes: number): GuestRam {
  const r = new GuestRam();
  r.addBlock('pc.ram', 0, bytes);
  return r;
}

/** Pages whose first word is not zero, and the sum of those words. */
function counters(r: GuestRam, w: DirtyingWorkload): { touched: number; sum: number } {
  let touched = 0;
  let sum = 0;
  for (let p = 0; p < w.pages; p++) {
    const v = r.readU32(w.base + p * r.pageSize);
    if (v) touched++;
    sum += v;
  }
  return { touched, sum };
}

test('the window is the top quarter of RAM, at most 256 MiB', () => {
  const small = new DirtyingWorkload(ram(64 << 20), 1000);
  assert.equal(small.pages, 4096);
  assert.equal(small.base, 48 << 20);
  const big = new DirtyingWorkload(ram(2 ** 31), 1000);
  assert.equal(big.pages, 65536);
  assert.equal(big.base, 2 ** 31 - (256 << 20));
});

test('it writes pagesPerSecond pages a second, in turn over the window, and marks them dirty', () => {
  const r = ram(64 << 20);
  const w = new DirtyingWorkload(r, 10_000);
  w.tick(0);
  for (let t = 10; t <= 1000; t += 10) w.tick(t);
  assert.equal(w.pagesWritten, 10_000);
  // 10,000 writes over 4,096 pages: every page at least twice, the first 1,808 three times.
  assert.deepEqual(counters(r, w), { touched: 4096, sum: 10_000 });
  assert.equal(r.readU32(w.base), 3);
  assert.equal(r.readU32(w.base + 1808 * 4096), 2);
  const dirty = r.blocks[0].dirty;
  const firstWindowPage = w.base / 4096;
  assert.equal(dirty[firstWindowPage >> 3] & (1 << (firstWindowPage & 7)), 1 << (firstWindowPage & 7));
  assert.equal(dirty[0], 0, 'nothing below the window');
});

test('a fraction of a page is carried to the next tick; a stalled clock owes at most a second; a pause owes nothing', () => {
  const r = ram(64 << 20);
  const w = new DirtyingWorkload(r, 150);
  w.tick(0);
  for (let t = 1; t <= 100; t++) w.tick(t); // 1 ms ticks: 0.15 pages each
  assert.equal(w.pagesWritten, 15);
  w.tick(10_100); // ten seconds late
  assert.equal(w.pagesWritten, 15 + 150);
  w.pause();
  w.tick(50_000); // the clock starts again
  w.tick(50_100);
  assert.equal(w.pagesWritten, 15 + 150 + 15);
});

test('a rate that is not a positive number is refused', () => {
  for (const bad of [0, -5, Number.NaN, Infinity, 2_000_000]) assert.throws(() => new DirtyingWorkload(ram(1 << 20), bad), { code: 'USAGE' });
});
