// The zero scan: every byte that is not zero lies in exactly one reported range, ranges come in order
// inside the bounds, for short and long ranges, odd lengths, and all sorts of bytes. The scan stops when
// told to. Each holds for the scan as Node runs it and for both of its ways: block by block against a
// zero buffer, and byte by byte (without Buffer).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { forEachNonZeroRun, scanBlocks, scanBytes } from '../../src/stream/non-zero-runs.js';
import { seededRandom } from '../support/random.js';

type Scan = typeof forEachNonZeroRun;
const zero = Buffer.alloc(64 * 1024);
const SCANS: ReadonlyArray<[string, Scan]> = [
  ['forEachNonZeroRun', forEachNonZeroRun],
  ['blocks', (bytes, start, end, visit) => scanBlocks(bytes, start, end, visit, zero)],
  ['bytes', (bytes, start, end, visit) => void scanBytes(bytes, start, end, visit)],
];

function check(bytes: Uint8Array, start: number, end: number, what: string): number {
  // The most runs any scan reported (a scan may report one run as several).
  let runs = 0;
  for (const [name, scan] of SCANS) runs = Math.max(runs, checkOne(scan, bytes, start, end, `${name}: ${what}`));
  return runs;
}

function checkOne(scan: Scan, bytes: Uint8Array, start: number, end: number, what: string): number {
  const covered = new Uint8Array(bytes.length);
  let last = start;
  let runs = 0;
  scan(bytes, start, end, (from, to) => {
    assert.ok(from >= last && from < to && to <= end, `${what}: range ${from}..${to} after ${last}, bounds ${start}..${end}`);
    covered.fill(1, from, to);
    last = to;
    runs++;
  });
  for (let i = 0; i < bytes.length; i++) {
    const want = i >= start && i < end && bytes[i] !== 0;
    if (want) assert.equal(covered[i], 1, `${what}: byte ${i} (${bytes[i]}) not covered`);
    if (i < start || i >= end) assert.equal(covered[i], 0, `${what}: byte ${i} outside the bounds covered`);
  }
  return runs;
}

test('every byte that is not zero is covered once, in order, short and long, odd and even', () => {
  const random = seededRandom(0x2e50);
  // Long ranges too: the block scan crosses zeros in growing steps and must step back for what follows.
  for (const len of [0, 1, 2, 3, 255, 256, 257, 1000, 4097, 70_001, 300_000]) {
    for (const density of [0, 0.001, 0.05, 0.5, 1]) {
      const bytes = new Uint8Array(len + 10).map(() => (random() < density ? 1 + Math.floor(random() * 255) : 0));
      const start = Math.floor(random() * 5);
      check(bytes, start, start + len, `len ${len} density ${density}`);
    }
  }
});

test('bytes of every kind keep their positions: a UTF-16 BOM, surrogates, a trailing odd byte', () => {
  const tricky = [0xff, 0xfe, 0, 0, 0x00, 0xd8, 0, 0, 0x00, 0xdc, 0, 0, 0x3d, 0xd8, 0x00, 0xde, 0, 0, 0, 0, 7];
  for (let pad = 0; pad < 300; pad += 299) {
    const bytes = new Uint8Array([...tricky, ...new Array(pad).fill(0), ...tricky, 9]);
    for (const start of [0, 1]) check(bytes, start, bytes.length - start, `pad ${pad} start ${start}`);
  }
  // A lone high surrogate just before an odd last byte: the decoder makes one U+FFFD of the two.
  const surrogateTail = new Uint8Array(301);
  surrogateTail.set([0x00, 0xd8, 0x7f], 298);
  for (const start of [0, 2]) check(surrogateTail, start, 301, `surrogate tail start ${start}`);
  // All zero: no range at all.
  assert.equal(check(new Uint8Array(1000), 0, 1000, 'zeros'), 0);
});

test('the scan stops when the visitor returns false, also across windows of a long range', () => {
  const bytes = new Uint8Array(300_000);
  for (const at of [5, 1000, 70_000, 200_000]) bytes[at] = 1;
  for (const [name, scan] of SCANS) {
    for (const [start, end] of [[0, 300], [0, bytes.length]]) {
      const seen: number[] = [];
      scan(bytes, start, end, (from, to) => {
        for (let i = from; i < to; i++) if (bytes[i] !== 0) seen.push(i);
        return seen.length < 2;
      });
      assert.deepEqual(seen, end === 300 ? [5] : [5, 1000], name);
    }
    // Without stopping, every window is visited.
    const all: number[] = [];
    scan(bytes, 0, bytes.length, (from, to) => {
      for (let i = from; i < to; i++) if (bytes[i] !== 0) all.push(i);
    });
    assert.deepEqual(all, [5, 1000, 70_000, 200_000], name);
  }
});
