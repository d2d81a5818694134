// Guest RAM on the wire: the records of the iterative "ram" section.
export { compressBound, MAX_RAM_BLOCKS, RamDecoder, RamEncoder, RamFlag } from './records.js';
export { applyXbzrle } from './xbzrle.js';
export { inflatePage } from './compressed-page.js';
export type { MappedRegion, RamBlockInfo, RamLayout, RamSink } from './records.js';
export { isZeroPage, RamHandler } from './ram-handler.js';
export type { RamBlock, RamHandlerOptions, RamStats } from './ram-handler.js';
export { GuestMemoryError, GuestRam } from './guest-ram.js';
export type { MappedBlock } from './guest-ram.js';
