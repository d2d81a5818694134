// decodeStream learns from the stream how RAM records are laid out: here, POSTCOPY_ADVISE's page size
// summary says which RAM block entries carry a page size (blocks on huge pages, with postcopy-ram on).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteWriter, ChunkedSource, RamEncoder, writeCommand, writeEof, writeFooter, writeHeader, writeSectionHeader } from '../../src/index.js';
import { decodeStream, rewriteStream } from '../../src/analyze/index.js';

function be64(n: number): number[] {
  return [0, 0, 0, 0, n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
}

test("POSTCOPY_ADVISE's page size summary tells which block entries carry their page size", async () => {
  const w = new ByteWriter();
  const enc = new RamEncoder({ pageSize: 4096 }, w);
  writeHeader(w);
  // Blocks of 4 KiB and 2 MiB pages: the summary is their OR.
  writeCommand(w, { command: 3, payload: new Uint8Array([...be64(0x201000), ...be64(0x1000)]) });
  writeSectionHeader(w, { kind: 'start', offset: 0, sectionId: 1, idstr: 'ram', instanceId: 0, version: 4 });
  enc.memSize(0x600000);
  enc.block({ name: 'mem-huge', usedLength: 0x400000, pageSize: 0x200000 });
  enc.block({ name: 'pc.ram', usedLength: 0x200000 });
  enc.eos();
  writeFooter(w, 1);
  writeEof(w);
  const bytes = w.peek().slice();
  const entries: string[] = [];
  await decodeStream(ChunkedSource.fromBytes(bytes), null, { ram: { block: (b) => entries.push(`${b.name} ${b.pageSize ?? '-'}`) } });
  assert.deepEqual(entries, ['mem-huge 2097152', 'pc.ram -']);
  const chunks: Uint8Array[] = [];
  await rewriteStream(ChunkedSource.fromBytes(bytes), { page_size: 4096, devices: [] }, (c) => chunks.push(c.slice()));
  assert.deepEqual(Buffer.concat(chunks), Buffer.from(bytes));
});
