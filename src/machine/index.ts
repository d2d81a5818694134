// The reference machine: guest RAM, a PCI tree of root ports, switches and DMA engines numbered as
// firmware numbers it, Intel VT-d and ARM SMMUv3 units, a guest driver; and the device state layouts
// that mirror QEMU 7.2's.

// Machines: built from a description (JSON, or a name from machines/), run, saved, restored
export { Machine } from './machine.js';
export type { MachineOptions } from './machine.js';
export { defaultMachineType, loadMachineDescription, parseMachineDescription } from './description.js';
export type { DeviceNode, MachineDescription } from './description.js';
export { largeMachine } from './large-machine.js';
export type { DmaResult } from './driver.js';
export { DirtyingWorkload, MAX_DIRTY_RATE } from './dirtying-workload.js';

// Its devices
export { enumerateBuses, PciBridge, PciFunction, PCI_IDS } from './pci.js';
export type { PciKind } from './pci.js';
export { DmaFault } from './iommu.js';
export type { GuestAllocator, IommuModel } from './iommu.js';
export { VTD_REG, VtdUnit } from './vtd.js';
export { SMMU_REG, Smmuv3Unit } from './smmuv3.js';
export type { Smmuv3Options } from './smmuv3.js';
export { DmaEngine, dmaEngineVmsd, DmaStatus } from './dma-engine.js';
export type { DmaEngineState, DmaPort } from './dma-engine.js';

// Device state as QEMU 7.2 saves it
export { intelIommuVmsd } from './layouts/intel-iommu.js';
export type { IntelIommuState } from './layouts/intel-iommu.js';
export {
  msixVmsd,
  newPciDeviceState,
  pciBusVmsd,
  pciDeviceVmsd,
  pcieAerLogVmsd,
  pcieRootPortVmsd,
  pciePciBridgeVmsd,
  xio3130DownstreamVmsd,
  xio3130UpstreamVmsd,
} from './layouts/pci.js';
export type { PciDeviceState, PcieRootPortState } from './layouts/pci.js';
export { smmuv3QueueVmsd, smmuv3Vmsd } from './layouts/smmuv3.js';
export type { Smmuv3QueueState, Smmuv3State } from './layouts/smmuv3.js';
export { globalStateVmsd, newGlobalState } from './layouts/globalstate.js';
export type { GlobalState } from './layouts/globalstate.js';
