/**
 * What QEMU's own devices need loaded before what, release by release, as rules over a stream's
 * sections. One table of facts, each holding from a release on (`since`) and up to one (`until`):
 *
 *   PRIORITY_ENUMS   MigrationPriority as the release declares it (a member's value is its position)
 *   VMSD_PRIORITIES  which top-level VMSDs carry which priority (DEFAULT when not listed)
 *   EARLY_SETUP      which top-level VMSDs go out early, in the setup phase (among the START sections, before any page)
 *   RULES            the order rules, each with QEMU's reason, built on the release's priorities
 *
 * A release's rules are the facts that hold in it, so releases that do not differ share them: 7.2;
 * 8.0 to 10.0; 10.1; 10.2. Device kinds are told by top-level VMSD name (the vmdesc's `vmsd_name`):
 * priority is not in the stream, so a checker maps names to priorities itself.
 *
 * Facts come from QEMU's sources (read, not copied): 7.2's and 10.0.2's trees, 10.2.2's for 10.1 and
 * 10.2 with the upstream commits named (../shared/spec/qemu-versions.md lists them by release).
 * 7.2 and 10.0.2 set the same priorities on the same VMSDs, so 8.0 to 9.2 are taken to as well.
 */
import type { EntryInfo } from './dependencies.js';
import { compareVersions } from './dialect.js';
import type { OrderRule } from './order-check.js';

/** The QEMU releases whose rules are known, oldest first. */
export const QEMU_RELEASES = ['7.2', '8.0', '8.1', '8.2', '9.0', '9.1', '9.2', '10.0', '10.1', '10.2'] as const;

/** A QEMU release (major.minor) whose rules are known. */
export type QemuRelease = (typeof QEMU_RELEASES)[number];

/** A MigrationPriority member, named without its MIG_PRI_ prefix. */
export type QemuPriorityName = 'UNINITIALIZED' | 'LOW' | 'DEFAULT' | 'IOMMU' | 'PCI_BUS' | 'VIRTIO_MEM' | 'APIC' | 'GICV3_ITS' | 'GICV3';

/** When a fact holds: from `since` on, through `until` when given. `source` says where QEMU has it. */
interface Span {
  readonly since: QemuRelease;
  readonly until?: QemuRelease;
  readonly source: string;
}

/** MigrationPriority in include/migration/vmstate.h; a higher value is saved (and loaded) first. */
const PRIORITY_ENUMS: readonly (Span & { readonly members: readonly QemuPriorityName[] })[] = [
  {
    since: '7.2',
    until: '10.0',
    source: 'include/migration/vmstate.h of 7.2 and 10.0.2 (unchanged since VIRTIO_MEM joined in 6.1, 0fd7616e0f)',
    members: ['DEFAULT', 'IOMMU', 'PCI_BUS', 'VIRTIO_MEM', 'GICV3_ITS', 'GICV3'],
  },
  {
    since: '10.1',
    until: '10.1',
    // 0 now means "not set", which save_state_priority() (migration/savevm.c) reads as DEFAULT.
    source: 'include/migration/vmstate.h, 081c09dc52 "migration: lower handler priority" (10.1): UNINITIALIZED and LOW below DEFAULT',
    members: ['UNINITIALIZED', 'LOW', 'DEFAULT', 'IOMMU', 'PCI_BUS', 'VIRTIO_MEM', 'GICV3_ITS', 'GICV3'],
  },
  {
    since: '10.2',
    source: 'include/migration/vmstate.h of 10.2.2, d943cef760 (10.2): APIC between VIRTIO_MEM and GICV3_ITS',
    members: ['UNINITIALIZED', 'LOW', 'DEFAULT', 'IOMMU', 'PCI_BUS', 'VIRTIO_MEM', 'APIC', 'GICV3_ITS', 'GICV3'],
  },
];

