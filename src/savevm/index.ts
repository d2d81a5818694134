// The stream's framing (header, configuration, sections, footers, EOF, trailer) and a walker over it;
// the registry of what is saved, its plans and order checks; snapshots.
export { COMMAND_LENGTHS, CONFIG_SUBSECTION, FILE_MAGIC, FILE_VERSION, MigCommand, RecordType } from './constants.js';
export type { SectionKind } from './constants.js';
export {
  decodeCommand,
  describeCommand,
  MAX_VMDESC_BYTES,
  findVmdescTrailer,
  readFooter,
  readHeader,
  readTopRecord,
  readVmdesc,
  writeCommand,
  writeConfiguration,
  writeEof,
  writeFooter,
  writeHeader,
  writePing,
  writeSectionHeader,
  writeVmdesc,
} from './framing.js';
export type {
  CommandRecord,
  ConfigSubsection,
  ConfigurationRecord,
  DecodedCommand,
  FullSectionHeader,
  SectionHeader,
  ShortSectionHeader,
  TopRecord,
} from './framing.js';
export { walkStream } from './walker.js';
export type { SectionBodyDecoder, SectionContext, StreamVisitor, WalkOptions } from './walker.js';
export { planOrder } from './plan.js';
export type { PlanEdge, PlanNode, PlanOptions, PlanResult } from './plan.js';
export { SaveRegistry } from './registry.js';
export type { IterativeHandler, RegisterOptions, SaveEntry, SavePlan } from './registry.js';
export { resolveDependencies, selectIndices } from './dependencies.js';
export type { Dependency, EntryInfo, EntrySelector } from './dependencies.js';
export { loadSnapshot, saveSnapshot, StreamSaver } from './snapshot.js';
export {
  compareVersions,
  DEFAULT_DIALECT,
  dialectForMachineType,
  hasMachineType,
  machineTypeVersion,
  NEWEST_DIALECT,
  QEMU_DIALECTS,
  sendsSwitchoverStart,
} from './dialect.js';
export type { QemuDialect } from './dialect.js';
export type { LoadResult, LoadSnapshotOptions, SaveSnapshotOptions, SnapshotSink } from './snapshot.js';
export { checkOrder } from './order-check.js';
export type { OrderRule, OrderViolation } from './order-check.js';
export {
  isPciDevice,
  QEMU_BRIDGE_VMSDS,
  QEMU_IOMMU_VMSDS,
  QEMU_ORDER_RULES,
  QEMU_PRIORITY_BY_VMSD,
  QEMU_RELEASES,
  qemuOrderRules,
  qemuReleaseFor,
} from './qemu-rules.js';
export type { QemuOrderRules, QemuPriorityName, QemuRelease } from './qemu-rules.js';
