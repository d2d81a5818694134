// identify: the QEMU version bounds a stream shows, each with its marker, on the fixtures of both QEMUs
// and on streams made to carry the markers 10.0's fixtures do not (MULTIFD_FLUSH, COMPRESS, early setup).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync } from 'node:zlib';
import { ByteWriter, ChunkedSource, writeFooter, writeSectionHeader, type RamEncoder } from '../../src/index.js';
import { formatIdentity, identifyStream, identityWatcher, listSections, openStreamFile, readVmdescFromFile } from '../../src/analyze/index.js';
import { fixtures } from '../support/fixtures.js';
import { ramOnlyStream } from '../support/ram-stream.js';

async function identify(stream: string) {
  const file = openStreamFile(stream);
  try {
    return await identifyStream(file.source(), readVmdescFromFile(file)?.vmdesc ?? null);
  } finally {
    file.close();
  }
}

test('QEMU 7.2 fixtures: at least 7.2 by their machine type, nothing newer', async () => {
  for (const fx of fixtures('7.2')) {
    const id = await identify(fx.stream);
    assert.equal(id.atLeast, '7.2', fx.name);
    assert.equal(id.atMost, null, fx.name);
    assert.deepEqual(id.commands, [], fx.name);
    assert.equal(id.markers.length, 1, fx.name);
    assert.match(id.markers[0].marker, /^machine type (pc-q35|pc-i440fx|virt)-7\.2$/);
    assert.ok(id.ramBlocks.length > 0 && id.note === null, fx.name);
  }
});

test('QEMU 10.0 fixtures: at least 10.0, with SWITCHOVER_START and the described configuration among the markers', async () => {
  for (const fx of fixtures('10.0')) {
    const id = await identify(fx.stream);
    assert.equal(id.atLeast, '10.0', fx.name);
    const markers = id.markers.map((m) => `${m.bound} ${m.version} ${m.marker}`);
    assert.ok(markers.includes('>= 8.2 the VMDESCRIPTION describes the configuration section'), fx.name);
    assert.ok(markers.some((m) => m.startsWith('>= 9.1.3 the command SWITCHOVER_START')), fx.name);
    assert.deepEqual(id.commands.map((c) => c.name), ['SWITCHOVER_START'], fx.name);
  }
  const arm = await identify(fixtures('10.0').find((f) => f.name.includes('aarch64'))?.stream ?? '');
  assert.deepEqual([arm.machineType?.value, arm.architecture?.value, arm.pageSize?.marker], ['virt-10.0', 'arm or aarch64', 'configuration/target-page-bits 12']);
  assert.match(formatIdentity(arm), /^QEMU {10}>= 10\.0\n/);
});

/** A stream of RAM only (one 2-page block), with `extra` written into its PART section. */
function ramStream(extra: (enc: RamEncoder) => void, before?: (w: ByteWriter) => void): Uint8Array {
  return ramOnlyStream({ pages: 2, part: extra, before });
}

test('MULTIFD_FLUSH says >= 8.1, COMPRESS <= 9.0, a FULL section in the setup phase >= 8.0', async () => {
  const flush = await identifyStream(ChunkedSource.fromBytes(ramStream((e) => e.multifdFlush())), null);
  assert.deepEqual([flush.atLeast, flush.atMost], ['8.1', null]);
  const compress = await identifyStream(ChunkedSource.fromBytes(ramStream((e) => e.compressedPage('pc.ram', 0, deflateSync(new Uint8Array(4096)), true))), null);
  assert.deepEqual([compress.atLeast, compress.atMost], [null, '9.0']);
  // An early FULL section with a one-byte body, described by the trailer: before RAM's START, or after it
  // (where QEMU 10.0 puts virtio-mem's, its handlers being in that order) but before any page.
  const desc = { page_size: 4096, devices: [{ name: 'virtio-mem-device-early', instance_id: 0, fields: [{ name: 'x', type: 'uint8', size: 1 }] }] };
  const earlySection = (w: ByteWriter) => {
    writeSectionHeader(w, { kind: 'full', offset: 0, sectionId: 1, idstr: 'virtio-mem-device-early', instanceId: 0, version: 1 });
    w.putByte(7);
    writeFooter(w, 1);
  };
  const markers = async (bytes: Uint8Array) =>
    (await identifyStream(ChunkedSource.fromBytes(bytes), desc)).markers.map((m) => `${m.bound} ${m.version} ${m.marker} @${m.offset}`);
  const marker = (at: number) => `>= 8.0 a FULL section (virtio-mem-device-early) in the setup phase, before any PART or END @${at}`;
  assert.deepEqual(await markers(ramOnlyStream({ pages: 2, before: earlySection })), [marker(8)]);
  const afterStart = ramOnlyStream({ pages: 2, afterStart: earlySection });
  assert.deepEqual(await markers(afterStart), [marker(Buffer.from(afterStart).indexOf('virtio-mem-device-early') - 6)]);
  // After the pages, where every QEMU sends device state at the end, it says nothing.
  const w = new ByteWriter();
  const plain = ramOnlyStream({ pages: 2 });
  w.putBuffer(plain.subarray(0, plain.length - 1)); // all but EOF
  earlySection(w);
  w.putByte(plain[plain.length - 1]);
  assert.deepEqual(await markers(w.peek().slice()), []);
});

test('a stream cut short is identified as far as it goes, with a note', async () => {
  const cut = ramStream((e) => e.multifdFlush()).subarray(0, 60);
  const id = await identifyStream(ChunkedSource.fromBytes(cut), null);
  assert.deepEqual(id.ramBlocks, [{ name: 'pc.ram', size: 8192 }]);
  assert.match(id.note ?? '', /^the stream could be read only up to byte offset \d+: /);
});

test('an identity watcher beside listSections sees what identifyStream does, in the one read', async () => {
  for (const fx of fixtures()) {
    const file = openStreamFile(fx.stream);
    try {
      const vmdesc = readVmdescFromFile(file)?.vmdesc ?? null;
      const watcher = identityWatcher(vmdesc);
      const rows = await listSections(file.source(), vmdesc, [], watcher.handler);
      assert.deepEqual(rows, await listSections(file.source(), vmdesc), fx.name);
      assert.deepEqual(watcher.identity(null), await identifyStream(file.source(), vmdesc), fx.name);
      assert.deepEqual(watcher.identity(null), watcher.identity(null), `${fx.name}: asked twice`);
    } finally {
      file.close();
    }
  }
});
