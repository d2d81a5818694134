// The SMMUv3 model on a small hand-built tree: bus 0 holds a DMA engine at 00:00.0 and a root port at
// 00:02.0 whose secondary bus (1 once enumerated) holds another DMA engine at 01:00.0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DmaFault, groupByBus, type GuestAllocator } from '../../src/machine/iommu.js';
import { allFunctions, enumerateBuses, PCI_SECONDARY_BUS, PciBridge, PciFunction } from '../../src/machine/pci.js';
import { Smmuv3Unit, SMMU_REG, smmuv3SidBits } from '../../src/machine/smmuv3.js';
import { GuestRam } from '../../src/ram/index.js';
import { ByteReader, ByteWriter, loadState, saveState } from '../../src/index.js';

const MiB = 1 << 20;

/** A bump allocator over guest RAM from 1 MiB up (the RAM block is zeroed, so allocations are too). */
class Bump implements GuestAllocator {
  private next = MiB;
  alloc(bytes: number, align: number): number {
    const at = Math.ceil(this.next / align) * align;
    this.next = at + bytes;
    return at;
  }
}

function machine(busRange: readonly [number, number] = [0, 3]) {
  const ram = new GuestRam();
  ram.addBlock('mach-virt.ram', 0, 16 * MiB);
  const onRoot = new PciFunction('dma-engine', 'dma-root', 0, 0, null, true);
  const rp = new PciBridge('root-port', 'rp1', 2, 0, null, true);
  const dma = new PciFunction('dma-engine', 'dma1', 0, 0, rp, true);
  rp.children.push(dma);
  const rootBus = [onRoot, rp];
  enumerateBuses(rootBus);
  const groups = groupByBus(allFunctions(rootBus));
  const ctx = { ram, busGroups: () => groups };
  const unit = new Smmuv3Unit({ id: 'smmu0', busRange, ctx });
  return { ram, ctx, rp, dma, onRoot, unit, alloc: new Bump() };
}

/** The reason of the DmaFault `f` throws. */
function faultOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof DmaFault, `expected a DmaFault, got ${String(e)}`);
    return e.reason;
  }
  assert.fail('expected a DmaFault, the DMA went through');
}

test('StreamID bits cover every requester ID up to the last bus', () => {
  assert.equal(smmuv3SidBits([0, 0]), 8);
  assert.equal(smmuv3SidBits([0, 3]), 10);
  assert.equal(smmuv3SidBits([0, 4]), 11);
  assert.equal(smmuv3SidBits([0, 255]), 16);
});

test('driverInit programs a linear stream table and sets SMMUEN, CR0ACK following', () => {
  const { unit, alloc } = machine();
  unit.driverInit(alloc);
  const s = unit.state;
  assert.equal(s.sid_size, 10);
  assert.equal(s.strtab_base_cfg, 10); // FMT linear (0), LOG2SIZE 10
  assert.equal(s.strtab_base, BigInt(MiB)); // 1024 STEs * 64 bytes, aligned to 64 KiB: the first allocation
  assert.equal(s.cr[0], 1);
  assert.equal(s.cr0ack, 1);
  assert.equal(unit.readReg32(SMMU_REG.IDR1), 10);
});

test('mapped pages translate; unmapped IOVA and missing permission fault', () => {
  const { unit, dma, alloc } = machine();
  unit.driverInit(alloc);
  unit.driverMap(alloc, dma, 0x10000, 0x200000, 0x2000);
  unit.driverFlush();
  assert.equal(dma.requesterId, 0x0100);
  assert.equal(unit.cachedStreamId(dma), 0x0100);
  assert.equal(unit.translate(dma, 0x10123, false), 0x200123);
  assert.equal(unit.translate(dma, 0x11ff8, true), 0x201ff8);
  // A high IOVA walks other slots at every level.
  unit.driverMap(alloc, dma, 0x7f_ffff_f000, 0x300000, 0x1000);
  assert.equal(unit.translate(dma, 0x7f_ffff_f010, true), 0x300010, 'new mappings take effect without a flush');
  assert.equal(faultOf(() => unit.translate(dma, 0x12000, false)), 'F_TRANSLATION: no valid descriptor at level 3 in VMID 256');
  assert.equal(faultOf(() => unit.translate(dma, 0x20_0000, false)), 'F_TRANSLATION: no valid descriptor at level 2 in VMID 256');
  assert.equal(faultOf(() => unit.translate(dma, 0x4000_0000, false)), 'F_TRANSLATION: no valid descriptor at level 1 in VMID 256');
  assert.equal(faultOf(() => unit.translate(dma, 2 ** 39, false)), 'F_TRANSLATION: no valid descriptor at level 0 in VMID 256');
  assert.equal(faultOf(() => unit.translate(dma, 2 ** 48, false)), 'F_TRANSLATION: IOVA beyond 48 bits in VMID 256');
});

