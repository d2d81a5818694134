/**
 * PCI device state laid out as QEMU 7.2 saves it, so our sections read like QEMU's in any analyzer.
 * Mirrors hw/pci/pci.c (PCIDevice), hw/pci/pcie_aer.c (PCIE_AER_ERROR_LOG), hw/pci/msix.c (msix),
 * hw/pci/pci.c (PCIBUS) and hw/pci-bridge/gen_pcie_root_port.c (pcie-root-port).
 */
import type { ByteReader, ByteWriter } from '../../stream/index.js';
import { buffer, custom, defineVmsd, i32, i32Equal, i32Le, MigPriority, struct, u16, u16Equal, varray, type StateOf } from '../../vmstate/index.js';

/** PCI_CONFIG_SPACE_SIZE and PCIE_CONFIG_SPACE_SIZE. */
const PCI_CONFIG_SPACE_SIZE = 256;
const PCIE_CONFIG_SPACE_SIZE = 4096;
/** PCI_NUM_PINS: INTA..INTD. */
const PCI_NUM_PINS = 4;

/** "pci irq state": the level of each of the four interrupt pins, as be32 each. */
const pciIrqState = {
  type: 'pci irq state',
  size: PCI_NUM_PINS * 4,
  read(r: ByteReader): number[] {
    return [r.getBe32() | 0, r.getBe32() | 0, r.getBe32() | 0, r.getBe32() | 0];
  },
  write(w: ByteWriter, v: readonly number[]): void {
    for (let i = 0; i < PCI_NUM_PINS; i++) w.putBe32(v[i]);
  },
  accepts: (v: unknown): boolean => Array.isArray(v) && v.length === PCI_NUM_PINS && v.every((x) => Number.isInteger(x) && x >= -0x80000000 && x <= 0x7fffffff),
  expected: `an array of ${PCI_NUM_PINS} int32 pin levels`,
};

/** The PCIDevice description: config space (256 bytes, or 4096 for PCI Express) and the pin levels. */
export const pciDeviceVmsd = defineVmsd({
  name: 'PCIDevice',
  version: 2,
  minVersion: 1,
  fields: [
    i32Le('version_id'),
    buffer('config', PCI_CONFIG_SPACE_SIZE, { type: 'pci config', exists: (s: { config: Uint8Array }) => s.config.length === PCI_CONFIG_SPACE_SIZE }),
    buffer('config', PCIE_CONFIG_SPACE_SIZE, { type: 'pci config', exists: (s: { config: Uint8Array }) => s.config.length === PCIE_CONFIG_SPACE_SIZE }),
    custom('irq_state', pciIrqState, { version: 2 }),
  ],
});

/** PCIDevice state: `config` is 256 or 4096 bytes. */
export type PciDeviceState = StateOf<typeof pciDeviceVmsd>;

/** A fresh PCIDevice state with zeroed config space. */
export function newPciDeviceState(express: boolean): PciDeviceState {
  return { version_id: 2, config: new Uint8Array(express ? PCIE_CONFIG_SPACE_SIZE : PCI_CONFIG_SPACE_SIZE), irq_state: [0, 0, 0, 0] };
}

/** The AER error log of a PCI Express port. */
export const pcieAerLogVmsd = defineVmsd({
  name: 'PCIE_AER_ERROR_LOG',
  version: 1,
  fields: [u16('log_num'), u16Equal('log_max')],
});

/** "msix state": the vector table (16 bytes a vector) then the pending bits. */
function msixStateSize(vectors: number): number {
  return vectors * 16 + Math.ceil(vectors / 8);
}

/** The msix description for a device with `vectors` MSI-X vectors. */
export function msixVmsd(vectors: number) {
  return defineVmsd({
    name: 'msix',
    version: 0,
    fields: [buffer('msix', msixStateSize(vectors), { type: 'msix state' })],
  });
}

/** QEMU's generic PCIe root port (GEN_PCIE_ROOT_PORT) has one MSI-X vector. */
const rootPortMsix = msixVmsd(1);

/** A PCI Express root port, at PCI_BUS priority: its bus numbers must load before any IOMMU. */
export const pcieRootPortVmsd = defineVmsd({
  name: 'pcie-root-port',
  version: 1,
  priority: MigPriority.PCI_BUS,
  fields: [
    struct('parent_obj.parent_obj.parent_obj', pciDeviceVmsd),
    struct('parent_obj.parent_obj.parent_obj.exp.aer_log', pcieAerLogVmsd),
    struct('parent_obj.parent_obj.parent_obj.parent_obj', rootPortMsix, { exists: () => true }),
  ],
});

export type PcieRootPortState = StateOf<typeof pcieRootPortVmsd>;

/** PCIBUS: one per bus, the interrupt routing counters. */
export const pciBusVmsd = defineVmsd({
  name: 'PCIBUS',
  version: 1,
  fields: [i32Equal('nirq'), varray(i32('irq_count'), 'nirq')],
});

/** The upstream port of a PCI Express switch (hw/pci-bridge/xio3130_upstream.c): no MSI-X state. */
export const xio3130UpstreamVmsd = defineVmsd({
  name: 'xio3130-express-upstream-port',
  version: 1,
  priority: MigPriority.PCI_BUS,
  fields: [struct('parent_obj.parent_obj', pciDeviceVmsd), struct('parent_obj.parent_obj.exp.aer_log', pcieAerLogVmsd)],
});

/** A downstream port of a PCI Express switch (hw/pci-bridge/xio3130_downstream.c). */
export const xio3130DownstreamVmsd = defineVmsd({
  name: 'xio3130-express-downstream-port',
  version: 1,
  priority: MigPriority.PCI_BUS,
  fields: [struct('parent_obj.parent_obj.parent_obj', pciDeviceVmsd), struct('parent_obj.parent_obj.parent_obj.exp.aer_log', pcieAerLogVmsd)],
});

/** SHPC_SIZEOF for 31 slots: the standard hot-plug controller's registers (hw/pci/shpc.c). */
export const SHPC_STATE_SIZE = 160;

/** The PCIe-to-PCI bridge (hw/pci-bridge/pcie_pci_bridge.c), version 0, with its SHPC registers. */
export const pciePciBridgeVmsd = defineVmsd({
  name: 'pcie-pci-bridge',
  version: 0,
  priority: MigPriority.PCI_BUS,
  fields: [struct('parent_obj', pciDeviceVmsd), buffer('shpc', SHPC_STATE_SIZE, { type: 'shpc' })],
});
