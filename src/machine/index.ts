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
