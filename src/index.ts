// vmstate's public API.

// Errors
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

// Bytes
export { ByteReader, ByteWriter, ChunkedSource, formatQemuJson, pullFromIterable, QemuJsonWriter, qemuJsonString } from './stream/index.js';
export type { ChunkedSourceOptions, PullSource } from './stream/index.js';

// Declaring device state
export * from './vmstate/index.js';

// Stream framing
export * from './savevm/index.js';

// RAM records
export { GuestMemoryError, GuestRam, isZeroPage, RamDecoder, RamEncoder, RamFlag, RamHandler } from './ram/index.js';
export type { MappedBlock, RamBlock, RamBlockInfo, RamHandlerOptions, RamLayout, RamSink, RamStats } from './ram/index.js';

// Analysis and rewriting
export * from './analyze/index.js';
