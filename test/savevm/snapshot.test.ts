// Snapshots: save in plan order, load in stream order, the errors for every way a stream can disagree
// with the local registry, and the load-order guard catching the 2018 ordering bug.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { finished } from 'node:stream/promises';
import {
  ChunkedSource,
  LoadError,
  LoadOrderError,
  loadSnapshot,
  readVmdesc,
  ByteReader,
  saveSnapshot,
  StreamFormatError,
  SaveError,
  SaveRegistry,
  RamHandler,
  defineVmsd,
  MigPriority,
  u64,
  bool,
  QEMU_DIALECTS,
  ByteWriter,
  StreamSaver,
  type PullSource,
} from '../../src/index.js';
import { analyzeStream, listSections, parseVmdesc } from '../../src/analyze/index.js';
import { findVmdescTrailer, writePing } from '../../src/savevm/index.js';
import { seededRandom } from '../support/random.js';
import { bridgeVmsd, iommuVmsd, nicVmsd, toyMachine } from '../support/toy-machine.js';

function snapshot(registry: SaveRegistry, options: Parameters<typeof saveSnapshot>[2] = {}): Uint8Array {
  const chunks: Buffer[] = [];
  saveSnapshot(registry, (c) => chunks.push(Buffer.from(c)), { machineName: 'toy-1.0', ...options });
  return new Uint8Array(Buffer.concat(chunks));
}

function vmdescOf(bytes: Uint8Array) {
  const p = findVmdescTrailer(bytes, 0, bytes.length);
  return parseVmdesc(readVmdesc(new ByteReader(bytes, 0, p)), p + 5);
}

test('sections come in plan order: RAM iterations, then bridge, IOMMU, NIC', async () => {
  const m = toyMachine({ seed: 5 });
  const bytes = snapshot(m.registry);
  const rows = await listSections(ChunkedSource.fromBytes(bytes), vmdescOf(bytes));
  assert.deepEqual(
    rows.map((r) => `${r.type} ${r.idstr}`),
    ['start ram', 'part ram', 'part ram', 'end ram', 'full bridge', 'full iommu', 'full nic'],
  );
  const tree = await analyzeStream(ChunkedSource.fromBytes(bytes), vmdescOf(bytes));
  assert.deepEqual([...tree.keys()], ['ram (0)', 'bridge (2)', 'iommu (1)', 'nic (3)']);
});

test('save, load into a fresh machine: every state and RAM equal; the IOMMU sees the bus it should', async () => {
  const src = toyMachine({ seed: 7 });
  const dst = toyMachine();
  const result = await loadSnapshot(dst.registry, ChunkedSource.fromBytes(snapshot(src.registry)), { checkLoadOrder: true, machineName: 'toy-1.0' });
  assert.deepEqual(result.loaded.map((e) => e.label), ['ram#0', 'bridge#0', 'iommu#0', 'nic#0']);
  assert.deepEqual(dst.bridge, src.bridge);
  assert.deepEqual(dst.nic, src.nic);
  assert.deepEqual(dst.ram, src.ram);
  assert.equal(dst.iommu.cached_bus, src.bridge.secondary);
  assert.equal(dst.iommu.root, src.iommu.root);
});

test('property: seeded states save, load and save again to the same bytes', async () => {
  const random = seededRandom(7);
  for (let i = 0; i < 25; i++) {
    const seed = 1 + Math.floor(random() * 1e6);
    const a = toyMachine({ seed });
    const first = snapshot(a.registry);
    const b = toyMachine();
    await loadSnapshot(b.registry, ChunkedSource.fromBytes(first));
    assert.deepEqual(b.nic, a.nic, `seed ${seed}`);
    assert.deepEqual(Buffer.from(snapshot(b.registry)), Buffer.from(first), `seed ${seed}: load then save changed bytes`);
  }
});

