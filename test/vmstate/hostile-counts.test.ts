// Element counts from the stream allocate nothing by themselves: a count times its multiplier beyond
// 2^32 - 1 is a format error (it was a RangeError from the array allocation), and a count beyond the bytes
// left ends as truncation at the first element that is not there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteReader, defineVmsd, loadState, StreamFormatError, StreamTruncatedError, u32, u8, varray } from '../../src/index.js';

const vmsd = defineVmsd({ name: 'dev', version: 1, fields: [u32('n'), varray(u8('a'), 'n', 4)] });

/** be32 count, then five bytes of elements. */
function body(count: number): ByteReader {
  return new ByteReader(new Uint8Array([count >>> 24, (count >>> 16) & 0xff, (count >>> 8) & 0xff, count & 0xff, 1, 2, 3, 4, 5]));
}

test('a varray count whose product passes 2^32 - 1 is a StreamFormatError naming the count field', () => {
  for (const count of [0x40000000, 0xffffffff]) {
    assert.throws(
      () => loadState(body(count), vmsd, { n: 0, a: [] }, 1),
      (e: unknown) => e instanceof StreamFormatError && e.message.includes(`count field "n" holds ${count}, times 4 is more than 2^32 - 1 elements`),
    );
  }
});

test('a count larger than the bytes left is truncation at the first missing element', () => {
  assert.throws(() => loadState(body(0x3fffffff), vmsd, { n: 0, a: [] }, 1), (e: unknown) => e instanceof StreamTruncatedError && e.offset === 9);
  const s = { n: 0, a: [] as number[] };
  loadState(new ByteReader(new Uint8Array([0, 0, 0, 1, 9, 8, 7, 6])), vmsd, s, 1);
  assert.deepEqual(s, { n: 1, a: [9, 8, 7, 6] });
});
