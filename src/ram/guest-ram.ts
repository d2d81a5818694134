/**
 * Guest RAM: named RAM blocks (QEMU's RAMBlocks) mapped at guest-physical addresses, little-endian
 * accessors (the guests we model are little-endian), and a dirty bitmap per block that every write
 * through this class marks, so live migration can send only what changed.
 */
import { UsageError, VmstateError } from '../errors.js';
import type { RamBlock } from './ram-handler.js';

/** A RAM block placed in the guest-physical address space. */
export interface MappedBlock extends RamBlock {
  readonly base: number;
  /** One bit per page; set by writes, cleared by whoever sends the pages. */
  readonly dirty: Uint8Array;
  /** One bit per page written since the block was made; never cleared (see RamBlock.written). */
  readonly written: Uint8Array;
}

/** A guest-physical access outside every block. */
export class GuestMemoryError extends VmstateError {
  readonly code = 'GUEST_MEMORY' as const;

  constructor(
    readonly address: number,
    readonly length: number,
  ) {
    super(`guest-physical access at 0x${address.toString(16)} (+${length}) is outside RAM`, { address, length });
  }
}

export class GuestRam {
  readonly blocks: MappedBlock[] = [];
  readonly pageSize: number;
  private readonly pageShift: number;

  /** `pageSize`: TARGET_PAGE_SIZE, the dirty-tracking granule. Defaults to 4096. */
  constructor(pageSize = 4096) {
    this.pageSize = pageSize;
    this.pageShift = Math.log2(pageSize);
  }

  /** Adds a zeroed block of `size` bytes at guest-physical `base`. */
  addBlock(name: string, base: number, size: number): MappedBlock {
    if (size % this.pageSize !== 0) throw new UsageError(`RAM block ${name}: ${size} bytes is not a whole number of pages`, { block: name });
    for (const b of this.blocks) {
      if (base < b.base + b.data.length && b.base < base + size) throw new UsageError(`RAM block ${name} overlaps ${b.name}`, { block: name, other: b.name });
    }
    const bitmapBytes = Math.ceil(size / this.pageSize / 8);
    const block: MappedBlock = { name, base, data: new Uint8Array(size), dirty: new Uint8Array(bitmapBytes), written: new Uint8Array(bitmapBytes) };
    this.blocks.push(block);
    return block;
  }

  /** The block and offset holding [addr, addr+len); the range must not cross blocks. */
  private locate(addr: number, len: number): { block: MappedBlock; offset: number } {
    for (const block of this.blocks) {
      const offset = addr - block.base;
      if (offset >= 0 && offset + len <= block.data.length) return { block, offset };
    }
    throw new GuestMemoryError(addr, len);
  }

  private markDirty(block: MappedBlock, offset: number, len: number): void {
    const first = offset >> this.pageShift;
    const last = (offset + Math.max(len, 1) - 1) >> this.pageShift;
    for (let p = first; p <= last; p++) {
      block.dirty[p >> 3] |= 1 << (p & 7);
      block.written[p >> 3] |= 1 << (p & 7);
    }
  }

  /** A view of guest memory (no copy): read-only by convention, writes must go through write(). */
  view(addr: number, len: number): Uint8Array {
    const { block, offset } = this.locate(addr, len);
    return block.data.subarray(offset, offset + len);
  }

  write(addr: number, bytes: Uint8Array): void {
    const { block, offset } = this.locate(addr, bytes.length);
    block.data.set(bytes, offset);
    this.markDirty(block, offset, bytes.length);
  }

  readU32(addr: number): number {
    const { block, offset } = this.locate(addr, 4);
    const d = block.data;
    return (d[offset] | (d[offset + 1] << 8) | (d[offset + 2] << 16) | (d[offset + 3] << 24)) >>> 0;
  }

  writeU32(addr: number, v: number): void {
    const { block, offset } = this.locate(addr, 4);
    const d = block.data;
    d[offset] = v & 0xff;
    d[offset + 1] = (v >>> 8) & 0xff;
    d[offset + 2] = (v >>> 16) & 0xff;
    d[offset + 3] = (v >>> 24) & 0xff;
    this.markDirty(block, offset, 4);
  }

  /** A little-endian u64 as a number (guest addresses stay below 2^53). */
  readU64(addr: number): number {
    return this.readU32(addr) + this.readU32(addr + 4) * 0x100000000;
  }

  writeU64(addr: number, v: number): void {
    this.writeU32(addr, v >>> 0);
    this.writeU32(addr + 4, Math.floor(v / 0x100000000));
  }

  /** Every page's dirty bit set (as after a full first pass must send everything). */
  markAllDirty(): void {
    for (const b of this.blocks) b.dirty.fill(0xff);
  }
}