test('the fault names the device, its requester ID and the IOVA', () => {
  const { unit, dma, alloc } = machine();
  unit.driverInit(alloc);
  unit.driverMap(alloc, dma, 0x10000, 0x200000, 0x1000);
  unit.driverFlush();
  assert.throws(() => unit.translate(dma, 0x20000, true), {
    message: '0000:00:02.0:00.0 (RID 0100): DMA to IOVA 0x20000 faulted: F_TRANSLATION: no valid descriptor at level 3 in VMID 256',
  });
});

test('a leaf without write permission faults writes only', () => {
  const { unit, dma, alloc, ram } = machine();
  unit.driverInit(alloc);
  unit.driverMap(alloc, dma, 0x10000, 0x200000, 0x1000);
  unit.driverFlush();
  // Find the leaf by walking as the SMMU does, then clear S2AP[1] (bit 7, write).
  let table = ram.readU64(Number(unit.state.strtab_base) + 0x100 * 64 + 24);
  for (let level = 0; level < 3; level++) table = ram.readU64(table + (Math.floor(0x10000 / 2 ** (39 - 9 * level)) % 512) * 8) & ~0xfff;
  const leaf = table + 0x10 * 8;
  ram.writeU32(leaf, ram.readU32(leaf) & ~0x80);
  assert.equal(unit.translate(dma, 0x10008, false), 0x200008);
  assert.equal(faultOf(() => unit.translate(dma, 0x10008, true)), 'F_PERMISSION: no write permission in VMID 256');
});

test('the STE sits at the requester ID with the spec layout', () => {
  const { unit, dma, alloc, ram } = machine();
  unit.driverInit(alloc);
  unit.driverMap(alloc, dma, 0, 0x200000, 0x1000);
  const ste = Number(unit.state.strtab_base) + 0x100 * 64;
  assert.equal(ram.readU32(ste), 0b1101, 'dword 0: V, Config 0b110 (stage 2 translate)');
  assert.equal(ram.readU32(ste + 16) & 0xffff, 0x100, 'dword 2 [15:0]: S2VMID');
  assert.equal(ram.readU64(ste + 24), MiB + 64 * 1024, 'dword 3 [51:4]: S2TTB, the page allocated after the table');
  assert.equal(ram.readU64(ste + 56), 0, 'dword 7 is unused');
});

test('an STE written after the last flush is not seen until driverFlush()', () => {
  const { unit, dma, alloc } = machine();
  unit.driverInit(alloc);
  unit.driverMap(alloc, dma, 0x10000, 0x200000, 0x1000);
  assert.equal(faultOf(() => unit.translate(dma, 0x10000, false)), 'C_BAD_STE: STE of StreamID 0x0100 is not valid (V = 0)');
  unit.driverFlush();
  assert.equal(unit.translate(dma, 0x10000, false), 0x200000);
});

test('with SMMUEN off every DMA faults, and clearing it drops the cache', () => {
  const { unit, dma, alloc } = machine();
  assert.equal(faultOf(() => unit.translate(dma, 0, false)), 'smmu0 is disabled (CR0.SMMUEN = 0)');
  unit.driverInit(alloc);
  unit.driverMap(alloc, dma, 0, 0x200000, 0x1000);
  unit.driverFlush();
  unit.writeReg32(SMMU_REG.CR0, 0);
  assert.equal(unit.state.cr0ack, 0);
  assert.equal(unit.cachedStreamId(dma), undefined);
  assert.equal(faultOf(() => unit.translate(dma, 0, false)), 'smmu0 is disabled (CR0.SMMUEN = 0)');
  unit.writeReg32(SMMU_REG.CR0, 1); // enabling fetches the STEs again
  assert.equal(unit.translate(dma, 0, false), 0x200000);
});

test('a device outside the unit is not cached, and the driver refuses to map it', () => {
  const { unit, dma, onRoot, alloc } = machine([0, 0]);
  unit.driverInit(alloc);
  unit.driverMap(alloc, onRoot, 0, 0x200000, 0x1000);
  unit.driverFlush();
  assert.equal(unit.translate(onRoot, 0x10, false), 0x200010);
  assert.equal(faultOf(() => unit.translate(dma, 0, false)), 'no stream table entry cached for this device');
  assert.throws(() => unit.driverMap(alloc, dma, 0, 0x200000, 0x1000), {
    name: 'UsageError',
    message: 'smmu0: 0000:00:02.0:00.0 is on bus 1, outside buses 0..0',
  });
});