/** The `.priority` of top-level VMSDs (a device class's `dc->vmsd`, or one registered by itself). */
const VMSD_PRIORITIES: readonly (Span & { readonly priority: QemuPriorityName; readonly vmsds: readonly string[] })[] = [
  {
    since: '7.2',
    priority: 'PCI_BUS',
    // Root ports, switch ports and PCI bridges since 2.12 (9d6b9db19c, the fix that loads them before the IOMMU).
    source:
      'hw/pci-bridge/gen_pcie_root_port.c, ioh3420.c, xio3130_upstream.c, xio3130_downstream.c, pcie_pci_bridge.c ' +
      '(TYPE_PCIE_PCI_BRIDGE_DEV), pci_bridge_dev.c, i82801b11.c',
    vmsds: [
      'pcie-root-port',
      'ioh-3240-express-root-port',
      'xio3130-express-upstream-port',
      'xio3130-express-downstream-port',
      'pcie-pci-bridge',
      'pci_bridge',
      'i82801b11_bridge',
    ],
  },
  {
    since: '7.2',
    priority: 'IOMMU',
    source: 'hw/i386/intel_iommu.c (2.9, 8cdcf3c1e5), hw/virtio/virtio-iommu.c (5.0, bd0ab8702f), hw/arm/smmuv3.c (5.2, a55aab6181)',
    vmsds: ['iommu-intel', 'virtio-iommu', 'smmuv3'],
  },
  {
    since: '10.1',
    priority: 'IOMMU',
    // Migratable only when its PCI function is created explicitly (pci-id); "unmigratable" in 10.0.
    source: 'hw/i386/amd_iommu.c vmstate_amdvi_sysbus_migratable, 28931c2e15 (10.1)',
    vmsds: ['amd-iommu'],
  },
  {
    since: '7.2',
    priority: 'GICV3',
    source: 'hw/intc/arm_gicv3_common.c (2.10, 252a7a6a96)',
    vmsds: ['arm_gicv3'],
  },
  {
    since: '7.2',
    priority: 'GICV3_ITS',
    source: 'hw/intc/arm_gicv3_its_common.c (2.10, 252a7a6a96)',
    vmsds: ['arm_gicv3_its'],
  },
  {
    since: '7.2',
    priority: 'DEFAULT',
    // VIRTIO_MEM sits on the inner "virtio-mem-device" (vdc->vmsd), saved inside this section, where it
    // has no effect: only a top-level VMSD's priority orders sections.
    source: 'hw/virtio/virtio-mem.c of 7.2 and 10.2.2 (0fd7616e0f put VIRTIO_MEM on the inner description in 6.1)',
    vmsds: ['virtio-mem'],
  },
  {
    since: '10.1',
    priority: 'LOW',
    // Sent only by cpr-transfer (its `needed` is cpr_incoming_needed); the comment there: "Must happen
    // after devices and groups". The user 081c09dc52 made LOW for, in the same series.
    source: 'hw/vfio/cpr-legacy.c of 10.2.2',
    vmsds: ['vfio-container'],
  },
  {
    since: '10.2',
    priority: 'APIC',
    source: 'hw/intc/apic_common.c vmstate_apic_common, d943cef760 (10.2)',
    vmsds: ['apic'],
  },
];

/** VMSDs with `early_setup`: saved as FULL sections in the setup phase, among the iterative handlers' START sections (in handler order), before any page and any other device. */
const EARLY_SETUP: readonly (Span & { readonly vmsd: string })[] = [
  {
    since: '8.0',
    // Registered only while virtio-mem's x-early-migration is on: off for machine types <= 7.2
    // (hw_compat_7_2 in hw/core/machine.c), whose streams keep the bitmap in "virtio-mem".
    source: 'hw/virtio/virtio-mem.c vmstate_virtio_mem_device_early, 3b95a71b22 (8.0); early_setup from 62f42625d4',
    vmsd: 'virtio-mem-device-early',
  },
];

/** What a release's rules are built on. */
interface ReleaseFacts {
  /** Picks the entries whose VMSD has one of these priorities in the release. */
  has(...priorities: QemuPriorityName[]): (e: EntryInfo) => boolean;
  /** A PCI device's section, but not one sent early (its state is meant to load before any device's). */
  pciDevice(e: EntryInfo): boolean;
}

const VIRTIO_MEM_REASON = "an IOMMU's mappings may cover virtio-mem memory, which must be plugged first";

