// Untrusted input: every fixture cut at every section boundary and at seeded random offsets, and with
// seeded corrupted bytes. Only typed stream errors may come out, each pointing inside the bytes given,
// and decoding a good stream afterwards still works.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { ChunkedSource, StreamFormatError, StreamTruncatedError } from '../../src/index.js';
import {
  analyzeStream,
  formatAnalysis,
  listSections,
  openStreamFile,
  requireVmdesc,
  type Vmdesc,
} from '../../src/analyze/index.js';
import { fixtures } from '../support/fixtures.js';
import { seededRandom } from '../support/random.js';

async function decodeOrTypedError(bytes: Uint8Array, vmdesc: Vmdesc, what: string): Promise<'ok' | 'error'> {
  try {
    await analyzeStream(ChunkedSource.fromBytes(bytes), vmdesc);
    return 'ok';
  } catch (e) {
    if (!(e instanceof StreamTruncatedError || e instanceof StreamFormatError)) {
      assert.fail(`${what}: untyped error ${String(e)}`);
    }
    assert.ok(e.offset >= 0 && e.offset <= bytes.length, `${what}: error offset ${e.offset} outside 0..${bytes.length}`);
    assert.ok(!/\n/.test(e.message), `${what}: message has several lines`);
    return 'error';
  }
}

for (const fx of fixtures()) {
  test(`${fx.name}: cut at every section boundary and at random offsets, only typed errors`, async () => {
    const bytes = new Uint8Array(fs.readFileSync(fx.stream));
    const file = openStreamFile(fx.stream);
    const found = requireVmdesc(file);
    const rows = await listSections(file.source(), found.vmdesc);
    file.close();
    const cuts = new Set<number>([0, 1, 4, 8, 9, found.offset - 1, found.offset, found.offset + 3, bytes.length - 1]);
    for (const r of rows) {
      cuts.add(r.offset);
      cuts.add(r.offset + 1);
      cuts.add(r.offset + r.size - 5); // just before the footer
      cuts.add(r.offset + r.size);
    }
    const random = seededRandom(0x5eed ^ bytes.length);
    for (let i = 0; i < 40; i++) cuts.add(Math.floor(random() * bytes.length));
    for (const cut of cuts) {
      const outcome = await decodeOrTypedError(bytes.subarray(0, cut), found.vmdesc, `cut at ${cut}`);
      // Only the stream ending exactly at EOF (trailer dropped) is still a whole stream.
      assert.equal(outcome, cut === found.offset ? 'ok' : 'error', `cut at ${cut}`);
    }
    // The decoder keeps no state between streams: the whole stream still decodes.
    assert.equal(await decodeOrTypedError(bytes, found.vmdesc, 'whole'), 'ok');
  });

  test(`${fx.name}: seeded corrupted bytes give typed errors or a decode, never a crash`, async () => {
    const bytes = new Uint8Array(fs.readFileSync(fx.stream));
    const file = openStreamFile(fx.stream);
    const { vmdesc, offset: trailer } = requireVmdesc(file);
    file.close();
    const reference = formatAnalysis(await analyzeStream(ChunkedSource.fromBytes(bytes), vmdesc));
    const random = seededRandom(0xc0ffee ^ bytes.length);
    let errors = 0;
    for (let i = 0; i < 40; i++) {
      const copy = bytes.slice();
      for (let k = 0; k < 3; k++) copy[Math.floor(random() * trailer)] = Math.floor(random() * 256);
      if ((await decodeOrTypedError(copy, vmdesc, `corruption ${i}`)) === 'error') errors++;
    }
    assert.ok(errors > 0, 'no corruption was detected at all');
    assert.equal(formatAnalysis(await analyzeStream(ChunkedSource.fromBytes(bytes), vmdesc)), reference);
  });
}

test('a field size claiming gigabytes allocates nothing: it ends as truncation at that field', async () => {
  const fx = fixtures().find((f) => f.name === 'q35-minimal-paused');
  assert.ok(fx);
  const bytes = new Uint8Array(fs.readFileSync(fx.stream));
  const file = openStreamFile(fx.stream);
  const { vmdesc } = requireVmdesc(file);
  file.close();
  const timer = vmdesc.devices.find((d) => d.name === 'timer');
  assert.ok(timer);
  const huge: Vmdesc = {
    ...vmdesc,
    devices: vmdesc.devices.map((d) => (d === timer ? { ...d, fields: [{ name: 'unused', type: 'buffer', size: 3 * 2 ** 30 }] } : d)),
  };
  const before = process.memoryUsage().rss;
  await assert.rejects(
    analyzeStream(ChunkedSource.fromBytes(bytes), huge),
    (e: unknown) => e instanceof StreamTruncatedError && /^timer \(0\)\.unused: stream ends after \d+ of 3221225472 bytes/.test(e.message),
  );
  assert.ok(process.memoryUsage().rss - before < 512 << 20, 'memory grew by hundreds of MiB');
});