test('the 2018 bug: legacy priorities save the IOMMU before the bridge; the guard refuses, without it the IOMMU sees bus 0', async () => {
  const src = toyMachine({ seed: 9, legacy: true });
  const bytes = snapshot(src.registry);
  const guarded = toyMachine();
  await assert.rejects(
    loadSnapshot(guarded.registry, ChunkedSource.fromBytes(bytes), { checkLoadOrder: true }),
    (e: unknown) =>
      e instanceof LoadOrderError &&
      e.message === 'iommu#0 (loaded at position 1) read the state of bridge#0, which is not in the stream before it' &&
      e.reader === 'iommu#0' &&
      e.target === 'bridge#0',
  );
  const unguarded = toyMachine();
  await loadSnapshot(unguarded.registry, ChunkedSource.fromBytes(bytes));
  assert.equal(unguarded.bridge.secondary, src.bridge.secondary, 'the bridge itself loads fine');
  assert.equal(unguarded.iommu.cached_bus, 0, 'but the IOMMU rebuilt from the bus number before it arrived');
});

async function loadError(bytes: Uint8Array, into = toyMachine().registry): Promise<string> {
  try {
    await loadSnapshot(into, ChunkedSource.fromBytes(bytes), { machineName: 'toy-1.0' });
  } catch (e) {
    assert.ok(e instanceof LoadError || e instanceof StreamFormatError, String(e));
    return e.message;
  }
  return assert.fail('loaded without error');
}

test('unknown and missing sections, versions out of range, bad footers, wrong machine', async () => {
  const bytes = snapshot(toyMachine({ seed: 3 }).registry);
  const onlyRam = new SaveRegistry();
  onlyRam.register({ idstr: 'ram', handler: toyMachine().entries.ram.handler as RamHandler });
  assert.equal(await loadError(bytes, onlyRam), 'bridge (2): unknown section: nothing is registered as bridge instance 0');

  // A sender without the NIC.
  const noNic = toyMachine();
  const partial = new SaveRegistry();
  partial.register({ idstr: 'ram', handler: noNic.entries.ram.handler as RamHandler });
  partial.register({ idstr: 'iommu', vmsd: iommuVmsd, state: noNic.iommu });
  partial.register({ idstr: 'bridge', vmsd: bridgeVmsd, state: noNic.bridge });
  assert.equal(await loadError(snapshot(partial)), 'nic#0: missing section: nic#0 is registered locally but the stream has no section for it');

  // Version: the IOMMU section header says 2; patch it to 3, then to 0.
  const iommuHeader = Buffer.from(bytes).indexOf(Buffer.from([5, ...Buffer.from('iommu')]));
  const tooNew = bytes.slice();
  tooNew[iommuHeader + 6 + 4 + 3] = 3;
  assert.equal(await loadError(tooNew), 'iommu (1): incoming version_id 3 is too new for local version_id 2');
  const tooOld = bytes.slice();
  tooOld[iommuHeader + 6 + 4 + 3] = 0;
  assert.equal(await loadError(tooOld), 'iommu (1): incoming version_id 0 is too old for local minimum_version_id 1');

  const badFooter = bytes.slice();
  const body = iommuHeader + 6 + 8;
  const footer = body + 8 + 1 + 4; // root, enabled, cached_bus
  assert.equal(badFooter[footer], 0x7e);
  badFooter[footer + 4] = 9;
  assert.equal(await loadError(badFooter), `iommu (1): section footer closes section 9, expected 1 (at byte offset ${footer})`);

  const other = toyMachine();
  await assert.rejects(loadSnapshot(other.registry, ChunkedSource.fromBytes(bytes), { machineName: 'toy-2.0' }), /configuration: machine type "toy-1.0" in the stream does not match local "toy-2.0"/);
});

test('an older sender: a version 1 IOMMU section (no cached_bus field) loads into version 2', async () => {
  const src = toyMachine({ seed: 4 });
  const old = new SaveRegistry();
  old.register({ idstr: 'ram', handler: src.entries.ram.handler as RamHandler });
  old.register({ idstr: 'iommu', vmsd: defineVmsd({ name: 'toy-iommu', version: 1, priority: MigPriority.IOMMU, fields: [u64('root'), bool('enabled')] }), state: src.iommu });
  old.register({ idstr: 'bridge', vmsd: bridgeVmsd, state: src.bridge });
  old.register({ idstr: 'nic', vmsd: nicVmsd, state: src.nic });
  const dst = toyMachine();
  await loadSnapshot(dst.registry, ChunkedSource.fromBytes(snapshot(old)), { checkLoadOrder: true });
  assert.equal(dst.iommu.root, src.iommu.root);
  assert.equal(dst.iommu.cached_bus, src.bridge.secondary, 'post-load filled what the old version lacks');
});

