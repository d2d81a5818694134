// Record types and magic numbers of QEMU's migration stream (migration/savevm.c in QEMU 7.2).

/** QEMU_VM_FILE_MAGIC: "QEVM". */
export const FILE_MAGIC = 0x5145564d;
/** QEMU_VM_FILE_VERSION: the only version QEMU 7.2 reads. */
export const FILE_VERSION = 3;

/** The top-level record type bytes (QEMU_VM_*). */
export const RecordType = {
  EOF: 0x00,
  SECTION_START: 0x01,
  SECTION_PART: 0x02,
  SECTION_END: 0x03,
  SECTION_FULL: 0x04,
  SUBSECTION: 0x05,
  VMDESCRIPTION: 0x06,
  CONFIGURATION: 0x07,
  COMMAND: 0x08,
  SECTION_FOOTER: 0x7e,
} as const;

/** Section kinds, named after their type byte. */
export type SectionKind = 'start' | 'part' | 'end' | 'full';

export const SECTION_KIND_BY_TYPE: Readonly<Record<number, SectionKind>> = {
  [RecordType.SECTION_START]: 'start',
  [RecordType.SECTION_PART]: 'part',
  [RecordType.SECTION_END]: 'end',
  [RecordType.SECTION_FULL]: 'full',
};

export const SECTION_TYPE_BY_KIND: Readonly<Record<SectionKind, number>> = {
  start: RecordType.SECTION_START,
  part: RecordType.SECTION_PART,
  end: RecordType.SECTION_END,
  full: RecordType.SECTION_FULL,
};

/** MIG_CMD_* numbers (migration/savevm.c). */
export const MigCommand = {
  OPEN_RETURN_PATH: 1,
  PING: 2,
  POSTCOPY_ADVISE: 3,
  POSTCOPY_LISTEN: 4,
  POSTCOPY_RUN: 5,
  POSTCOPY_RAM_DISCARD: 6,
  PACKAGED: 7,
  ENABLE_COLO: 8,
  POSTCOPY_RESUME: 9,
  RECV_BITMAP: 10,
  SWITCHOVER_START: 11,
} as const;

/**
 * MIG_CMD_* by number, with their payload lengths; -1 means variable. SWITCHOVER_START came with QEMU 10.0
 * (and 9.1.3, 9.2.1).
 */
export const COMMAND_LENGTHS: Readonly<Record<number, { name: string; length: number }>> = {
  1: { name: 'OPEN_RETURN_PATH', length: 0 },
  2: { name: 'PING', length: 4 },
  3: { name: 'POSTCOPY_ADVISE', length: -1 },
  4: { name: 'POSTCOPY_LISTEN', length: 0 },
  5: { name: 'POSTCOPY_RUN', length: 0 },
  6: { name: 'POSTCOPY_RAM_DISCARD', length: -1 },
  7: { name: 'PACKAGED', length: 4 },
  8: { name: 'ENABLE_COLO', length: 0 },
  9: { name: 'POSTCOPY_RESUME', length: 0 },
  10: { name: 'RECV_BITMAP', length: -1 },
  11: { name: 'SWITCHOVER_START', length: 0 },
};

/** Configuration record subsection names QEMU 7.2 can send. */
export const CONFIG_SUBSECTION = {
  targetPageBits: 'configuration/target-page-bits',
  capabilities: 'configuration/capabilities',
  uuid: 'configuration/uuid',
} as const;