test('the cache keeps the requester ID of the moment it was built, until driverFlush()', () => {
  const { unit, rp, dma, alloc } = machine();
  unit.driverInit(alloc);
  unit.driverMap(alloc, dma, 0x10000, 0x200000, 0x1000);
  unit.driverFlush();
  // The bridge's secondary bus reads 0 (as a bridge not yet loaded or programmed) when the cache is built.
  rp.config[PCI_SECONDARY_BUS] = 0;
  unit.driverFlush();
  assert.equal(unit.cachedStreamId(dma), 0x0000);
  assert.equal(faultOf(() => unit.translate(dma, 0x10000, false)), 'C_BAD_STE: STE of StreamID 0x0000 is not valid (V = 0)');
  // The register says bus 1 again, but the cache still holds StreamID 0.
  rp.config[PCI_SECONDARY_BUS] = 1;
  assert.equal(dma.requesterId, 0x0100);
  assert.equal(
    faultOf(() => unit.translate(dma, 0x10000, false)),
    'C_BAD_STE: STE of StreamID 0x0000 is not valid (V = 0) (cached when the device had StreamID 0x0000)',
  );
  unit.driverFlush();
  assert.equal(unit.translate(dma, 0x10000, false), 0x200000);
});

/** Saves `unit`'s state and loads it into a fresh unit over the same RAM and devices. */
function migrate(from: Smmuv3Unit, ctx: ConstructorParameters<typeof Smmuv3Unit>[0]['ctx']): Smmuv3Unit {
  const w = new ByteWriter(64);
  saveState(w, from.vmsd, from.state);
  const to = new Smmuv3Unit({ id: from.id, busRange: from.busRange, ctx });
  const r = new ByteReader(w.peek());
  loadState(r, to.vmsd, to.state, 1);
  assert.equal(r.remaining, 0);
  return to;
}

test('post-load rebuilds the cache from the loaded registers and the bus numbers of that moment', () => {
  const { unit, dma, onRoot, alloc, ctx } = machine();
  unit.driverInit(alloc);
  unit.driverMap(alloc, dma, 0x10000, 0x200000, 0x2000);
  unit.driverMap(alloc, onRoot, 0x10000, 0x400000, 0x1000);
  unit.driverFlush();
  const restored = migrate(unit, ctx);
  assert.deepEqual(restored.state, unit.state);
  assert.equal(restored.translate(dma, 0x11004, true), 0x201004);
  assert.equal(restored.translate(onRoot, 0x10004, true), 0x400004);
  // The guest driver goes on where it left off: its STE is in guest memory.
  restored.driverMap(alloc, dma, 0x20000, 0x500000, 0x1000);
  assert.equal(restored.translate(dma, 0x20000, false), 0x500000);
  assert.equal(restored.translate(dma, 0x10000, false), 0x200000);
});

test('loaded before the bridges, the unit caches bus 0 StreamIDs: DMA goes through another device STE', () => {
  const { unit, rp, dma, onRoot, alloc, ctx } = machine();
  unit.driverInit(alloc);
  unit.driverMap(alloc, dma, 0x10000, 0x200000, 0x1000);
  unit.driverMap(alloc, onRoot, 0x10000, 0x400000, 0x1000);
  unit.driverFlush();
  // The destination's root port is still at reset (secondary bus 0) when the IOMMU section loads.
  rp.config[PCI_SECONDARY_BUS] = 0;
  const restored = migrate(unit, ctx);
  rp.config[PCI_SECONDARY_BUS] = 1; // then the bridge's section loads
  assert.equal(restored.cachedStreamId(dma), 0x0000, 'cached under 00:00.0, the device on bus 0 with the same devfn');
  assert.equal(restored.translate(dma, 0x10000, true), 0x400000, "01:00.0's DMA lands in 00:00.0's memory");
  assert.equal(
    faultOf(() => restored.translate(dma, 0x11000, false)),
    'F_TRANSLATION: no valid descriptor at level 3 in VMID 0 (cached when the device had StreamID 0x0000)',
  );
  restored.driverFlush();
  assert.equal(restored.translate(dma, 0x10000, true), 0x200000);
});

test('post-load goes through the toucher once per bus, before it reads the bus number', () => {
  const { unit, dma, alloc, ctx } = machine();
  unit.driverInit(alloc);
  unit.driverMap(alloc, dma, 0, 0x200000, 0x1000);
  unit.driverFlush();
  const w = new ByteWriter(64);
  saveState(w, unit.vmsd, unit.state);
  const touched: string[] = [];
  const to = new Smmuv3Unit({ id: 'smmu0', busRange: [0, 3], ctx, touchBridges: (dev) => void touched.push(dev.id) });
  loadState(new ByteReader(w.peek()), to.vmsd, to.state, 1);
  // One device per bus: dma-root and rp1 share the root bus, dma1 is alone behind rp1.
  assert.deepEqual(touched, ['dma-root', 'dma1']);
  assert.equal(to.translate(dma, 0, false), 0x200000);
});
