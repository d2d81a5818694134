// The reference machine. For now: device state layouts that mirror QEMU 7.2's.
export { DMAR_REG_SIZE, intelIommuFields, intelIommuVmsd } from './layouts/intel-iommu.js';
export type { IntelIommuState } from './layouts/intel-iommu.js';
export {
  msixStateSize,
  msixVmsd,
  newPciDeviceState,
  PCI_CONFIG_SPACE_SIZE,
  PCI_NUM_PINS,
  pciBusVmsd,
  pciDeviceVmsd,
  PCIE_CONFIG_SPACE_SIZE,
  pcieAerLogVmsd,
  pcieRootPortVmsd,
  pciePciBridgeVmsd,
  SHPC_STATE_SIZE,
  xio3130DownstreamVmsd,
  xio3130UpstreamVmsd,
} from './layouts/pci.js';
export type { PciDeviceState, PcieRootPortState } from './layouts/pci.js';
export { countBuses, DEFAULT_MACHINE_TYPES, loadMachineDescription, parseMachineDescription } from './description.js';
export type { DeviceNode, MachineDescription } from './description.js';
export { buildPciTree } from './topology.js';
export { largeMachine, largeMachineText } from './large-machine.js';
export { allFunctions, enumerateBuses, markMultifunction, PciBridge, PciFunction, PCI_IDS } from './pci.js';
export type { PciKind } from './pci.js';
export { DmaFault, forEachDeviceInScope, groupByBus, ownsBus } from './iommu.js';
export type { BridgeToucher, BusGroup, GuestAllocator, IommuContext, IommuModel } from './iommu.js';
export { VTD_REG, VtdUnit } from './vtd.js';
export { SMMU_REG, smmuv3SidBits, Smmuv3Unit, STE_CONFIG, STE_SIZE } from './smmuv3.js';
export type { Smmuv3Options } from './smmuv3.js';
export { smmuv3Fields, smmuv3QueueVmsd, smmuv3Vmsd } from './layouts/smmuv3.js';
export type { Smmuv3QueueState, Smmuv3State } from './layouts/smmuv3.js';
export { DMA_MAX_LEN, DmaEngine, dmaEngineVmsd, DmaStatus } from './dma-engine.js';
export type { DmaEngineState, DmaPort } from './dma-engine.js';
export { ALLOC_BASE, BUFFER_SIZE, CONTROL_BLOCK, DST_IOVA, SRC_IOVA } from './driver.js';
export type { DmaResult } from './driver.js';
export { Machine } from './machine.js';
export type { MachineOptions } from './machine.js';
export { globalStateVmsd, newGlobalState, runStateOf, setRunState } from './layouts/globalstate.js';
export type { GlobalState } from './layouts/globalstate.js';
