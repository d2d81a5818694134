// The size hint of a chunked source: a small stream is read into a buffer of its own size, and a hint that
// turns out wrong (a file still growing, or cut) changes nothing but the buffer sizes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChunkedSource, type PullSource } from '../../src/index.js';

/** A source over `data` that records how many bytes each read offered room for. */
function spySource(data: Uint8Array, maxPerRead = Infinity): { source: PullSource; rooms: number[] } {
  const rooms: number[] = [];
  let pos = 0;
  return {
    rooms,
    source: {
      async readInto(target) {
        rooms.push(target.length);
        const n = Math.min(target.length, maxPerRead, data.length - pos);
        target.set(data.subarray(pos, pos + n));
        pos += n;
        return n;
      },
    },
  };
}

const data = (n: number) => new Uint8Array(n).map((_, i) => (i * 7) & 255);

/** Reads the whole stream in `unit`-byte steps; returns the bytes seen. */
async function readAll(src: ChunkedSource, unit: number): Promise<number[]> {
  const seen: number[] = [];
  while (!(await src.isAtEnd())) {
    const part = await src.step(unit, (r) => r.getBuffer(Math.min(unit, r.remaining)).slice());
    seen.push(...part);
  }
  return seen;
}

test('with an exact size hint a small stream is read in one read of its size, plus one to see the end', async () => {
  const bytes = data(10_000);
  const { source, rooms } = spySource(bytes);
  const src = new ChunkedSource(source, { sizeHint: bytes.length });
  assert.deepEqual(await readAll(src, 3000), [...bytes]);
  assert.deepEqual(rooms, [10_001, 1]);
});

test('a size hint below the real size still reads every byte', async () => {
  const bytes = data(50_000);
  const { source, rooms } = spySource(bytes, 7000);
  const src = new ChunkedSource(source, { sizeHint: 1000, chunkSize: 16 * 1024 });
  assert.deepEqual(await readAll(src, 9000), [...bytes]);
  assert.ok(rooms.length > 2);
  // A step may need more than the hint: one 50 000-byte unit.
  const again = spySource(bytes, 7000);
  const whole = new ChunkedSource(again.source, { sizeHint: 1000, chunkSize: 16 * 1024 });
  assert.equal((await whole.step(50_000, (r) => r.getBuffer(50_000))).length, 50_000);
  assert.equal(await whole.isAtEnd(), true);
});

test('a size hint above the real size ends where the bytes end', async () => {
  const bytes = data(5000);
  const { source } = spySource(bytes, 1024);
  const src = new ChunkedSource(source, { sizeHint: 1 << 20, chunkSize: 4096 });
  assert.deepEqual(await readAll(src, 777), [...bytes]);
});

test('without a size hint reads offer a whole chunk', async () => {
  const bytes = data(5000);
  const { source, rooms } = spySource(bytes);
  const src = new ChunkedSource(source, { chunkSize: 4096 });
  assert.deepEqual(await readAll(src, 100_000), [...bytes]);
  assert.ok(rooms.every((n) => n >= 4096), `rooms ${rooms.join(',')}`);
});
