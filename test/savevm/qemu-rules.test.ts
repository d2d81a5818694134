// QEMU's priorities and order rules release by release, against what QEMU's headers, sources and
// commits say. The expected values are written out here from those sources, not read back from the
// table: include/migration/vmstate.h of 7.2, 10.0.2 and 10.2.2, hw/i386/amd_iommu.c (28931c2e15),
// hw/intc/apic_common.c (d943cef760), hw/vfio/cpr-legacy.c, hw/virtio/virtio-mem.c (3b95a71b22).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkOrder, MigPriority, QEMU_ORDER_RULES, QEMU_PRIORITY_BY_VMSD, QEMU_RELEASES, qemuOrderRules, qemuReleaseFor, type EntryInfo, type QemuRelease } from '../../src/index.js';

const values = (r: QemuRelease) => Object.fromEntries(qemuOrderRules(r).priorityValues);
const entry = (idstr: string, vmsdName: string): EntryInfo => ({ idstr, instanceId: 0, vmsdName, priority: 0, tags: {} });
const broken = (r: QemuRelease, sequence: EntryInfo[]) => checkOrder(sequence, qemuOrderRules(r).rules).map((v) => `${v.rule.name}: ${sequence[v.supplier].idstr} after ${sequence[v.consumer].idstr}`);

test('MigrationPriority values as each release declares them', () => {
  // 7.2 to 10.0: the enum starts at MIG_PRI_DEFAULT = 0.
  const upTo10_0 = { DEFAULT: 0, IOMMU: 1, PCI_BUS: 2, VIRTIO_MEM: 3, GICV3_ITS: 4, GICV3: 5 };
  for (const r of ['7.2', '8.0', '8.1', '8.2', '9.0', '9.1', '9.2', '10.0'] as const) assert.deepEqual(values(r), upTo10_0, r);
  // 10.1, 081c09dc52: MIG_PRI_UNINITIALIZED = 0 and MIG_PRI_LOW before DEFAULT shift every value by 2.
  assert.deepEqual(values('10.1'), { UNINITIALIZED: 0, LOW: 1, DEFAULT: 2, IOMMU: 3, PCI_BUS: 4, VIRTIO_MEM: 5, GICV3_ITS: 6, GICV3: 7 });
  // 10.2, d943cef760: MIG_PRI_APIC after VIRTIO_MEM.
  assert.deepEqual(values('10.2'), { UNINITIALIZED: 0, LOW: 1, DEFAULT: 2, IOMMU: 3, PCI_BUS: 4, VIRTIO_MEM: 5, APIC: 6, GICV3_ITS: 7, GICV3: 8 });
  // The engine's own MigPriority is QEMU 7.2's.
  assert.deepEqual(values('7.2'), { ...MigPriority });
});

test('the AMD IOMMU has IOMMU priority from 10.1; in 10.0 it is unmigratable, so DEFAULT', () => {
  assert.equal(qemuOrderRules('10.0').priorityOf('amd-iommu'), 0);
  assert.equal(qemuOrderRules('10.0').priorities.get('amd-iommu'), undefined);
  assert.equal(qemuOrderRules('10.1').priorityOf('amd-iommu'), 3);
  assert.equal(qemuOrderRules('10.1').priorities.get('amd-iommu'), 'IOMMU');
  assert.equal(qemuOrderRules('10.2').priorityOf('amd-iommu'), 3);
  // intel-iommu, virtio-iommu and SMMUv3 have it throughout, with each release's value.
  for (const vmsd of ['iommu-intel', 'virtio-iommu', 'smmuv3']) {
    assert.deepEqual(QEMU_RELEASES.map((r) => qemuOrderRules(r).priorityOf(vmsd)), [1, 1, 1, 1, 1, 1, 1, 1, 3, 3], vmsd);
  }
});

test('the APIC has APIC priority in 10.2 only; vfio-container LOW from 10.1', () => {
  assert.equal(qemuOrderRules('10.0').priorityOf('apic'), 0);
  assert.equal(qemuOrderRules('10.1').priorityOf('apic'), 2);
  assert.equal(qemuOrderRules('10.2').priorityOf('apic'), 6);
  assert.equal(qemuOrderRules('10.0').priorityOf('vfio-container'), 0);
  assert.equal(qemuOrderRules('10.1').priorityOf('vfio-container'), 1);
  assert.equal(qemuOrderRules('10.2').priorityOf('vfio-container'), 1);
});

test('bridges, GICv3 and its ITS keep their priorities, renumbered in 10.1 and 10.2', () => {
  const bridges = ['pcie-root-port', 'ioh-3240-express-root-port', 'xio3130-express-upstream-port', 'xio3130-express-downstream-port', 'pcie-pci-bridge', 'pci_bridge', 'i82801b11_bridge'];
  for (const r of QEMU_RELEASES) {
    const pciBus = r === '10.1' || r === '10.2' ? 4 : 2;
    for (const b of bridges) assert.equal(qemuOrderRules(r).priorityOf(b), pciBus, `${r} ${b}`);
  }
  assert.deepEqual([qemuOrderRules('9.2'), qemuOrderRules('10.1'), qemuOrderRules('10.2')].map((q) => [q.priorityOf('arm_gicv3'), q.priorityOf('arm_gicv3_its')]), [[5, 4], [7, 6], [8, 7]]);
});

