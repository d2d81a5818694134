// How analyze-migration.py (QEMU 7.2) prints leaves and JSON: integers and buffers against straightforward BigInt and
// string references on seeded values, and Python's json.dumps escapes and layout as Python writes them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hexBytes, pyDumps } from '../../src/analyze/index.js';
import { renderInt } from '../../src/analyze/script-7.2.js';
import { seededRandom } from '../support/random.js';

/** The script's integer text, the slow and obvious way (Python: '0x%0*x' % udata, then ' (%d)' if negative). */
function referenceInt(value: bigint, size: number, signed: boolean): string {
  const unsigned = size > 0 ? BigInt.asUintN(size * 8, value) : value;
  const hex = `0x${unsigned.toString(16).padStart(size * 2, '0')}`;
  if (!signed || size === 0) return hex;
  const s = BigInt.asIntN(size * 8, unsigned);
  return s < 0n ? `${hex} (${s})` : hex;
}

test('integers of every size print as the script prints them, from numbers and from bigints', () => {
  const random = seededRandom(0x1a7);
  for (const size of [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 16]) {
    for (let i = 0; i < 400; i++) {
      // Edge values first, then random bytes.
      const top = 2n ** BigInt(Math.max(size * 8 - 1, 0));
      const edges = [0n, 1n, -1n, top, top - 1n, 2n * top - 1n];
      let v = 0n;
      if (i < edges.length) v = BigInt.asUintN(Math.max(size * 8, 1), edges[i]);
      else for (let k = 0; k < size; k++) v = (v << 8n) | BigInt(Math.floor(random() * 256));
      for (const signed of [false, true]) {
        const want = referenceInt(v, size, signed);
        assert.equal(renderInt(v, size, signed), want, `bigint ${v} size ${size}`);
        // Values up to 4 bytes are numbers in the tree, negative when QEMU reads them signed.
        if (size >= 1 && size <= 4) {
          const n = signed ? Number(BigInt.asIntN(size * 8, v)) : Number(v);
          assert.equal(renderInt(n, size, signed), want, `number ${n} size ${size}`);
        }
      }
    }
  }
});

test('buffers print as space-separated hex pairs, zero or not', () => {
  const random = seededRandom(0xb0f);
  for (const len of [0, 1, 2, 3, 4, 5, 17, 255, 256, 4096]) {
    for (const zeros of [0, 0.5, 0.99, 1]) {
      const b = new Uint8Array(len).map(() => (random() < zeros ? 0 : Math.floor(random() * 256)));
      assert.equal(hexBytes(b), Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' '), `${len} bytes`);
    }
  }
  // A view into a larger buffer prints only its own bytes.
  assert.equal(hexBytes(new Uint8Array([1, 2, 0xab, 4]).subarray(1, 3)), '02 ab');
});

test('pyDumps escapes and lays out like Python json.dumps(indent=4, separators=(",", ": "))', () => {
  // Expected texts are what CPython 3.11 prints for the same values.
  assert.equal(pyDumps('a"b\\c/\n\r\t\b\f\u0001\u001f \u007f\u00e9\u20ac\ud83d\ude00~'), '"a\\"b\\\\c/\\n\\r\\t\\b\\f\\u0001\\u001f \\u007f\\u00e9\\u20ac\\ud83d\\ude00~"');
  assert.equal(pyDumps(new Map()), '{}');
  assert.equal(pyDumps([]), '[]');
  assert.equal(
    pyDumps(new Map<string, never>([['k\u00ff', [1, true, null, 'x', new Map(), []] as never], ['n', 12345678901234567890n as never]])),
    '{\n    "k\\u00ff": [\n        1,\n        true,\n        null,\n        "x",\n        {},\n        []\n    ],\n    "n": 12345678901234567890\n}',
  );
  assert.equal(pyDumps({ a: 1.5, b: 1e-7, c: -0.25 }), '{\n    "a": 1.5,\n    "b": 1e-07,\n    "c": -0.25\n}');
  // Long strings, mostly plain with escapes near the end, take the slow path only where needed.
  const long = 'x'.repeat(100_000) + '\u0000"';
  assert.equal(pyDumps(long), `"${'x'.repeat(100_000)}\\u0000\\""`);
});
