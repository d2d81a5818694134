// Stream files: the trailer search finds exactly the trailer its rule defines, on every fixture and on
// seeded bytes full of look-alike candidates; a small file is read once and still decodes the same.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { openStreamFile, readVmdescFromFile } from '../../src/analyze/index.js';
import { findVmdescTrailer } from '../../src/savevm/index.js';
import { fixtures } from '../support/fixtures.js';
import { seededRandom } from '../support/random.js';

/**
 * The rule, checked at every offset from the end: the last 0x06 byte with EOF (0x00) before it, '{' five
 * bytes after it, and a be32 length between that ends the JSON exactly at the end of the stream.
 */
function trailerByRule(tail: Uint8Array, tailOffset: number, streamLength: number): number {
  for (let i = tail.length - 6; i >= 1; i--) {
    if (tail[i] !== 0x06 || tail[i - 1] !== 0x00 || tail[i + 5] !== 0x7b) continue;
    const length = ((tail[i + 1] << 24) | (tail[i + 2] << 16) | (tail[i + 3] << 8) | tail[i + 4]) >>> 0;
    if (tailOffset + i + 5 + length === streamLength) return tailOffset + i;
  }
  return -1;
}

test('the trailer search finds what the rule finds on every fixture, whole and from a tail', () => {
  for (const fx of fixtures()) {
    const bytes = new Uint8Array(fs.readFileSync(fx.stream));
    const want = trailerByRule(bytes, 0, bytes.length);
    assert.ok(want > 0, fx.name);
    assert.equal(findVmdescTrailer(bytes, 0, bytes.length), want, fx.name);
    const from = want - 100;
    assert.equal(findVmdescTrailer(bytes.subarray(from), from, bytes.length), want, `${fx.name} tail`);
    const file = openStreamFile(fx.stream);
    assert.equal(readVmdescFromFile(file)?.offset, want, `${fx.name} file`);
    file.close();
  }
});

test('the trailer search finds what the rule finds on seeded bytes with look-alike candidates', () => {
  const random = seededRandom(0x7a11);
  for (let n = 0; n < 2000; n++) {
    const len = 1 + Math.floor(random() * 200);
    // Few distinct values, so 0x06, 0x00 and '{' meet often; sometimes a real trailer ends the bytes.
    const bytes = new Uint8Array(len).map(() => [0, 6, 0x7b, 1][Math.floor(random() * 4)]);
    if (len > 6 && random() < 0.5) {
      const p = Math.floor(random() * (len - 6)) + 1;
      const jsonLength = len - p - 5;
      bytes.set([0, 6, jsonLength >>> 24, (jsonLength >>> 16) & 255, (jsonLength >>> 8) & 255, jsonLength & 255, 0x7b].slice(0, len - p + 1), p - 1);
    }
    const offset = Math.floor(random() * 1000);
    for (const cut of [0, Math.floor(random() * len)]) {
      const tail = bytes.subarray(cut);
      assert.equal(findVmdescTrailer(tail, offset + cut, offset + len), trailerByRule(tail, offset + cut, offset + len), `case ${n} cut ${cut}`);
    }
  }
});
