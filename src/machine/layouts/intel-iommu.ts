/** Intel VT-d register state laid out as QEMU 7.2's "iommu-intel" section (hw/i386/intel_iommu.c). */
import { bool, defineVmsd, MigPriority, u16, u32, u64, u8, u8Array, unused, type StateOf } from '../../vmstate/index.js';

/** DMAR_REG_SIZE: the VT-d register file kept in `csr`. */
export const DMAR_REG_SIZE = 560;

/** The description without hooks; the machine's IOMMU adds its post-load. */
export const intelIommuFields = [
  u64('root'),
  u64('intr_root'),
  u64('iq'),
  u32('intr_size'),
  u16('iq_head'),
  u16('iq_tail'),
  u16('iq_size'),
  u16('next_frcd_reg'),
  u8Array('csr', DMAR_REG_SIZE),
  u8('iq_last_desc_type'),
  unused(1), // root_extended, obsolete
  bool('dmar_enabled'),
  bool('qi_enabled'),
  bool('intr_enabled'),
  bool('intr_eime'),
] as const;

export const intelIommuVmsd = defineVmsd({
  name: 'iommu-intel',
  version: 1,
  priority: MigPriority.IOMMU,
  fields: intelIommuFields,
});

export type IntelIommuState = StateOf<typeof intelIommuVmsd>;