/** The rules, in the order they are checked and reported. */
const RULES: readonly (Span & Pick<OrderRule, 'name' | 'reason'> & { pick(f: ReleaseFacts): Pick<OrderRule, 'supplier' | 'consumer'> })[] = [
  {
    name: 'bridges before IOMMUs',
    since: '7.2',
    source: 'MIG_PRI_PCI_BUS "Must happen before IOMMU" (include/migration/vmstate.h; 9d6b9db19c, 2.12)',
    reason: 'an IOMMU rebuilds its address spaces from the bus numbers in bridges and root ports',
    pick: (f) => ({ supplier: f.has('PCI_BUS'), consumer: f.has('IOMMU') }),
  },
  {
    name: 'IOMMUs before PCI devices',
    since: '7.2',
    source: 'MIG_PRI_IOMMU "Must happen before PCI devices" (include/migration/vmstate.h; 8cdcf3c1e5, 2.9)',
    reason: 'a PCI device behind an IOMMU must find its address space when it loads',
    pick: (f) => ({ supplier: f.has('IOMMU'), consumer: (e) => f.pciDevice(e) && !f.has('PCI_BUS', 'IOMMU')(e) }),
  },
  {
    name: 'virtio-mem before IOMMUs',
    since: '7.2',
    until: '7.2',
    // The bitmap travels in "virtio-mem" at DEFAULT priority, after the IOMMU: QEMU 7.2 breaks this itself.
    source: 'MIG_PRI_VIRTIO_MEM "Must happen before IOMMU" (include/migration/vmstate.h; 0fd7616e0f, 6.1), set on the inner VMSD (hw/virtio/virtio-mem.c)',
    reason: VIRTIO_MEM_REASON,
    pick: (f) => ({ supplier: (e) => e.vmsdName === 'virtio-mem', consumer: f.has('IOMMU') }),
  },
  {
    name: 'virtio-mem before IOMMUs',
    since: '8.0',
    // The bitmap goes early in "virtio-mem-device-early"; without it (x-early-migration off), in "virtio-mem".
    // Both are registered on the device, so their idstrs are its path and "/virtio-mem" or "/virtio-mem-device-early".
    source: 'MIG_PRI_VIRTIO_MEM "Must happen before IOMMU"; hw/virtio/virtio-mem.c virtio_mem_vmstate_field_exists (3b95a71b22, 8.0)',
    reason: VIRTIO_MEM_REASON,
    pick: (f) => ({
      supplier: (e, all) =>
        e.vmsdName === 'virtio-mem-device-early' ||
        (e.vmsdName === 'virtio-mem' && !all.some((o) => o.vmsdName === 'virtio-mem-device-early' && o.idstr === `${e.idstr}-device-early`)),
      consumer: f.has('IOMMU'),
    }),
  },
  {
    name: 'GICv3 before its ITS',
    since: '7.2',
    source: 'MIG_PRI_GICV3 "Must happen before the ITS" (include/migration/vmstate.h; 252a7a6a96, 2.10)',
    reason: 'the ITS restores its tables into a GIC that must already be loaded',
    pick: (f) => ({ supplier: f.has('GICV3'), consumer: f.has('GICV3_ITS') }),
  },
  {
    name: 'GICv3 ITS before PCI devices',
    since: '7.2',
    source: 'MIG_PRI_GICV3_ITS "Must happen before PCI devices" (include/migration/vmstate.h; 252a7a6a96, 2.10)',
    reason: 'PCI devices send MSIs through the ITS',
    pick: (f) => ({ supplier: f.has('GICV3', 'GICV3_ITS'), consumer: f.pciDevice }),
  },
  {
    name: 'APIC before PCI devices',
    since: '10.2',
    source: 'MIG_PRI_APIC "Must happen before PCI devices" (include/migration/vmstate.h; d943cef760, 10.2)',
    reason: "a VFIO PCI device's interrupt setup reads the APIC to choose posted or remapped delivery",
    pick: (f) => ({ supplier: f.has('APIC'), consumer: f.pciDevice }),
  },
];

/** One release's priorities and order rules. */
export interface QemuOrderRules {
  readonly release: QemuRelease;
  /** The releases that hold the same facts, this one among them (e.g. 8.0 through 10.0). */
  readonly sameAs: readonly QemuRelease[];
  /** MigrationPriority's members and their values in this release. */
  readonly priorityValues: ReadonlyMap<QemuPriorityName, number>;
  /** The priority of each top-level VMSD that has one listed; any other has DEFAULT. */
  readonly priorities: ReadonlyMap<string, QemuPriorityName>;
  /** VMSDs saved early, in the setup phase. */
  readonly earlySetup: ReadonlySet<string>;
  readonly rules: readonly OrderRule[];
  /** The priority value this release gives a top-level VMSD (DEFAULT's when unnamed or not listed). */
  priorityOf(vmsdName: string | undefined): number;
}

