// The reference machine's story: for every shipped machine, snapshot, restore and continue equals the
// uninterrupted run; the pre-2018 order breaks DMA detectably (and the guard refuses it); each IOMMU
// translates only for its own buses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ChunkedSource, LoadOrderError, readVmdesc, ByteReader, QEMU_DIALECTS, UsageError } from '../../src/index.js';
import { listSections, parseVmdesc } from '../../src/analyze/index.js';
import { findVmdescTrailer } from '../../src/savevm/index.js';
import { DmaFault, DmaStatus, loadMachineDescription, Machine, parseMachineDescription, type MachineDescription } from '../../src/machine/index.js';
import { SRC_IOVA } from '../../src/machine/driver.js';
import { repoRoot } from '../support/paths.js';

const machinesDir = path.join(repoRoot, 'machines');
const shipped = fs.readdirSync(machinesDir).filter((f) => f.endsWith('.json')).sort();

function save(m: Machine): Uint8Array {
  const parts: Buffer[] = [];
  m.save((c) => parts.push(Buffer.from(c)));
  return new Uint8Array(Buffer.concat(parts));
}

/** Boots, runs `before` steps, snapshots; restores into a fresh machine and runs `after` more. */
async function snapshotRestore(desc: MachineDescription, before: number, after: number, legacyOrder = false) {
  const src = new Machine(desc, { legacyOrder });
  src.boot();
  src.run(before);
  const bytes = save(src);
  const dst = new Machine(desc);
  await dst.load(ChunkedSource.fromBytes(bytes));
  const got = dst.run(after);
  const ref = new Machine(desc);
  ref.boot();
  ref.run(before);
  const want = ref.run(after);
  return { bytes, src, dst, ref, got, want };
}

for (const file of shipped) {
  const desc = loadMachineDescription(path.join(machinesDir, file));
  const big = desc.ramBytes > 512 << 20;

  test(`${desc.name}: snapshot, restore, continue equals the uninterrupted run`, { timeout: 120_000 }, async () => {
    const { got, want, dst, ref, bytes } = await snapshotRestore(desc, big ? 2 : 4, big ? 2 : 5);
    assert.ok(want.flat().every((r) => r.status === DmaStatus.DONE), 'the uninterrupted run has no fault');
    assert.deepEqual(got, want);
    assert.equal(dst.ramHash(), ref.ramHash());
    // Bridges, then IOMMUs, then endpoints, as the plan put them.
    const p = findVmdescTrailer(bytes, 0, bytes.length);
    const rows = await listSections(ChunkedSource.fromBytes(bytes), parseVmdesc(readVmdesc(new ByteReader(bytes, 0, p)), p + 5));
    const kinds = rows.filter((r) => r.type === 'full').map((r) => (/(port|bridge)$/.test(r.idstr) ? 'bridge' : /iommu|smmu/.test(r.idstr) ? 'iommu' : 'device'));
    const firstIommu = kinds.indexOf('iommu');
    assert.ok(firstIommu > 0 && kinds.lastIndexOf('bridge') < firstIommu && kinds.indexOf('device') > kinds.lastIndexOf('iommu'), kinds.join(','));
  });

  test(`${desc.name}: the pre-2018 order breaks DMA after restore, detectably and without a crash`, { timeout: 120_000 }, async () => {
    const { got, want } = await snapshotRestore(desc, 2, 1, true);
    const bad = got.flat().filter((r, i) => r.status !== want.flat()[i].status || r.checksum !== want.flat()[i].checksum);
    assert.ok(bad.length > 0, 'legacy order restored a working machine');
    // Every engine behind a bridge is affected; engines on the root bus are not.
    for (const r of got.flat()) {
      const behindBridge = r.engine.split(':').length > 3;
      if (!behindBridge) assert.equal(r.status, DmaStatus.DONE, r.engine);
    }
  });
}

test('with the load-order guard, the pre-2018 order is refused naming the IOMMU and the root port', async () => {
  const desc = loadMachineDescription(path.join(machinesDir, 'q35-default.json'));
  const src = new Machine(desc, { legacyOrder: true });
  src.boot();
  src.run(1);
  const dst = new Machine(desc);
  await assert.rejects(
    dst.load(ChunkedSource.fromBytes(save(src)), { checkLoadOrder: true }),
    (e: unknown) => e instanceof LoadOrderError && e.reader === 'iommu-intel#0' && e.target === '0000:00:03.0/pcie-root-port#0',
  );
});

