// The RAM handler's passes: setup sends every page, a sync adds exactly the pages the guest dirtied,
// completion syncs once more; and a destination that loads the sections ends with the same RAM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync } from 'node:zlib';
import { ByteReader, ByteWriter, GuestRam, RamEncoder, RamHandler } from '../../src/index.js';

function load(into: RamHandler, chunks: Uint8Array[]): void {
  const dec = into.loadSection();
  for (const c of chunks) assert.equal(dec.step(new ByteReader(c)), true);
}

test('passes send every page once, then only what the guest dirtied', () => {
  const ram = new GuestRam();
  ram.addBlock('pc.ram', 0, 64 * 4096);
  ram.write(3 * 4096, new Uint8Array([1, 2, 3]));
  const h = new RamHandler(ram.blocks, { pagesPerIteration: 20 });
  const sections: Uint8Array[] = [];
  const section = (f: (w: ByteWriter) => unknown) => {
    const w = new ByteWriter();
    f(w);
    sections.push(w.peek().slice());
  };
  section((w) => h.saveSetup(w));
  assert.equal(h.remainingBytes, 64 * 4096);
  section((w) => assert.equal(h.saveIterate(w), false));
  assert.equal(h.remainingBytes, 44 * 4096);
  section((w) => h.saveIterate(w));
  section((w) => h.saveIterate(w));
  section((w) => assert.equal(h.saveIterate(w), true));
  assert.deepEqual({ ...h.stats, dirtyPagesRate: 0 }, { zeroPages: 63, normalPages: 1, syncs: 0, dirtyPagesRate: 0 });
  // The guest writes two pages (one twice); a sync picks up exactly those.
  ram.writeU32(10 * 4096, 0xdeadbeef);
  ram.writeU32(10 * 4096 + 8, 1);
  ram.write(63 * 4096 + 4000, new Uint8Array(96).fill(7));
  h.syncDirty();
  assert.equal(h.remainingBytes, 2 * 4096);
  assert.ok(h.stats.dirtyPagesRate > 0, 'two pages dirtied since setup give a rate');
  section((w) => assert.equal(h.saveIterate(w), true));
  assert.deepEqual({ ...h.stats, dirtyPagesRate: 0 }, { zeroPages: 63, normalPages: 3, syncs: 1, dirtyPagesRate: 0 });
  ram.write(5 * 4096, new Uint8Array([9]));
  section((w) => h.saveComplete(w));
  assert.deepEqual({ ...h.stats, dirtyPagesRate: 0 }, { zeroPages: 63, normalPages: 4, syncs: 2, dirtyPagesRate: 0 });

  const dst = new GuestRam();
  dst.addBlock('pc.ram', 0, 64 * 4096);
  load(new RamHandler(dst.blocks), sections);
  assert.deepEqual(dst.blocks[0].data, ram.blocks[0].data);
});

test('a destination applies XBZRLE and compressed pages to the RAM it holds', () => {
  const ram = new GuestRam();
  ram.addBlock('pc.ram', 0, 2 * 4096);
  const h = new RamHandler(ram.blocks);
  const w = new ByteWriter();
  const enc = new RamEncoder({ pageSize: 4096 }, w);
  const page = new Uint8Array(4096).map((_, i) => (i * 3) & 0xff);
  enc.writeBlockList(2 * 4096, [{ name: 'pc.ram', usedLength: 2 * 4096 }]);
  enc.page('pc.ram', 0, page, true);
  // Bytes 10 and 11 of page 0 change; page 1 arrives deflated.
  enc.xbzrlePage('pc.ram', 0, new Uint8Array([10, 2, 0xaa, 0xbb]), false);
  enc.compressedPage('pc.ram', 4096, deflateSync(page.slice().reverse()), false);
  enc.eos();
  load(h, [w.peek()]);
  const want = page.slice();
  want.set([0xaa, 0xbb], 10);
  assert.deepEqual(ram.blocks[0].data.subarray(0, 4096), want);
  assert.deepEqual(ram.blocks[0].data.subarray(4096), page.slice().reverse());
});

test('a page never written is sent as ZERO unread, and a ZERO record leaves such a page alone', () => {
  const ram = new GuestRam();
  const block = ram.addBlock('pc.ram', 0, 4 * 4096);
  ram.write(1 * 4096, new Uint8Array([5]));
  ram.writeU32(2 * 4096, 0); // written, though zero again
  assert.deepEqual([...block.written], [0b0110]);
  // Bytes put in behind GuestRam's back break its promise: page 3 goes out as ZERO all the same, which
  // shows the bitmap, not the bytes, decided.
  block.data[3 * 4096] = 9;
  const h = new RamHandler(ram.blocks);
  const setup = new ByteWriter();
  h.saveSetup(setup);
  const pages = new ByteWriter();
  h.saveIterate(pages);
  assert.deepEqual({ zero: h.stats.zeroPages, normal: h.stats.normalPages }, { zero: 3, normal: 1 });

  // The destination: page 0 holds stale bytes but was never written, so ZERO skips it; page 2 was
  // written, so ZERO clears it; page 1 arrives whole and is marked written.
  const dst = new GuestRam();
  const into = dst.addBlock('pc.ram', 0, 4 * 4096);
  into.data[0] = 0xee;
  dst.write(2 * 4096, new Uint8Array([0xdd]));
  load(new RamHandler(dst.blocks), [setup.peek(), pages.peek()]);
  assert.deepEqual([into.data[0], into.data[4096], into.data[2 * 4096], into.data[3 * 4096]], [0xee, 5, 0, 0]);
  assert.deepEqual([...into.written], [0b0110]);
});
