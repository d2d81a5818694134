// A small machine for snapshot tests: RAM, a bridge holding a bus number (PCI_BUS), an IOMMU whose
// post-load reads that bus number (IOMMU), and a NIC with a subsection (default priority).
import {
  array,
  bool,
  buffer,
  defineVmsd,
  MigPriority,
  RamHandler,
  SaveRegistry,
  timer,
  u16,
  u32,
  u64,
  u8,
  type SaveEntry,
} from '../../src/index.js';

export const bridgeVmsd = defineVmsd({
  name: 'toy-bridge',
  version: 1,
  priority: MigPriority.PCI_BUS,
  fields: [u8('secondary'), u8('subordinate')],
});

export const iommuVmsd = defineVmsd({
  name: 'toy-iommu',
  version: 2,
  minVersion: 1,
  priority: MigPriority.IOMMU,
  fields: [u64('root'), bool('enabled'), u32('cached_bus', { version: 2 })],
  // Like VT-d's post-load: rebuild what depends on the bridge's bus number, as it is at this moment.
  postLoad: (s, ctx) => {
    s.cached_bus = ctx.peer<{ secondary: number }>({ idstr: 'bridge' }).secondary;
  },
});

export const nicVmsd = defineVmsd({
  name: 'toy-nic',
  version: 1,
  fields: [array(u16('regs'), 4), timer('tx_timer'), buffer('mac', 6)],
  subsections: [defineVmsd({ name: 'toy-nic/vlan', version: 1, needed: (s) => s.vlan !== 0, fields: [u16('vlan')] })],
});

export interface ToyMachine {
  readonly registry: SaveRegistry;
  readonly ram: Uint8Array;
  readonly bridge: { secondary: number; subordinate: number };
  readonly iommu: { root: bigint; enabled: boolean; cached_bus: number };
  readonly nic: { regs: number[]; tx_timer: bigint; mac: Uint8Array; vlan: number };
  readonly entries: Record<'ram' | 'bridge' | 'iommu' | 'nic', SaveEntry>;
}

/**
 * Registers RAM, then the IOMMU before the bridge (as QEMU's machine creates it first), then the NIC.
 * `legacy` registers the bridge at default priority, as QEMU did before 2018.
 */
export function toyMachine(options: { legacy?: boolean; seed?: number } = {}): ToyMachine {
  const seed = options.seed ?? 0;
  const registry = new SaveRegistry();
  const ram = new Uint8Array(64 * 1024);
  for (let i = 0; i < 4096; i++) ram[8192 + i] = (i * 7 + seed) & 0xff; // one non-zero page
  const bridge = { secondary: seed ? 1 + (seed % 200) : 0, subordinate: seed ? 1 + (seed % 200) : 0 };
  const iommu = { root: BigInt(seed) * 0x1000n, enabled: seed % 2 === 1, cached_bus: bridge.secondary };
  const nic = { regs: [seed, seed + 1, seed + 2, seed + 3].map((x) => x & 0xffff), tx_timer: seed % 3 === 0 ? -1n : BigInt(seed) * 1000n, mac: new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, seed & 0xff]), vlan: seed % 4 };
  const entries = {
    ram: registry.register({ idstr: 'ram', handler: new RamHandler([{ name: 'pc.ram', data: ram }], { pagesPerIteration: 8 }) }),
    iommu: registry.register({ idstr: 'iommu', vmsd: iommuVmsd, state: iommu }),
    bridge: registry.register({ idstr: 'bridge', vmsd: bridgeVmsd, state: bridge, ...(options.legacy ? { priority: MigPriority.DEFAULT } : {}) }),
    nic: registry.register({ idstr: 'nic', vmsd: nicVmsd, state: nic }),
  };
  return { registry, ram, bridge, iommu, nic, entries };
}
