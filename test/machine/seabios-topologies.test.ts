// Bus numbering of every shipped q35 topology against real firmware: each machine in machines/ is built
// in QEMU 7.2 (root ports, switches, the PCIe-to-PCI bridge, an endpoint wherever the description has a
// dma-engine), SeaBIOS numbers the buses, and query-pci must show, for every bridge and every endpoint,
// the address and bus numbers enumerateBuses gives. Needs qemu-system-x86_64 (a failure, not a skip,
// with VMSTATE_REQUIRE_QEMU=1).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { DeviceNodeJson, MachineDescriptionJson } from '../../src/machine/description.js';
import { loadMachineDescription } from '../../src/machine/description.js';
import { allFunctions, enumerateBuses, PciBridge, type PciKind } from '../../src/machine/pci.js';
import { buildPciTree } from '../../src/machine/topology.js';
import { repoRoot } from '../support/paths.js';
import { allPciDevices, pollUntil, qemuOrSkip, queryPci, startQemu, type PciDeviceInfo } from '../support/qemu.js';

const QEMU = 'qemu-system-x86_64';
/** The shipped machines SeaBIOS can boot (large.json's 1,024 endpoints would take minutes under TCG). */
const MACHINES = ['q35-default', 'q35-multi-iommu'];

/** QEMU's device for each kind; a dma-engine becomes an endpoint QEMU has (no backend needed). */
const QEMU_DEVICE: Record<PciKind, string> = {
  'root-port': 'pcie-root-port',
  'switch-upstream': 'x3130-upstream',
  'switch-downstream': 'xio3130-downstream',
  'pcie-pci-bridge': 'pcie-pci-bridge',
  'dma-engine': 'virtio-rng-pci',
};

/** `-device` options for the description's tree, parents first. The IOMMUs change no bus number. */
function deviceArgs(nodes: readonly DeviceNodeJson[], bus: string): string[] {
  const out: string[] = [];
  for (const n of nodes) {
    const fn = n.function ?? 0;
    const props = [QEMU_DEVICE[n.type], `id=${n.id}`, `bus=${bus}`, `addr=${n.slot}.${fn}`];
    // Function 0 of a slot with more functions must say so, as on real hardware.
    if (fn === 0 && nodes.some((m) => m.slot === n.slot && (m.function ?? 0) > 0)) props.push('multifunction=on');
    if (n.chassis !== undefined) props.push(`chassis=${n.chassis}`, `slot=${n.chassis}`);
    out.push('-device', props.join(','));
    out.push(...deviceArgs(n.children ?? [], n.id));
  }
  return out;
}

function location(d: { bus: number; slot: number; function: number }): string {
  return `${d.bus.toString(16).padStart(2, '0')}:${d.slot.toString(16).padStart(2, '0')}.${d.function}`;
}

for (const name of MACHINES) {
  test(`${name}: SeaBIOS in QEMU gives every bridge and endpoint the bus numbers enumerateBuses does`, { timeout: 60_000 }, async (t) => {
    const binary = qemuOrSkip(t, QEMU);
    if (binary === null) return;
    const file = path.join(repoRoot, 'machines', `${name}.json`);
    const json = JSON.parse(fs.readFileSync(file, 'utf8')) as MachineDescriptionJson;
    const { rootBus } = buildPciTree(loadMachineDescription(file));
    enumerateBuses(rootBus);
    const ours = allFunctions(rootBus);
    const bridges = ours.filter((f): f is PciBridge => f instanceof PciBridge);

    const qemu = await startQemu({
      binary,
      args: ['-machine', 'q35', '-accel', 'tcg', '-m', '64M', '-smp', '1', '-nodefaults', ...deviceArgs(json.devices, 'pcie.0')],
    });
    let seen: PciDeviceInfo[];
    try {
      // SeaBIOS writes subordinate 0xff while it scans below a bridge, the real value after.
      seen = await pollUntil('SeaBIOS to number every bridge', 30_000, async () => {
        const devices = allPciDevices(await queryPci(qemu.qmp));
        const numbered = devices.filter((d) => {
          const b = d.pci_bridge?.bus;
          return b !== undefined && b.secondary > 0 && b.subordinate >= b.secondary && b.subordinate < 0xff;
        });
        return numbered.length === bridges.length ? devices : undefined;
      }, 100);
    } finally {
      await qemu.stop();
    }

    const byId = new Map(seen.filter((d) => d.qdev_id !== '').map((d) => [d.qdev_id, d]));
    assert.deepEqual([...byId.keys()].sort(), ours.map((f) => f.id).sort(), 'QEMU has exactly the described functions');
    for (const f of ours) {
      const d = byId.get(f.id) ?? assert.fail(`${f.id} not in query-pci`);
      assert.equal(f.bdf, location(d), `${f.id}: address`);
      if (f instanceof PciBridge) {
        const b = d.pci_bridge?.bus ?? assert.fail(`${f.id}: QEMU shows no bridge`);
        assert.deepEqual(
          { primary: f.primaryBus, secondary: f.secondaryBus, subordinate: f.subordinateBus },
          { primary: b.number, secondary: b.secondary, subordinate: b.subordinate },
          `${f.id}: bus numbers`,
        );
      }
    }
  });
}
