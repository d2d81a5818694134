// Guest RAM on the wire: the records of the iterative "ram" section.
export { MAX_RAM_BLOCKS, RamDecoder, RamEncoder, RamFlag } from './records.js';
export type { RamBlockInfo, RamLayout, RamSink } from './records.js';
export { isZeroPage, RamHandler } from './ram-handler.js';
export type { RamBlock, RamHandlerOptions, RamStats } from './ram-handler.js';
export { GuestMemoryError, GuestRam } from './guest-ram.js';
export type { MappedBlock } from './guest-ram.js';