test('QEMU 10.0\'s dialect: SWITCHOVER_START before the END section, the configuration described first; it loads back', async () => {
  const src = toyMachine({ seed: 11 });
  const old = snapshot(src.registry);
  const bytes = snapshot(src.registry, { machineName: 'toy-10.0', dialect: QEMU_DIALECTS['10.0'] });
  const rows = await listSections(ChunkedSource.fromBytes(bytes), vmdescOf(bytes));
  assert.deepEqual(
    rows.map((r) => `${r.type} ${r.idstr}`),
    ['start ram', 'part ram', 'part ram', 'end ram', 'full bridge', 'full iommu', 'full nic'],
  );
  // The same records as 7.2's but for the machine name and QEMU_VM_COMMAND (8), SWITCHOVER_START (be16 11), length (be16 0).
  const end = rows[3].offset;
  assert.deepEqual([...bytes.subarray(end - 5, end)], [0x08, 0x00, 0x0b, 0x00, 0x00]);
  const oldEnd = Buffer.from(old).indexOf(Buffer.from([0x03, 0, 0, 0, 0]), 30);
  const shift = 1; // "toy-10.0" is a byte longer than "toy-1.0"
  assert.deepEqual(Buffer.from(bytes.subarray(end, end + 40)), Buffer.from(old.subarray(oldEnd, oldEnd + 40)));
  assert.equal(end, oldEnd + shift + 5);
  const text = new TextDecoder().decode(readVmdesc(new ByteReader(bytes, 0, findVmdescTrailer(bytes, 0, bytes.length))));
  assert.match(text, /^\{"configuration": \{"vmsd_name": "configuration", "version": 1, "fields": \[\{"name": "len", "type": "uint32", "size": 4\}, \{"name": "name", "type": "buffer", "size": 8\}\]\}, "page_size": 4096, "devices": \[/);
  const dst = toyMachine();
  await loadSnapshot(dst.registry, ChunkedSource.fromBytes(bytes), { checkLoadOrder: true, machineName: ['toy-1.0', 'toy-10.0'] });
  assert.deepEqual(dst.nic, src.nic);
  assert.deepEqual(dst.ram, src.ram);
  await assert.rejects(
    loadSnapshot(toyMachine().registry, ChunkedSource.fromBytes(bytes), { machineName: ['toy-1.0', 'toy-2.0'] }),
    /configuration: machine type "toy-10.0" in the stream does not match local "toy-1.0" or "toy-2.0"/,
  );
  // Machine types older than 10.0 turn SWITCHOVER_START off (send-switchover-start); the description stays 10.0's.
  const older = snapshot(src.registry, { machineName: 'toy-9.2', dialect: QEMU_DIALECTS['10.0'] });
  assert.equal(Buffer.from(older).indexOf(Buffer.from([0x08, 0x00, 0x0b, 0x00, 0x00])), -1);
  assert.equal(older.length, bytes.length - 5 - 1); // no command, and a name a byte shorter
});

test('a live load over a connection that waits for an answer: PING 2 is passed on with every section before it loaded, and the load ends at the trailer', async () => {
  const src = toyMachine({ seed: 11 });
  const dst = toyMachine();
  // The stream a source with a return path sends: the whole state and PING 2, then (once answered) EOF
  // and the trailer.
  const w = new ByteWriter(1 << 16);
  const saver = new StreamSaver(w, src.registry, { machineName: 'toy-1.0', returnPath: true });
  saver.setup();
  while (!saver.iterate());
  saver.completeState();
  writePing(w, 2);
  const state = w.peek().slice();
  w.reset();
  saver.finish();
  const end = w.peek().slice();
  let answer: () => void = () => undefined;
  const answered = new Promise<void>((resolve) => (answer = resolve));
  let at = 0;
  // Seven bytes at a time, so records split across reads; then nothing until PING 2 is answered, and
  // after the trailer nothing ever.
  const connection: PullSource = {
    async readInto(target) {
      if (at === state.length) await answered;
      const bytes = at < state.length ? state.subarray(at, Math.min(at + 7, state.length)) : end.subarray(at - state.length);
      if (bytes.length === 0) return new Promise<number>(() => undefined);
      const n = Math.min(bytes.length, target.length);
      target.set(bytes.subarray(0, n));
      at += n;
      return n;
    },
  };
  const commands: string[] = [];
  let loaded = false;
  await loadSnapshot(dst.registry, new ChunkedSource(connection, { chunkSize: 4096 }), {
    machineName: 'toy-1.0',
    live: true,
    openAfterTrailer: () => true,
    onCommand(c) {
      commands.push(c.name === 'PING' ? `PING ${c.value}` : String(c.name));
      if (c.name === 'PING' && c.value === 2) {
        assert.deepEqual(dst.nic, src.nic);
        assert.deepEqual(dst.ram, src.ram);
        assert.equal(loaded, false);
        answer();
      }
    },
    onLoaded: () => (loaded = true),
  });
  assert.deepEqual(commands, ['OPEN_RETURN_PATH', 'PING 1', 'PING 2']);
  assert.equal(loaded, true);
  assert.equal(at, state.length + end.length);
  assert.deepEqual(dst.bridge, src.bridge);
  assert.equal(dst.iommu.cached_bus, src.bridge.secondary);
});

test('each chunk is the sink\'s own: a WriteStream that queues them writes a file that loads back equal', async () => {
  // 4 MiB of random RAM, 1 MiB a pass: the stream comes in several chunks of about a megabyte.
  const machine = (seed: number) => {
    const rng = seededRandom(seed);
    const ram = Uint8Array.from({ length: 4 << 20 }, () => (seed ? Math.floor(rng() * 256) : 0));
    const registry = new SaveRegistry();
    const bridge = { secondary: seed, subordinate: seed + 1 };
    const iommu = { root: BigInt(seed) << 12n, enabled: true, cached_bus: 0 };
    const nic = { regs: [1, 2, 3, seed], tx_timer: -1n, mac: new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, seed]), vlan: 7 };
    registry.register({ idstr: 'ram', handler: new RamHandler([{ name: 'pc.ram', data: ram }], { pagesPerIteration: 256 }) });
    registry.register({ idstr: 'iommu', vmsd: iommuVmsd, state: iommu });
    registry.register({ idstr: 'bridge', vmsd: bridgeVmsd, state: bridge });
    registry.register({ idstr: 'nic', vmsd: nicVmsd, state: nic });
    return { registry, ram, bridge, iommu, nic };
  };
  const src = machine(9);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmstate-snapshot-'));
  try {
    const file = path.join(dir, 'vm.mig');
    const out = fs.createWriteStream(file);
    const chunks: Uint8Array[] = [];
    // The README's example, as it is written there.
    saveSnapshot(src.registry, (chunk) => out.write(chunk), { machineName: 'toy-1.0' });
    await finished(out.end());
    saveSnapshot(src.registry, (chunk) => chunks.push(chunk), { machineName: 'toy-1.0' });
    assert.ok(chunks.length >= 5, `${chunks.length} chunks`);
    assert.equal(new Set(chunks.map((c) => c.buffer)).size, chunks.length, 'no two chunks share memory');
    const bytes = fs.readFileSync(file);
    assert.ok(bytes.equals(Buffer.concat(chunks)), 'the file holds the chunks, in order');
    const dst = machine(0);
    await loadSnapshot(dst.registry, ChunkedSource.fromBytes(bytes), { checkLoadOrder: true, machineName: 'toy-1.0' });
    assert.ok(Buffer.from(dst.ram).equals(Buffer.from(src.ram)), 'RAM');
    assert.deepEqual(dst.bridge, src.bridge);
    assert.deepEqual(dst.nic, src.nic);
    assert.deepEqual(dst.iommu, { ...src.iommu, cached_bus: src.bridge.secondary });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a state that does not fit its description is SaveError naming the entry, then the field path', () => {
  const m = toyMachine({ seed: 5 });
  m.nic.regs[2] = 0x10000;
  assert.throws(
    () => snapshot(m.registry),
    (e: unknown) =>
      e instanceof SaveError &&
      e.message === 'nic#0: toy-nic.regs[2]: holds 65536, expected uint16 (an integer from 0 to 65535)' &&
      e.data.field === 'toy-nic.regs[2]' &&
      e.path === 'nic#0',
  );
});
