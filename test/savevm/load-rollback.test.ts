// A rejected load leaves the registry as it was (found by the stream fuzzer, test/fuzz): every entry's
// state in place, the RAM pages the load overwrote, what post-load hooks derived, and the RAM decoder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  ByteReader,
  ByteWriter,
  ChunkedSource,
  defineVmsd,
  LoadError,
  loadSnapshot,
  RamHandler,
  saveSnapshot,
  SaveRegistry,
  StreamFormatError,
  StreamTruncatedError,
  u32,
  VmstateError,
  type SaveEntry,
} from '../../src/index.js';
import { findVmdescTrailer } from '../../src/savevm/index.js';
import { loadMachineDescription, Machine } from '../../src/machine/index.js';
import { repoRoot } from '../support/paths.js';
import { toyMachine, type ToyMachine } from '../support/toy-machine.js';

function snapshot(registry: SaveRegistry): Uint8Array {
  const w = new ByteWriter(1 << 16);
  saveSnapshot(registry, (c) => w.putBuffer(c), { machineName: 'toy-1.0' });
  return w.peek().slice();
}

/** Everything a toy machine holds, as plain data. */
function toyState(m: ToyMachine) {
  return structuredClone({ ram: m.ram, bridge: m.bridge, iommu: m.iommu, nic: m.nic });
}

test('a stream cut before EOF, every section loaded: the whole toy machine is as it was, the same objects', async () => {
  // Seed 5 has a VLAN (a subsection the load sets), seed 4 none; RAM differs in its one non-zero page.
  const bytes = snapshot(toyMachine({ seed: 5 }).registry);
  const eof = findVmdescTrailer(bytes, 0, bytes.length) - 1;
  const dst = toyMachine({ seed: 4 });
  const before = toyState(dst);
  const mac = dst.nic.mac;
  const regs = dst.nic.regs;
  await assert.rejects(loadSnapshot(dst.registry, ChunkedSource.fromBytes(bytes.subarray(0, eof)), { machineName: 'toy-1.0' }), StreamTruncatedError);
  assert.deepEqual(toyState(dst), before);
  assert.equal(dst.nic.mac, mac, 'the buffer a device holds is the one put back');
  assert.equal(dst.nic.regs, regs);
  // And the machine still loads a whole stream.
  await loadSnapshot(dst.registry, ChunkedSource.fromBytes(bytes), { machineName: 'toy-1.0' });
  assert.deepEqual(toyState(dst), toyState(toyMachine({ seed: 5 })));
});

test('a stream cut in its trailer: rolled back without onLoaded; kept with it (the state was whole at EOF)', async () => {
  const bytes = snapshot(toyMachine({ seed: 5 }).registry);
  const cut = bytes.subarray(0, findVmdescTrailer(bytes, 0, bytes.length) + 3);
  const plain = toyMachine({ seed: 4 });
  const before = toyState(plain);
  await assert.rejects(loadSnapshot(plain.registry, ChunkedSource.fromBytes(cut), { machineName: 'toy-1.0' }), StreamTruncatedError);
  assert.deepEqual(toyState(plain), before);

  // A migration's destination with a return path runs the guest from EOF: what it loaded stays.
  const live = toyMachine({ seed: 4 });
  let loaded = false;
  await assert.rejects(
    loadSnapshot(live.registry, ChunkedSource.fromBytes(cut), { machineName: 'toy-1.0', onLoaded: () => (loaded = true) }),
    StreamTruncatedError,
  );
  assert.equal(loaded, true);
  assert.deepEqual(toyState(live), toyState(toyMachine({ seed: 5 })));
});

test('atomic: false keeps nothing to undo: a load cut before EOF leaves what it loaded', async () => {
  const bytes = snapshot(toyMachine({ seed: 5 }).registry);
  const eof = findVmdescTrailer(bytes, 0, bytes.length) - 1;
  const dst = toyMachine({ seed: 4 });
  const before = toyState(dst);
  await assert.rejects(loadSnapshot(dst.registry, ChunkedSource.fromBytes(bytes.subarray(0, eof)), { machineName: 'toy-1.0', atomic: false }), StreamTruncatedError);
  assert.notDeepEqual(toyState(dst), before);
  assert.deepEqual(toyState(dst).ram, toyState(toyMachine({ seed: 5 })).ram, 'the RAM it loaded stays');
});

test('a rejected load re-runs the post-load hooks of what it loaded, on the restored state', async () => {
  // `derived` stands for what a device computes in post-load outside its state (an IOMMU's address spaces).
  const derived = { value: -1 };
  const make = (v: number, withLater: boolean) => {
    const registry = new SaveRegistry();
    const dev = { v };
    registry.register({ idstr: 'dev', vmsd: defineVmsd({ name: 'dev', version: 1, fields: [u32('v')], postLoad: (s) => (derived.value = s.v) }), state: dev });
    if (withLater) registry.register({ idstr: 'later', vmsd: defineVmsd({ name: 'later', version: 1, fields: [u32('x')] }), state: { x: 0 } });
    return { registry, dev };
  };
  const src = make(7, false);
  const dst = make(3, true);
  derived.value = 3;
  // The stream loads dev, then lacks `later`: the missing-section check refuses it after the hook ran.
  await assert.rejects(loadSnapshot(dst.registry, ChunkedSource.fromBytes(snapshot(src.registry))), (e: unknown) => e instanceof LoadError && /missing section: later#0/.test(e.message));
  assert.equal(dst.dev.v, 3);
  assert.equal(derived.value, 3, 'the hook ran again on the restored state');
});

test('RAM decoding starts afresh with each load: a CONTINUE page cannot lean on a block a rejected load named', async () => {
  const m = toyMachine({ seed: 2 });
  const ram = m.entries.ram as SaveEntry;
  const handler = ram.handler as RamHandler;
  const bytes = snapshot(toyMachine({ seed: 3 }).registry);
  // A load that names pc.ram, then fails.
  await assert.rejects(loadSnapshot(m.registry, ChunkedSource.fromBytes(bytes.subarray(0, bytes.length - 200))));
  // A PART body whose first record continues a block: be64 (0 | ZERO 0x02 | CONTINUE 0x20), fill byte, EOS.
  handler.beginLoad();
  const body = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0x22, 0, 0, 0, 0, 0, 0, 0, 0, 0x10]);
  const decoder = handler.loadSection();
  assert.throws(() => decoder.step(new ByteReader(body)), (e: unknown) => e instanceof StreamFormatError && /no block was named yet/.test(e.message));
  handler.endLoad(false);
});

test('the reference machine: a snapshot cut before EOF leaves RAM and devices as they were, and it runs as its twin', async () => {
  const desc = { ...loadMachineDescription(path.join(repoRoot, 'machines', 'q35-default.json')), ramBytes: 4 << 20 };
  const src = new Machine(desc);
  src.boot();
  src.run(3);
  const w = new ByteWriter(1 << 20);
  src.save((c) => w.putBuffer(c));
  const bytes = w.peek().slice();
  const eof = findVmdescTrailer(bytes, 0, bytes.length) - 1;
  const make = () => {
    const m = new Machine(desc);
    m.boot();
    m.run(1);
    return m;
  };
  const dst = make();
  const hash = dst.ramHash();
  for (const cut of [eof, eof - 40]) {
    await assert.rejects(dst.load(ChunkedSource.fromBytes(bytes.subarray(0, cut))), VmstateError);
    assert.equal(dst.ramHash(), hash);
  }
  assert.deepEqual(dst.run(2), make().run(2));
});
