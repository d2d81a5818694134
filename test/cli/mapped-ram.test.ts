// mapped-ram (QEMU 9.0 on): RAM blocks whose pages sit at fixed offsets of the file, after a header per
// block and a bitmap of the pages written. A file made here to the layout QEMU 10.0 writes (scripts/
// qemu-10.sh's QEMU writes real ones in qemu-10.test.ts): analyze, sections, rewrite and --ram-dir read it,
// from a file by seeking and from a pipe by reading through.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ByteWriter, RamEncoder, writeConfiguration, writeEof, writeFooter, writeHeader, writeSectionHeader, writeVmdesc } from '../../src/index.js';
import { cliPath } from '../support/paths.js';

const PAGE = 4096;
const page = (v: number) => new Uint8Array(PAGE).fill(v);

/** Block `a` of 3 pages (pages 0 and 2 written), block `b` of 1 page (written), as QEMU lays them out. */
function mappedRamFile(): Uint8Array {
  const parts: { at: number; bytes: Uint8Array }[] = [];
  const w = new ByteWriter();
  const enc = new RamEncoder({ pageSize: PAGE, mappedRam: true }, w);
  writeHeader(w);
  writeConfiguration(w, { machineName: 'pc-q35-10.0', subsections: [{ name: 'configuration/capabilities', version: 1, capabilities: ['mapped-ram'] }] });
  writeSectionHeader(w, { kind: 'start', offset: 0, sectionId: 1, idstr: 'ram', instanceId: 0, version: 4 });
  enc.memSize(4 * PAGE);
  // The writer holds what goes at `end`: the stream up to the first entry, then each later entry.
  let end = 0;
  for (const [name, pages, written] of [['a', 3, [0, 2]], ['b', 1, [0]]] as const) {
    enc.block({ name, usedLength: pages * PAGE });
    const bitmapOffset = end + w.length + 28; // right after the header
    const pagesOffset = Math.ceil((bitmapOffset + 8) / PAGE) * PAGE;
    enc.mappedRegion({ name, usedLength: pages * PAGE }, { version: 1, pageSize: PAGE, bitmapOffset, pagesOffset });
    parts.push({ at: end, bytes: w.peek().slice() });
    w.reset();
    const bitmap = new Uint8Array(8);
    for (const p of written) bitmap[p >> 3] |= 1 << (p & 7);
    parts.push({ at: bitmapOffset, bytes: bitmap });
    for (const p of written) parts.push({ at: pagesOffset + p * PAGE, bytes: page(0x10 * (p + 1) + name.charCodeAt(0)) });
    end = pagesOffset + pages * PAGE;
  }
  enc.eos();
  writeFooter(w, 1);
  for (const kind of ['part', 'end'] as const) {
    writeSectionHeader(w, { kind, offset: 0, sectionId: 1 });
    enc.eos();
    writeFooter(w, 1);
  }
  writeEof(w);
  writeVmdesc(w, new TextEncoder().encode('{"page_size": 4096, "devices": []}'));
  parts.push({ at: end, bytes: w.peek().slice() });
  const file = new Uint8Array(Math.max(...parts.map((p) => p.at + p.bytes.length)));
  for (const p of parts) file.set(p.bytes, p.at);
  return file;
}

function vmstate(args: string[], input?: Uint8Array) {
  const r = spawnSync(process.execPath, [cliPath, ...args], { input, encoding: 'utf8', maxBuffer: 64 << 20 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('a mapped-ram file: analyze lists its blocks, sections tile it, identify says >= 9.0 by its capability, rewrite gives it back, --ram-dir writes the pages its bitmaps mark', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmstate-mapped-'));
  try {
    const bytes = mappedRamFile();
    const file = path.join(dir, 'mapped.mig');
    fs.writeFileSync(file, bytes);
    const analyzed = vmstate(['analyze', file]);
    assert.equal(analyzed.code, 0, analyzed.stderr);
    assert.deepEqual(JSON.parse(analyzed.stdout), { 'ram (1)': { 'section sizes': { a: '0x0000000000003000', b: '0x0000000000001000' } } });
    const rows = JSON.parse(vmstate(['sections', '--json', file]).stdout) as { offset: number; size: number }[];
    for (let i = 1; i < rows.length; i++) assert.equal(rows[i].offset, rows[i - 1].offset + rows[i - 1].size, `gap before row ${i}`);
    assert.equal(rows.at(-1)!.offset + rows.at(-1)!.size, bytes.length);
    const identity = JSON.parse(vmstate(['identify', '--json', file]).stdout) as { atLeast: string; markers: { marker: string }[] };
    assert.equal(identity.atLeast, '10.0');
    assert.ok(identity.markers.some((m) => m.marker === 'the capability mapped-ram (configuration/capabilities)'), JSON.stringify(identity.markers));
    const copy = path.join(dir, 'copy.mig');
    assert.equal(vmstate(['rewrite', file, copy]).code, 0);
    assert.ok(fs.readFileSync(copy).equals(bytes), 'the rewritten file differs');
    for (const [how, args, input] of [
      ['from the file', ['analyze', '--ram-dir', path.join(dir, 'file'), file], undefined],
      ['from a pipe', ['analyze', '--vmdesc', file, '--ram-dir', path.join(dir, 'pipe'), '-'], bytes],
    ] as const) {
      const r = vmstate([...args], input);
      if (how === 'from a pipe') {
        // A pipe cannot be read at an offset, so the pages cannot be fetched: one clear line.
        assert.equal(r.code, 1, how);
        assert.match(r.stderr, /^vmstate: - cannot seek \(a pipe\?\), so it cannot be read at byte offset \d+\n$/);
        continue;
      }
      assert.equal(r.code, 0, `${how}: ${r.stderr}`);
      const a = fs.readFileSync(path.join(dir, 'file', 'a'));
      assert.deepEqual([a[0], a[PAGE], a[2 * PAGE], a.length], [0x10 + 0x61, 0, 0x30 + 0x61, 3 * PAGE]);
      assert.deepEqual([...fs.readFileSync(path.join(dir, 'file', 'b')).subarray(0, 2)], [0x10 + 0x62, 0x10 + 0x62]);
    }
    // From a pipe without --ram-dir, the pages are read through rather than jumped over.
    assert.equal(vmstate(['analyze', '--vmdesc', file, '-'], bytes).stdout, analyzed.stdout);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
