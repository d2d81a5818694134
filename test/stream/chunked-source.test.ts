// The size hint of a chunked source: a small stream is read into a buffer of its own size, and a hint that
// turns out wrong (a file still growing, or cut) changes nothing but the buffer sizes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { ChunkedSource, pullFromReadable, type PullSource } from '../../src/index.js';

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

/** A source that hands over `data` in chunks of the given sizes (cycled), each a fresh buffer. */
function chunkSource(bytes: Uint8Array, sizes: readonly number[]): { source: PullSource; chunks: Uint8Array[] } {
  const chunks: Uint8Array[] = [];
  let pos = 0;
  return {
    chunks,
    source: {
      readInto: () => Promise.reject(new Error('a source with readChunk is read only through it')),
      async readChunk() {
        if (pos >= bytes.length) return null;
        const n = Math.min(sizes[chunks.length % sizes.length], bytes.length - pos);
        const chunk = bytes.slice(pos, pos + n);
        pos += n;
        chunks.push(chunk);
        return chunk;
      },
    },
  };
}

test('chunks handed over (readChunk) give the same bytes whatever the chunk and step sizes', async () => {
  const bytes = data(20_000);
  for (const sizes of [[1], [7, 300, 1], [4096], [20_000], [0, 999]]) {
    for (const unit of [1, 13, 4104, 30_000]) {
      const src = new ChunkedSource(chunkSource(bytes, sizes).source, { chunkSize: 4096 });
      assert.deepEqual(await readAll(src, unit), [...bytes], `chunks ${sizes}, steps of ${unit}`);
    }
  }
  // A parse that runs out of bytes is run again over more; a skip hands over what lies between.
  const src = new ChunkedSource(chunkSource(bytes, [5]).source, { chunkSize: 64 });
  assert.equal(await src.read((r) => r.getBe32() + r.getBe32()), ((0 << 24) | (7 << 16) | (14 << 8) | 21) + ((28 << 24) | (35 << 16) | (42 << 8) | 49));
  const skipped: number[] = [];
  await src.skipTo(1000, (c) => skipped.push(...c));
  assert.deepEqual(skipped, [...bytes.subarray(8, 1000)]);
  assert.deepEqual(await readAll(src, 500), [...bytes.subarray(1000)]);
});

test('a step that asks for exactly what it reads has the chunks read in place, and only what straddles two copied', async () => {
  const bytes = data(300);
  const { source, chunks } = chunkSource(bytes, [100]);
  const src = new ChunkedSource(source);
  const where: string[] = [];
  while (!(await src.isAtEnd())) {
    await src.step(30, (r) => {
      const inChunk = chunks.findIndex((c) => c.buffer === r.bytes.buffer);
      where.push(inChunk >= 0 ? `chunk ${inChunk}` : `copy of ${r.remaining}`);
      r.getBuffer(Math.min(30, r.remaining));
    });
  }
  // 90..120 straddles chunks 0 and 1: its 30 bytes are copied, and 120 on is chunk 1 again, in place.
  assert.deepEqual(where, ['chunk 0', 'chunk 0', 'chunk 0', 'copy of 30', 'chunk 1', 'chunk 1', 'copy of 30', 'chunk 2', 'chunk 2', 'chunk 2']);
});

test('pullFromReadable hands a long chunk over as it is, joins short ones that wait together, and reads what came before an error', async () => {
  const stream = new PassThrough();
  const source = pullFromReadable(stream);
  const long = new Uint8Array(64 << 10).fill(1);
  stream.write(long);
  await new Promise((r) => setImmediate(r));
  const first = await source.readChunk?.();
  assert.equal(first?.buffer, long.buffer, 'a 64 KiB chunk is not copied');
  for (let i = 0; i < 4; i++) stream.write(new Uint8Array(16 << 10).fill(i));
  await new Promise((r) => setImmediate(r));
  const joined = await source.readChunk?.();
  assert.equal(joined?.length, 64 << 10);
  assert.deepEqual([0, 1, 2, 3].map((i) => joined?.[i * (16 << 10)]), [0, 1, 2, 3]);
  stream.write(new Uint8Array([7, 8, 9]));
  await new Promise((r) => setImmediate(r));
  stream.destroy(new Error('reset'));
  const target = new Uint8Array(10);
  assert.equal(await source.readInto(target), 3);
  assert.deepEqual([...target.subarray(0, 3)], [7, 8, 9]);
  await assert.rejects(source.readInto(target), /reset/);
});
