/**
 * What QEMU's own devices need loaded before what, as rules over a stream's sections. Device kinds are
 * told by their top-level VMSD name (the names of QEMU 7.2's descriptions that carry a MigrationPriority,
 * hw/pci-bridge/*, hw/i386/intel_iommu.c, hw/arm/smmuv3.c, hw/virtio/virtio-iommu.c, hw/intc/arm_gicv3*).
 */
import { MigPriority } from '../vmstate/index.js';
import type { EntryInfo } from './dependencies.js';
import type { OrderRule } from './order-check.js';

/** PCI bridges, root ports and switch ports: their bus-number registers must load before any IOMMU. */
export const QEMU_BRIDGE_VMSDS: ReadonlySet<string> = new Set([
  'pcie-root-port',
  'ioh-3240-express-root-port',
  'xio3130-express-upstream-port',
  'xio3130-express-downstream-port',
  'pcie-pci-bridge',
  'pci_bridge',
  'i82801b11_bridge',
]);

/** IOMMUs: they rebuild per-device address spaces from bus numbers after load. */
export const QEMU_IOMMU_VMSDS: ReadonlySet<string> = new Set(['iommu-intel', 'smmuv3', 'virtio-iommu']);

/** The priority QEMU 7.2 gives a top-level VMSD, by name (DEFAULT when not listed). */
export const QEMU_PRIORITY_BY_VMSD: ReadonlyMap<string, number> = new Map<string, number>([
  ...[...QEMU_BRIDGE_VMSDS].map((n) => [n, MigPriority.PCI_BUS] as [string, number]),
  ...[...QEMU_IOMMU_VMSDS].map((n) => [n, MigPriority.IOMMU] as [string, number]),
  ['arm_gicv3', MigPriority.GICV3],
  ['arm_gicv3_its', MigPriority.GICV3_ITS],
  // QEMU 7.2 sets VIRTIO_MEM on the inner "virtio-mem-device" description, where it has no effect.
  ['virtio-mem', MigPriority.DEFAULT],
]);

/** A device on a PCI bus: its idstr starts with a PCI path such as `0000:00:03.0`. */
export function isPciDevice(e: EntryInfo): boolean {
  return /^[0-9a-f]{4}(:[0-9a-f]{2})?:[0-9a-f]{2}\.[0-7]/.test(e.idstr);
}

const vmsdIn = (set: ReadonlySet<string>) => (e: EntryInfo) => e.vmsdName !== undefined && set.has(e.vmsdName);
const isBridge = vmsdIn(QEMU_BRIDGE_VMSDS);
const isIommu = vmsdIn(QEMU_IOMMU_VMSDS);
const named = (n: string) => (e: EntryInfo) => e.vmsdName === n;

/** The rules `vmstate order` checks QEMU streams against. */
export const QEMU_ORDER_RULES: readonly OrderRule[] = [
  {
    name: 'bridges before IOMMUs',
    supplier: isBridge,
    consumer: isIommu,
    reason: 'an IOMMU rebuilds its address spaces from the bus numbers in bridges and root ports',
  },
  {
    name: 'IOMMUs before PCI devices',
    supplier: isIommu,
    consumer: (e) => isPciDevice(e) && !isBridge(e) && !isIommu(e),
    reason: 'a PCI device behind an IOMMU must find its address space when it loads',
  },
  {
    name: 'virtio-mem before IOMMUs',
    supplier: named('virtio-mem'),
    consumer: isIommu,
    reason: "an IOMMU's mappings may cover virtio-mem memory, which must be plugged first",
  },
  {
    name: 'GICv3 before its ITS',
    supplier: named('arm_gicv3'),
    consumer: named('arm_gicv3_its'),
    reason: 'the ITS restores its tables into a GIC that must already be loaded',
  },
  {
    name: 'GICv3 ITS before PCI devices',
    supplier: (e) => e.vmsdName === 'arm_gicv3' || e.vmsdName === 'arm_gicv3_its',
    consumer: isPciDevice,
    reason: 'PCI devices send MSIs through the ITS',
  },
];
