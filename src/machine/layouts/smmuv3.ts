/** ARM SMMUv3 register state laid out as QEMU 7.2's "smmuv3" section (hw/arm/smmuv3.c, vmstate_smmuv3). */
import { defineVmsd, MigPriority, struct, u32, u32Array, u64, u8, type StateOf } from '../../vmstate/index.js';

/** A command or event queue (vmstate_smmuv3_queue): base register, producer and consumer indexes, log2 of its size. */
export const smmuv3QueueVmsd = defineVmsd({
  name: 'smmuv3_queue',
  version: 1,
  fields: [u64('base'), u32('prod'), u32('cons'), u8('log2size')],
});

/** One queue's state. */
export type Smmuv3QueueState = StateOf<typeof smmuv3QueueVmsd>;

/** The description's fields without hooks; the machine's SMMUv3 unit adds its post-load. */
export const smmuv3Fields = [
  u32('features'),
  u8('sid_size'),
  u8('sid_split'),
  u32Array('cr', 3),
  u32('cr0ack'),
  u32('statusr'),
  u32('irq_ctrl'),
  u32('gerror'),
  u32('gerrorn'),
  u64('gerror_irq_cfg0'),
  u32('gerror_irq_cfg1'),
  u32('gerror_irq_cfg2'),
  u64('strtab_base'),
  u32('strtab_base_cfg'),
  u64('eventq_irq_cfg0'),
  u32('eventq_irq_cfg1'),
  u32('eventq_irq_cfg2'),
  struct('cmdq', smmuv3QueueVmsd),
  struct('eventq', smmuv3QueueVmsd),
] as const;

/** The "smmuv3" section, version 1, at IOMMU priority: loads after the bridges whose bus numbers it reads. */
export const smmuv3Vmsd = defineVmsd({
  name: 'smmuv3',
  version: 1,
  minVersion: 1,
  priority: MigPriority.IOMMU,
  fields: smmuv3Fields,
});

/** The unit's saved registers. */
export type Smmuv3State = StateOf<typeof smmuv3Vmsd>;