const rank = (r: QemuRelease) => QEMU_RELEASES.indexOf(r);
const holds = (s: Span, r: QemuRelease) => rank(s.since) <= rank(r) && (s.until === undefined || rank(r) <= rank(s.until));

/** Which facts hold in `r`, as one string: equal for releases that do not differ. */
function factsKey(r: QemuRelease): string {
  return [PRIORITY_ENUMS, VMSD_PRIORITIES, EARLY_SETUP, RULES].map((table: readonly Span[]) => table.map((s) => (holds(s, r) ? 1 : 0)).join('')).join('/');
}

/** The priorities and order rules of `release`. */
export function qemuOrderRules(release: QemuRelease): QemuOrderRules {
  const members = PRIORITY_ENUMS.find((p) => holds(p, release))?.members ?? [];
  const priorityValues = new Map(members.map((m, i) => [m, i]));
  const priorities = new Map(VMSD_PRIORITIES.filter((p) => holds(p, release)).flatMap((p) => p.vmsds.map((v) => [v, p.priority] as const)));
  const earlySetup = new Set(EARLY_SETUP.filter((e) => holds(e, release)).map((e) => e.vmsd));
  const priorityName = (e: EntryInfo) => priorities.get(e.vmsdName ?? '') ?? 'DEFAULT';
  const facts: ReleaseFacts = {
    has: (...ps) => (e) => ps.includes(priorityName(e)),
    pciDevice: (e) => isPciDevice(e) && !earlySetup.has(e.vmsdName ?? ''),
  };
  const key = factsKey(release);
  return {
    release,
    sameAs: QEMU_RELEASES.filter((r) => factsKey(r) === key),
    priorityValues,
    priorities,
    earlySetup,
    rules: RULES.filter((r) => holds(r, release)).map((r) => ({ name: r.name, reason: r.reason, ...r.pick(facts) })),
    priorityOf: (vmsdName) => priorityValues.get(priorities.get(vmsdName ?? '') ?? 'DEFAULT') as number,
  };
}

/**
 * The known release whose rules fit QEMU `version` ("9.1.3", "10.0"): its major.minor's, else the
 * nearest known (the oldest for an older QEMU, the newest for a newer one).
 */
export function qemuReleaseFor(version: string): QemuRelease {
  const majorMinor = version.split('.').slice(0, 2).join('.');
  return [...QEMU_RELEASES].reverse().find((r) => compareVersions(r, majorMinor) <= 0) ?? QEMU_RELEASES[0];
}

/** A device on a PCI bus: its idstr starts with a PCI path such as `0000:00:03.0`. */
export function isPciDevice(e: EntryInfo): boolean {
  return /^[0-9a-f]{4}(:[0-9a-f]{2})?:[0-9a-f]{2}\.[0-7]/.test(e.idstr);
}

const QEMU_7_2 = qemuOrderRules('7.2');
const withPriority7_2 = (p: QemuPriorityName) => new Set([...QEMU_7_2.priorities].filter(([, q]) => q === p).map(([v]) => v));

/** QEMU 7.2's PCI bridges, root ports and switch ports (PCI_BUS priority): they load before any IOMMU. */
export const QEMU_BRIDGE_VMSDS: ReadonlySet<string> = withPriority7_2('PCI_BUS');

/** QEMU 7.2's IOMMUs (IOMMU priority): they rebuild per-device address spaces from bus numbers after load. */
export const QEMU_IOMMU_VMSDS: ReadonlySet<string> = withPriority7_2('IOMMU');

/** The priority QEMU 7.2 gives a top-level VMSD, by name (DEFAULT when not listed); MigPriority's values. */
export const QEMU_PRIORITY_BY_VMSD: ReadonlyMap<string, number> = new Map([...QEMU_7_2.priorities.keys()].map((v) => [v, QEMU_7_2.priorityOf(v)]));

/** QEMU 7.2's order rules (qemuOrderRules('7.2').rules). */
export const QEMU_ORDER_RULES: readonly OrderRule[] = QEMU_7_2.rules;