test('each VT-d unit translates only for its own buses', () => {
  const desc = loadMachineDescription(path.join(machinesDir, 'q35-multi-iommu.json'));
  const m = new Machine(desc);
  m.boot();
  assert.ok(m.iommus.length >= 2);
  for (const engine of m.engines) {
    const own = m.iommuFor(engine.fn);
    assert.ok(own, engine.fn.path);
    assert.ok(Number.isInteger(own.translate(engine.fn, SRC_IOVA, false)));
    for (const other of m.iommus) {
      if (other === own) continue;
      assert.throws(() => other.translate(engine.fn, SRC_IOVA, false), DmaFault, `${other.id} translated for ${engine.fn.bdf}`);
    }
  }
  // And every unit has engines of its own.
  for (const unit of m.iommus) assert.ok(m.engines.some((e) => m.iommuFor(e.fn) === unit), unit.id);
});

test('the SMMUv3 machine translates through its stream table, by the StreamID of the moment it was cached', () => {
  const desc = loadMachineDescription(path.join(machinesDir, 'virt-smmuv3.json'));
  const m = new Machine(desc);
  m.boot();
  const results = m.run(2).flat();
  assert.ok(results.length > 0 && results.every((r) => r.status === DmaStatus.DONE));
  const unit = m.iommus[0];
  assert.equal(unit.idstr, 'smmuv3');
  // Renumber a bridge and invalidate: the device's StreamID now names an empty STE, so its DMA faults;
  // put the number back and invalidate again, and it translates.
  const engine = m.engines.find((e) => e.fn.parent !== null);
  assert.ok(engine?.fn.parent);
  const old = engine.fn.parent.config[0x19];
  engine.fn.parent.config[0x19] = old + 0x20;
  unit.driverFlush();
  assert.throws(() => unit.translate(engine.fn, SRC_IOVA, false), DmaFault);
  engine.fn.parent.config[0x19] = old;
  unit.driverFlush();
  assert.ok(Number.isInteger(unit.translate(engine.fn, SRC_IOVA, false)));
});

test('the machine type and dialect: the flavour\'s in the release asked for, or the release of the type the description names', async () => {
  const q35 = loadMachineDescription(path.join(machinesDir, 'q35-default.json'));
  const virt = loadMachineDescription(path.join(machinesDir, 'virt-smmuv3.json'));
  const ten = QEMU_DIALECTS['10.0'];
  const of = (desc: MachineDescription, dialect = ten) => new Machine(desc, { dialect });
  assert.deepEqual([new Machine(q35).machineType, new Machine(q35).dialect.version], ['pc-q35-7.2', '7.2']);
  assert.deepEqual([of(q35).machineType, of(virt).machineType], ['pc-q35-10.0', 'virt-10.0']);
  assert.deepEqual(of(q35).loadsMachineTypes, ['pc-q35-7.2', 'pc-q35-10.0']);
  const named = (machineType: string) => parseMachineDescription(JSON.stringify({ ...JSON.parse(fs.readFileSync(path.join(machinesDir, 'q35-default.json'), 'utf8')), machineType }), 'x.json');
  assert.equal(new Machine(named('pc-q35-10.0')).dialect, ten);
  assert.equal(new Machine(named('pc-q35-8.2')).dialect, ten, 'QEMU 7.2 has no pc-q35-8.2');
  assert.deepEqual(new Machine(named('pc-q35-8.2')).loadsMachineTypes, ['pc-q35-8.2']);
  assert.equal(new Machine(named('pc-q35-6.2')).dialect.version, '7.2');
  assert.equal(of(named('pc-q35-6.2')).machineType, 'pc-q35-6.2');
  assert.throws(() => of(named('pc-q35-10.0'), QEMU_DIALECTS['7.2']), (e: unknown) => e instanceof UsageError && e.message === 'q35-default: machine type pc-q35-10.0 is newer than QEMU 7.2');

  // A snapshot of either dialect loads into a machine of the other.
  const src = of(q35);
  src.boot();
  src.run(3);
  const dst = new Machine(q35);
  await dst.load(ChunkedSource.fromBytes(save(src)));
  assert.equal(dst.ramHash(), src.ramHash());
});
