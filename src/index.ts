// vmstate's public API: bytes, device state descriptions, the stream's framing, save plans and
// snapshots, guest RAM. The rest has entry points of its own: vmstate/analyze, vmstate/machine,
// vmstate/migration and vmstate/qmp.

// Errors: every error vmstate throws is a VmstateError with one of these codes
export {
  IoError,
  LoadError,
  LoadOrderError,
  PlanError,
  SaveError,
  SectionError,
  StreamFormatError,
  StreamTruncatedError,
  UsageError,
  VmstateError,
} from './errors.js';
export type { StreamPosition, VmstateErrorCode } from './errors.js';

// Bytes: big-endian reader and writer, a bounded source over files and sockets, QEMU's JSON
export { ByteReader, ByteWriter, ChunkedSource, pullFromIterable, pullFromReadable, QemuJsonWriter } from './stream/index.js';
export type { ChunkedSourceOptions, PullSource } from './stream/index.js';

// Declaring device state, and the interpreter that saves and loads any declaration
export {
  array,
  bool,
  buffer,
  custom,
  defineVmsd,
  i16,
  i32,
  i32Equal,
  i32Le,
  i64,
  i8,
  INT_CODECS,
  loadState,
  MigPriority,
  pointerArray,
  PRIORITY_REASONS,
  priorityName,
  saveState,
  struct,
  timer,
  u16,
  u16Array,
  u16Equal,
  u32,
  u32Array,
  u32Equal,
  u64,
  u64Array,
  u64Equal,
  u8,
  u8Array,
  u8Equal,
  unused,
  varray,
  vbuffer,
} from './vmstate/index.js';
export type {
  AnyVmsd,
  BoolField,
  BufferField,
  Count,
  CustomCodec,
  CustomField,
  EntryRef,
  Field,
  FieldOptions,
  HookState,
  IntCodec,
  IntCodecName,
  IntField,
  LoadContext,
  StateOf,
  StateOfFields,
  StructField,
  TimerField,
  UnusedField,
  ValueOf,
  Vmsd,
  VmsdSpec,
} from './vmstate/index.js';

// The stream's framing: header, configuration, sections, footers, commands, EOF, the trailer
export {
  CONFIG_SUBSECTION,
  decodeCommand,
  describeCommand,
  FILE_MAGIC,
  FILE_VERSION,
  MigCommand,
  readFooter,
  readHeader,
  readTopRecord,
  readVmdesc,
  RecordType,
  walkStream,
  writeCommand,
  writeConfiguration,
  writeEof,
  writeFooter,
  writeHeader,
  writeSectionHeader,
  writeVmdesc,
} from './savevm/index.js';
export type {
  CommandRecord,
  ConfigSubsection,
  ConfigurationRecord,
  DecodedCommand,
  FullSectionHeader,
  SectionBodyDecoder,
  SectionContext,
  SectionHeader,
  SectionKind,
  ShortSectionHeader,
  StreamVisitor,
  TopRecord,
} from './savevm/index.js';

// What is saved, in which order (QEMU's priorities plus dependencies), and checks of an order
export {
  checkOrder,
  isPciDevice,
  planOrder,
  QEMU_BRIDGE_VMSDS,
  QEMU_IOMMU_VMSDS,
  QEMU_ORDER_RULES,
  QEMU_PRIORITY_BY_VMSD,
  QEMU_RELEASES,
  qemuOrderRules,
  qemuReleaseFor,
  SaveRegistry,
} from './savevm/index.js';
export type {
  Dependency,
  EntryInfo,
  EntrySelector,
  IterativeHandler,
  OrderRule,
  OrderViolation,
  PlanEdge,
  PlanNode,
  PlanOptions,
  PlanResult,
  QemuOrderRules,
  QemuPriorityName,
  QemuRelease,
  RegisterOptions,
  SaveEntry,
  SavePlan,
} from './savevm/index.js';

// Snapshots: a registry saved to a stream, and a stream loaded into one, in the dialect of a QEMU release
export { DEFAULT_DIALECT, loadSnapshot, QEMU_DIALECTS, saveSnapshot, StreamSaver } from './savevm/index.js';
export type { LoadResult, LoadSnapshotOptions, QemuDialect, SaveSnapshotOptions, SnapshotSink } from './savevm/index.js';
export type { VmdescRules } from './vmstate/index.js';

// Guest RAM and the iterative "ram" section
export { GuestMemoryError, GuestRam, RamDecoder, RamEncoder, RamFlag, RamHandler } from './ram/index.js';
export type { MappedBlock, RamBlock, RamBlockInfo, RamHandlerOptions, RamLayout, RamSink, RamStats } from './ram/index.js';
