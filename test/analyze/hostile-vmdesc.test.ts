// The VMDESCRIPTION is as untrusted as the stream: a field size it sets must cost time linear in the
// bytes read (found by the stream fuzzer, test/fuzz: a uint64 given "size": 65536 took seconds to read,
// a byte at a time into a growing BigInt).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteReader } from '../../src/index.js';
import { readInt } from '../../src/analyze/read-body.js';

test('an integer of 256 KiB reads in linear time, to the right value', () => {
  const size = 256 << 10;
  const bytes = new Uint8Array(size);
  bytes[0] = 0x80;
  bytes[size - 1] = 0x01;
  const started = performance.now();
  const v = readInt(new ByteReader(bytes), size, false) as bigint;
  const ms = performance.now() - started;
  assert.equal(v, (1n << BigInt(size * 8 - 1)) | 1n);
  assert.equal(BigInt.asIntN(size * 8, v) < 0n, true);
  assert.equal(readInt(new ByteReader(bytes), size, true), BigInt.asIntN(size * 8, v));
  assert.ok(ms < 1000, `${ms.toFixed(0)} ms`);
  assert.equal(readInt(new ByteReader(new Uint8Array([1, 2, 3])), 3, false), 0x010203n);
  assert.equal(readInt(new ByteReader(new Uint8Array([0xff, 0xff, 0xfe])), 3, true), -2n);
  assert.equal(readInt(new ByteReader(new Uint8Array(0)), 0, false), 0n);
});
