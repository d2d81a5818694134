// The iterative sections besides RAM (block migration, dirty bitmaps, the spapr hash table, s390 storage
// attributes): byte vectors written to each format's rules, framed record by record, printed as QEMU
// 10.0's script prints spapr/htab (an empty string), rewritten byte for byte, and refused with a clear
// error where a record is not one of the format's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteWriter, ChunkedSource, writeEof, writeFooter, writeHeader, writeSectionHeader, writeVmdesc } from '../../src/index.js';
import { analyzeStreamJson, listRecords, rewriteStream } from '../../src/analyze/index.js';

const VMDESC = { page_size: 4096, devices: [] };

/** A stream of one iterative section: START, PART and END with these bodies. */
function stream(idstr: string, version: number, bodies: readonly number[][]): Uint8Array {
  const w = new ByteWriter();
  writeHeader(w);
  bodies.forEach((body, i) => {
    const kind = i === 0 ? 'start' : i === bodies.length - 1 ? 'end' : 'part';
    writeSectionHeader(w, kind === 'start' ? { kind, offset: 0, sectionId: 5, idstr, instanceId: 0, version } : { kind, offset: 0, sectionId: 5 });
    w.putBuffer(new Uint8Array(body));
    writeFooter(w, 5);
  });
  writeEof(w);
  writeVmdesc(w, new TextEncoder().encode(JSON.stringify(VMDESC)));
  return w.peek().slice();
}

const be16 = (n: number) => [n >> 8, n & 255];
const be32 = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
const be64 = (n: number) => [...be32(Math.floor(n / 2 ** 32)), ...be32(n >>> 0)];
const str8 = (s: string) => [s.length, ...new TextEncoder().encode(s)];

const CASES: readonly { idstr: string; version: number; bodies: number[][] }[] = [
  {
    idstr: 'block',
    version: 1,
    bodies: [
      [...be64((0 << 9) | 0x01), ...str8('drive0'), ...new Array(1 << 20).fill(7), ...be64((100 << 9) | 0x04), ...be64(0x02)],
      [...be64((2048 << 9) | 0x01 | 0x08), ...str8('drive0'), ...be64(0x02)],
      [...be64(0x02)],
    ],
  },
  {
    idstr: 'dirty-bitmap',
    version: 1,
    bodies: [
      [0x10 | 0x08 | 0x04, ...str8('node0'), ...str8('bitmap0'), ...be32(65536), 0x01, 0x01],
      [0x40, ...be64(0), ...be32(128), ...be64(3), 1, 2, 3, 0x40 | 0x02, ...be64(128), ...be32(128), 0x01],
      [0x20 | 0x01],
    ],
  },
  {
    idstr: 'spapr/htab',
    version: 1,
    bodies: [[...be32(18)], [...be32(0), ...be32(4), ...be16(2), ...be16(1), ...new Array(32).fill(9), ...be32(0), ...be16(0), ...be16(0)], [...be32(0), ...be32(0), ...be16(0), ...be16(0)]],
  },
  {
    idstr: 's390-storage_attributes',
    version: 0,
    bodies: [[...be64(0x01)], [...be64(0x3000 | 0x02), ...be64(4), 1, 2, 3, 4, ...be64(0x01)], [...be64(0x08), ...be64(0x01)]],
  },
];

for (const c of CASES) {
  test(`${c.idstr}: framed record by record, printed as an empty string, rewritten byte for byte`, async () => {
    const bytes = stream(c.idstr, c.version, c.bodies);
    const json = Buffer.from(await analyzeStreamJson(ChunkedSource.fromBytes(bytes), VMDESC)).toString('latin1');
    assert.equal(json, `{\n    "${c.idstr} (5)": ""\n}\n`);
    const rows = await listRecords(ChunkedSource.fromBytes(bytes), VMDESC);
    assert.deepEqual(rows.map((r) => r.type), ['start', 'part', 'end', 'eof', 'vmdesc']);
    const chunks: Uint8Array[] = [];
    await rewriteStream(ChunkedSource.fromBytes(bytes), VMDESC, (chunk) => chunks.push(chunk.slice()));
    assert.deepEqual(Buffer.concat(chunks), Buffer.from(bytes));
  });
}

test('records that are not one of the format\'s, a wrong version and a payload over 1 MiB are clear errors', async () => {
  const fails = async (bytes: Uint8Array, message: RegExp) =>
    assert.rejects(analyzeStreamJson(ChunkedSource.fromBytes(bytes), VMDESC), (e: unknown) => e instanceof Error && message.test(e.message));
  await fails(stream('block', 1, [[...be64(0x10)]]), /^block \(5\): block migration flags 0x10 are not known \(at byte offset 27\)$/);
  await fails(stream('s390-storage_attributes', 0, [[...be64(0x04)]]), /storage attribute flags 0x4 are not known/);
  await fails(stream('s390-storage_attributes', 0, [[...be64(0x02), ...be64(2 << 20)]]), /payload of 2097152 bytes is longer than 1048576/);
  await fails(stream('dirty-bitmap', 2, [[0x01]]), /^dirty-bitmap \(5\): iterative section "dirty-bitmap" at version 2 is not supported/);
  await fails(stream('virtio-mem-iterative', 1, [[0x01]]), /iterative section "virtio-mem-iterative" is not supported/);
});