test("virtio-mem's top-level VMSD is DEFAULT everywhere: VIRTIO_MEM sits on the inner virtio-mem-device", () => {
  for (const r of QEMU_RELEASES) {
    const q = qemuOrderRules(r);
    assert.equal(q.priorityOf('virtio-mem'), q.priorityValues.get('DEFAULT'), r);
  }
  assert.equal(qemuOrderRules('7.2').earlySetup.has('virtio-mem-device-early'), false);
  for (const r of QEMU_RELEASES.slice(1)) assert.equal(qemuOrderRules(r).earlySetup.has('virtio-mem-device-early'), true, r);
});

test('releases that do not differ share their rules: 7.2, 8.0 to 10.0, 10.1, 10.2', () => {
  assert.deepEqual(qemuOrderRules('7.2').sameAs, ['7.2']);
  for (const r of ['8.0', '8.2', '9.1', '10.0'] as const) assert.deepEqual(qemuOrderRules(r).sameAs, ['8.0', '8.1', '8.2', '9.0', '9.1', '9.2', '10.0'], r);
  assert.deepEqual(qemuOrderRules('10.1').sameAs, ['10.1']);
  assert.deepEqual(qemuOrderRules('10.2').sameAs, ['10.2']);
  const five = ['bridges before IOMMUs', 'IOMMUs before PCI devices', 'virtio-mem before IOMMUs', 'GICv3 before its ITS', 'GICv3 ITS before PCI devices'];
  for (const r of ['7.2', '10.0', '10.1'] as const) assert.deepEqual(qemuOrderRules(r).rules.map((x) => x.name), five, r);
  assert.deepEqual(qemuOrderRules('10.2').rules.map((x) => x.name), [...five, 'APIC before PCI devices']);
});

test("the 7.2 constants are 7.2's rules and MigPriority's values", () => {
  assert.deepEqual(QEMU_ORDER_RULES.map((r) => r.name), qemuOrderRules('7.2').rules.map((r) => r.name));
  assert.equal(QEMU_PRIORITY_BY_VMSD.get('pcie-root-port'), MigPriority.PCI_BUS);
  assert.equal(QEMU_PRIORITY_BY_VMSD.get('iommu-intel'), MigPriority.IOMMU);
  assert.equal(QEMU_PRIORITY_BY_VMSD.get('arm_gicv3'), MigPriority.GICV3);
  assert.equal(QEMU_PRIORITY_BY_VMSD.has('amd-iommu'), false);
});

test('an AMD IOMMU before a root port breaks 10.1 rules, not 10.0 ones', () => {
  const seq = [entry('amd-iommu', 'amd-iommu'), entry('0000:00:03.0/pcie-root-port', 'pcie-root-port'), entry('0000:01:00.0/e1000e', 'e1000e')];
  assert.deepEqual(broken('10.0', seq), []);
  assert.deepEqual(broken('10.1', seq), ['bridges before IOMMUs: 0000:00:03.0/pcie-root-port after amd-iommu']);
});

test('a PCI device before the APIC breaks 10.2 rules only', () => {
  const seq = [entry('0000:00:00.0/mch', 'mch'), entry('apic', 'apic')];
  assert.deepEqual(broken('10.1', seq), []);
  assert.deepEqual(broken('10.2', seq), ['APIC before PCI devices: apic after 0000:00:00.0/mch']);
});

test("virtio-mem from 8.0: the early section carries the bitmap; without one (machine types <= 7.2), virtio-mem's own does", () => {
  // As QEMU 10.0 saves pc-q35-10.0: the early section first (setup phase), then the IOMMU, then the rest.
  const early = [entry('0000:00:01.0/virtio-mem-device-early', 'virtio-mem-device-early'), entry('iommu-intel', 'iommu-intel'), entry('0000:00:01.0/virtio-mem', 'virtio-mem')];
  assert.deepEqual(broken('8.0', early), []);
  assert.deepEqual(broken('10.2', early), []);
  // 7.2 knows no early setup: the early section is a PCI device ahead of the IOMMU, and virtio-mem comes after it.
  assert.deepEqual(broken('7.2', early), [
    'IOMMUs before PCI devices: iommu-intel after 0000:00:01.0/virtio-mem-device-early',
    'virtio-mem before IOMMUs: 0000:00:01.0/virtio-mem after iommu-intel',
  ]);
  // pc-q35-7.2 on QEMU 8.0 and later: no early section, so QEMU's order breaks the rule as 7.2's does.
  const late = [entry('iommu-intel', 'iommu-intel'), entry('0000:00:01.0/virtio-mem', 'virtio-mem')];
  for (const r of ['7.2', '8.0', '10.2'] as const) assert.deepEqual(broken(r, late), ['virtio-mem before IOMMUs: 0000:00:01.0/virtio-mem after iommu-intel'], r);
});

test('the release for a QEMU version: its major.minor, else the nearest known', () => {
  assert.equal(qemuReleaseFor('9.1.3'), '9.1');
  assert.equal(qemuReleaseFor('10.0'), '10.0');
  assert.equal(qemuReleaseFor('10.2.2'), '10.2');
  assert.equal(qemuReleaseFor('6.2'), '7.2');
  assert.equal(qemuReleaseFor('11.0'), '10.2');
});
