// Byte vectors for the big-endian reader and writer, one comment per field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteReader, ByteWriter, ChunkedSource, StreamFormatError, StreamTruncatedError } from '../../src/index.js';

const bytes = (...b: number[]) => new Uint8Array(b);

test('reader decodes big-endian integers and counted strings', () => {
  const r = new ByteReader(
    bytes(
      0x7f, //                                        u8 127
      0x12, 0x34, //                                  be16 0x1234
      0xde, 0xad, 0xbe, 0xef, //                      be32 0xdeadbeef
      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, // be64 2^64-2
      0x03, 0x72, 0x61, 0x6d, //                      str8 "ram"
      0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, // be64 2^32 as a number
    ),
    1000,
  );
  assert.equal(r.getByte(), 0x7f);
  assert.equal(r.getBe16(), 0x1234);
  assert.equal(r.getBe32(), 0xdeadbeef);
  assert.equal(r.getBe64(), 0xfffffffffffffffen);
  assert.equal(r.getCountedString(), 'ram');
  assert.equal(r.getBe64Number(), 2 ** 32);
  assert.equal(r.offset, 1000 + 27);
  assert.equal(r.remaining, 0);
});

test('getBuffer returns a view, not a copy', () => {
  const src = bytes(1, 2, 3, 4);
  const r = new ByteReader(src);
  r.getByte();
  const view = r.getBuffer(2);
  src[1] = 9;
  assert.deepEqual([...view], [9, 3]);
});

test('running out of bytes is a StreamTruncatedError with the absolute offset', () => {
  const r = new ByteReader(bytes(0, 0, 1), 500);
  r.getByte();
  assert.throws(
    () => r.getBe32(),
    (e: unknown) =>
      e instanceof StreamTruncatedError && e.offset === 501 && e.message === 'stream ends after 2 of 4 bytes (at byte offset 501)',
  );
  assert.equal(r.pos, 1, 'a failed read consumes nothing');
});

test('a be64 beyond 2^53 where a number is expected is a format error', () => {
  const r = new ByteReader(bytes(0x00, 0x20, 0, 0, 0, 0, 0, 0));
  assert.throws(() => r.getBe64Number(), StreamFormatError);
});

test('writer mirrors the reader and grows its one buffer', () => {
  const w = new ByteWriter(4);
  w.putByte(0x7f);
  w.putBe16(0x1234);
  w.putBe32(0xdeadbeef);
  w.putBe64(-2n); //                 two's complement of -2 is 2^64-2
  w.putCountedString('ram');
  w.putBe64Number(2 ** 32);
  w.putFill(0xaa, 2);
  assert.deepEqual(
    [...w.peek()],
    [0x7f, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 3, 0x72, 0x61, 0x6d, 0, 0, 0, 1, 0, 0, 0, 0, 0xaa, 0xaa],
  );
  assert.throws(() => w.putCountedString('x'.repeat(256)), { code: 'USAGE', message: 'counted string of 256 bytes exceeds 255' });
});

/** A source over 0..63 that hands over at most 5 bytes per read. */
function trickle(): ChunkedSource {
  const data = bytes(...Array.from({ length: 64 }, (_, i) => i));
  let pos = 0;
  return new ChunkedSource(
    {
      async readInto(t) {
        const n = Math.min(5, t.length, data.length - pos);
        t.set(data.subarray(pos, pos + n));
        pos += n;
        return n;
      },
    },
    { chunkSize: 16 },
  );
}

test('a chunked source buffers what a step needs before it runs it, once', async () => {
  const src = trickle();
  const seen: number[] = [];
  let calls = 0;
  // 40 bytes asked for, in reads of 5: the step runs once, over all of them.
  await src.step(40, (r) => {
    calls++;
    while (seen.length < 5) seen.push(r.getBuffer(8)[0]);
    return true;
  });
  assert.deepEqual(seen, [0, 8, 16, 24, 32]);
  assert.equal(calls, 1);
  assert.equal(src.offset, 40);
  // A step that reads more than it asked for fails rather than running again.
  await assert.rejects(
    src.step(4, (r) => r.getBuffer(20)),
    (e: unknown) => e instanceof StreamFormatError && /one record needs more than 4 bytes/.test(e.message),
  );
});

test('a chunked source runs a parse without effects again when it runs out of bytes', async () => {
  const src = trickle();
  let calls = 0;
  const unit = await src.read((r) => {
    calls++;
    return r.getBuffer(30).slice();
  });
  assert.deepEqual([...unit], Array.from({ length: 30 }, (_, i) => i));
  assert.ok(calls > 1, 'the parse ran again with more bytes');
  assert.equal(src.offset, 30);
});

test('a chunked source reports real truncation at the end of the source', async () => {
  const src = ChunkedSource.fromBytes(bytes(1, 2, 3));
  await assert.rejects(src.read((r) => r.getBe32()), StreamTruncatedError);
  await assert.rejects(src.step(4, (r) => r.getBe32()), StreamTruncatedError);
});

test('getBuffer of a reader over a Node Buffer copies with slice(), as over any Uint8Array', () => {
  const source = Buffer.from([1, 2, 3, 4]);
  const kept = new ByteReader(source).getBuffer(4).slice();
  source.fill(0);
  assert.deepEqual([...kept], [1, 2, 3, 4]);
});
