// Golden tests on streams written by real QEMU 7.2 and 10.0: analyze and desc output equal that QEMU's
// analyze-migration.py's,
// rewriting from decoded values gives the input back byte for byte, and chunking does not change a thing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { ChunkedSource } from '../../src/index.js';
import {
  analyzeStream,
  formatAnalysis,
  listRecords,
  listSections,
  openStreamFile,
  pyDumps,
  requireVmdesc,
  rewriteStream,
  type PyJson,
} from '../../src/analyze/index.js';
import { fixtures } from '../support/fixtures.js';
import { chunkedReads } from '../support/sources.js';

const all = fixtures();

test('there are fixtures from both x86 and aarch64', () => {
  assert.ok(all.length >= 6);
  assert.ok(all.some((f) => f.name.startsWith('aarch64')));
});

for (const fx of all) {
  test(`${fx.name}: analyze equals analyze-migration.py`, { skip: fx.analyzeJson === null }, async () => {
    const file = openStreamFile(fx.stream);
    try {
      const tree = await analyzeStream(file.source(), requireVmdesc(file).vmdesc, { script: fx.script });
      assert.equal(formatAnalysis(tree), fs.readFileSync(fx.analyzeJson as string, 'utf8'));
    } finally {
      file.close();
    }
  });

  test(`${fx.name}: --desc equals analyze-migration.py -d desc`, { skip: fx.descJson === null }, () => {
    const file = openStreamFile(fx.stream);
    try {
      assert.equal(pyDumps(requireVmdesc(file).vmdesc as unknown as PyJson) + '\n', fs.readFileSync(fx.descJson as string, 'utf8'));
    } finally {
      file.close();
    }
  });

  test(`${fx.name}: rewrite from values is byte-identical`, async () => {
    const input = fs.readFileSync(fx.stream);
    const file = openStreamFile(fx.stream);
    const chunks: Buffer[] = [];
    try {
      await rewriteStream(file.source(), requireVmdesc(file).vmdesc, (c) => chunks.push(Buffer.from(c)));
    } finally {
      file.close();
    }
    const out = Buffer.concat(chunks);
    assert.equal(out.length, input.length);
    assert.ok(out.equals(input), 'rewritten stream differs from the input');
  });

  test(`${fx.name}: tiny read chunks decode the same as one buffer`, async () => {
    const bytes = new Uint8Array(fs.readFileSync(fx.stream));
    const { vmdesc } = requireVmdesc(openStreamFile(fx.stream));
    // 4 KiB + 3: reads never line up with records, so every parse step gets retried at some point.
    const chunked = chunkedReads(bytes, 4099);
    const a = formatAnalysis(await analyzeStream(chunked, vmdesc));
    const b = formatAnalysis(await analyzeStream(ChunkedSource.fromBytes(bytes), vmdesc));
    assert.equal(a, b);
  });

  test(`${fx.name}: records tile the stream from the header to the trailer's end`, async () => {
    const file = openStreamFile(fx.stream);
    try {
      const found = requireVmdesc(file);
      const rows = await listRecords(file.source(), found.vmdesc);
      assert.ok(rows.length > 10);
      assert.equal(rows[0].offset, 8, 'the first record follows the 8-byte header');
      for (let i = 1; i < rows.length; i++) assert.equal(rows[i].offset, rows[i - 1].offset + rows[i - 1].size, `gap before row ${i}`);
      const last = rows[rows.length - 1];
      assert.deepEqual([rows[rows.length - 2].type, last.type, last.offset + last.size], ['eof', 'vmdesc', file.size]);
      assert.equal(last.offset, found.offset);
      const sections = rows.filter((r) => 'sectionId' in r);
      assert.deepEqual([sections[0].type, 'idstr' in sections[0] && sections[0].idstr], ['start', 'ram']);
      assert.deepEqual(await listSections(file.source(), found.vmdesc), sections);
    } finally {
      file.close();
    }
  });
}
