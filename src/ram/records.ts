/**
 * The body of QEMU's "ram" section (migration/ram.c, QEMU 7.2, section version 4): a sequence of records,
 * each a be64 word whose low bits (below the target page size) are flags and whose high bits are an
 * offset inside a RAM block, ended by an EOS word.
 *
 *   record    := word payload
 *   MEM_SIZE  := (total | 0x04)  (str8 block  be64 used_length  [be64 page_size if postcopy-ram and the
 *                block's pages are not the host's]  [be64 guest_addr if x-ignore-shared]
 *                [region if mapped-ram])*  until the lengths add up to total
 *   region    := be32 version(1)  be64 page_size  be64 bitmap_offset  be64 pages_offset, then the stream
 *                goes on at pages_offset + used_length (mapped-ram, QEMU 9.0 on: a `file:` migration
 *                keeps each block's pages at fixed offsets, with a bitmap of those written; no page
 *                records follow)
 *   ZERO      := (offset | 0x02 [| 0x20])  [str8 block unless CONTINUE]  u8 fill
 *   PAGE      := (offset | 0x08 [| 0x20])  [str8 block unless CONTINUE]  page[page_size]
 *   XBZRLE    := (offset | 0x40 [| 0x20])  [str8 block unless CONTINUE]  u8 0x01  be16 len  delta[len]
 *   COMPRESS  := (offset | 0x100 [| 0x20]) [str8 block unless CONTINUE]  be32 len  zlib[len]   (to 9.0)
 *   FLUSH     := 0x200                                           MULTIFD_FLUSH (8.1 on), no payload
 *   EOS       := 0x10
 *
 * CONTINUE (0x20) means "same block as the previous page record", remembered across sections. An XBZRLE
 * page is its difference from the page sent before (see xbzrle.ts); a COMPRESS page is deflated
 * (compressed-page.ts). The decoder hands every record on as it is, so that a rewrite gives the same
 * bytes back; sinks that want page contents decode them.
 */
import { StreamFormatError, StreamTruncatedError, UsageError } from '../errors.js';
import { ByteReader, type ByteWriter } from '../stream/index.js';

/** RAM_SAVE_FLAG_* values. */
export const RamFlag = {
  FULL: 0x01,
  ZERO: 0x02,
  MEM_SIZE: 0x04,
  PAGE: 0x08,
  EOS: 0x10,
  CONTINUE: 0x20,
  XBZRLE: 0x40,
  HOOK: 0x80,
  COMPRESS_PAGE: 0x100,
  MULTIFD_FLUSH: 0x200,
} as const;

/** The byte before an XBZRLE page's length: ENCODING_FLAG_XBZRLE. */
const XBZRLE_ENCODING = 0x01;

/** Most RAM blocks one block list may name; QEMU machines have a few dozen. */
export const MAX_RAM_BLOCKS = 4096;
/** The longest block list after its word: every block with a 255-byte name, its length and address. */
const MAX_BLOCK_LIST_BYTES = MAX_RAM_BLOCKS * (1 + 255 + 8 + 8);

/** Where a mapped-ram block's pages are in the file (its header's offsets are absolute). */
export interface MappedRegion {
  readonly version: number;
  readonly pageSize: number;
  /** The bitmap of pages written: one bit a page, in 64-bit little-endian words, from bitmap_offset. */
  readonly bitmapOffset: number;
  /** Page i of the block is at pagesOffset + i * pageSize. */
  readonly pagesOffset: number;
}

/** The mapped-ram header after each block entry. */
const MAPPED_REGION_BYTES = 4 + 8 + 8 + 8;
const MAPPED_REGION_VERSION = 1;

/** One RAM block as announced in the MEM_SIZE record. */
export interface RamBlockInfo {
  readonly name: string;
  readonly usedLength: number;
  /** With postcopy-ram, the block's page size where it is not the host's (huge pages). */
  readonly pageSize?: number;
  /** Present only when the x-ignore-shared capability is on. */
  readonly guestAddress?: number;
}

/**
 * Receives RAM records in stream order. Page bytes are valid only during the call. A sink without `page`
 * makes the decoder skip every page's bytes, XBZRLE and compressed ones too.
 */
export interface RamSink {
  /** The block list begins: its blocks' lengths add up to `total`. */
  memSize?(total: number): void;
  /** One entry of the block list, in order. */
  block?(info: RamBlockInfo): void;
  /** A mapped-ram block's header, after its entry; its bitmap and pages follow in the file. */
  mappedRegion?(info: RamBlockInfo, region: MappedRegion): void;
  /** The bytes a mapped-ram block's header jumps over (its bitmap and pages), for a sink that copies them. */
  skipped?(chunk: Uint8Array): void;
  /** The whole block list, once read. */
  blockList?(total: number, blocks: readonly RamBlockInfo[]): void;
  zeroPage?(block: string, offset: number, fill: number, named: boolean): void;
  page?(block: string, offset: number, data: Uint8Array, named: boolean): void;
  /** A page as its difference from the page sent before (applyXbzrle turns it into the page). */
  xbzrlePage?(block: string, offset: number, delta: Uint8Array, named: boolean): void;
  /** A page deflated with zlib (inflatePage turns it into the page). */
  compressedPage?(block: string, offset: number, deflated: Uint8Array, named: boolean): void;
  /** MULTIFD_FLUSH: the multifd channels were synced here. */
  multifdFlush?(): void;
  eos?(): void;
}

/** Options that change the record layout, known from the configuration record. */
export interface RamLayout {
  /** TARGET_PAGE_SIZE of the source. */
  readonly pageSize: number;
  /** The x-ignore-shared capability adds each block's guest address to the block list. */
  readonly ignoreShared?: boolean;
  /** The mapped-ram capability keeps pages at fixed offsets of the file, after a header per block. */
  readonly mappedRam?: boolean;
  /**
   * The page sizes of the blocks on huge pages, when the source advised postcopy (POSTCOPY_ADVISE's page
   * size summary, less the host's): such a block has its page size after its length. What follows a
   * length is a page size when it is one of these (a name's length byte, or EOS, never is).
   */
  readonly hugePageSizes?: readonly number[];
}

const FLAG_NAMES: ReadonlyArray<[number, string]> = [
  [RamFlag.FULL, 'FULL'],
  [RamFlag.HOOK, 'HOOK'],
];

/** zlib's compressBound: the longest deflated form of `n` bytes, the most a COMPRESS page may take. */
export function compressBound(n: number): number {
  return n + (n >>> 12) + (n >>> 14) + (n >>> 25) + 13;
}

/**
 * Decodes RAM records section after section. One instance per stream: it remembers the last block named
 * so CONTINUE records resolve across PART sections.
 */
export class RamDecoder {
  private lastBlock: string | null = null;
  private readonly flagMask: number;
  /** The longest record a page can make: word, named block, page. */
  private readonly maxRecord: number;
  /** The most the next step reads: a page's record, or a whole block list when one comes next. */
  need: number;
  /** Set after a step that stops at a mapped-ram header: the absolute offset the stream goes on at. */
  skip: { readonly to: number; readonly bytes?: (chunk: Uint8Array) => void } | null = null;
  /** A mapped-ram block list being read, a block a step. */
  private listing: { readonly total: number; readonly start: number; sum: number; readonly blocks: RamBlockInfo[] } | null = null;

  constructor(
    private readonly layout: RamLayout,
    private readonly sink: RamSink,
  ) {
    const ps = layout.pageSize;
    if (!Number.isInteger(ps) || ps < 512 || ps > 1 << 16 || (ps & (ps - 1)) !== 0) {
      throw new UsageError(`RAM page size ${ps} is not a power of two between 512 and 65536`, { pageSize: ps });
    }
    this.flagMask = ps - 1;
    this.maxRecord = 8 + 1 + 255 + 4 + compressBound(ps);
    this.need = 8;
  }

  /**
   * Parses whole records until EOS (returns true), or until the next record may not be whole in a window
   * that is not the stream's last (returns false, `need` saying how much to buffer before the next step).
   * A record cut by the end of the stream throws StreamTruncatedError.
   */
  step(r: ByteReader): boolean {
    const skipping = this.sink.page === undefined || this.sink.zeroPage === undefined;
    this.skip = null;
    if (this.listing !== null && !this.readMappedBlock(r)) return false;
    for (;;) {
      if (skipping && this.lastBlock !== null) this.skipUnheard(r);
      if (!r.final && r.remaining < this.maxRecord) {
        // Near the window's end: wait for exactly the next record, which a live connection sends whole
        // before it may stop to wait for an answer (the return path's PING after the whole state).
        const length = this.nextRecordLength(r);
        if (r.remaining < length) {
          this.need = length;
          return false;
        }
      }
      const start = r.offset;
      const word = r.getBe64Number();
      const flags = word % (this.flagMask + 1);
      const addr = word - flags;
      const kind = flags & ~RamFlag.CONTINUE;
      if (kind === RamFlag.EOS && flags === RamFlag.EOS) {
        this.sink.eos?.();
        // The next section starts with a record's word, no more.
        this.need = 8;
        return true;
      }
      if (flags === RamFlag.MULTIFD_FLUSH) {
        this.sink.multifdFlush?.();
        continue;
      }
      if (kind === RamFlag.MEM_SIZE && flags === RamFlag.MEM_SIZE) {
        if (this.layout.mappedRam) {
          // A block a step: after each, the stream goes on past the block's pages.
          this.sink.memSize?.(addr);
          this.listing = { total: addr, start, sum: 0, blocks: [] };
          if (!this.readMappedBlock(r)) return false;
          continue;
        }
        if (!r.final && r.remaining < MAX_BLOCK_LIST_BYTES && !this.blockListIsIn(r, addr, start)) {
          // Not read yet: the whole list is buffered first, a byte more each time (a live connection sends
          // no more than the stream holds so far).
          r.pos -= 8;
          this.need = r.remaining + 1;
          return false;
        }
        this.readBlockList(r, addr, start);
      } else if (kind === RamFlag.ZERO || kind === RamFlag.PAGE || kind === RamFlag.XBZRLE || kind === RamFlag.COMPRESS_PAGE) {
        const named = (flags & RamFlag.CONTINUE) === 0;
        let block: string;
        if (named) {
          block = r.getCountedString();
        } else if (this.lastBlock === null) {
          throw new StreamFormatError(`RAM page at 0x${addr.toString(16)} continues a block but no block was named yet`, { offset: start, path: '' });
        } else {
          block = this.lastBlock;
        }
        if (kind === RamFlag.ZERO) {
          const fill = r.getByte();
          this.lastBlock = block;
          this.sink.zeroPage?.(block, addr, fill, named);
        } else if (kind === RamFlag.PAGE) {
          if (this.sink.page) this.sink.page(block, addr, r.getBuffer(this.layout.pageSize), named);
          // Nobody wants the bytes: skipping them makes no view object per page.
          else r.skip(this.layout.pageSize);
          this.lastBlock = block;
        } else if (kind === RamFlag.XBZRLE) {
          const encodingAt = r.offset;
          const encoding = r.getByte();
          if (encoding !== XBZRLE_ENCODING) {
            throw new StreamFormatError(`XBZRLE page has encoding 0x${encoding.toString(16)}, expected 0x01`, { offset: encodingAt, path: '' });
          }
          const delta = r.getBuffer(this.boundedLength(r, r.getBe16(), this.layout.pageSize, 'XBZRLE'));
          this.lastBlock = block;
          this.sink.xbzrlePage?.(block, addr, delta, named);
        } else {
          const deflated = r.getBuffer(this.boundedLength(r, r.getBe32(), compressBound(this.layout.pageSize), 'compressed'));
          this.lastBlock = block;
          this.sink.compressedPage?.(block, addr, deflated, named);
        }
      } else {
        throw new StreamFormatError(`unsupported RAM record flags 0x${flags.toString(16)}${describeFlags(flags)}`, { offset: start, path: '' });
      }
    }
  }

  /**
   * Consumes the CONTINUE page and zero-page records that no sink callback wants, looking only at their
   * flags: they are the bulk of a RAM section, and `vmstate analyze` reads them cold, where a loop
   * without a call per record is what keeps it at its target. Contract: it consumes exactly the records
   * step() would consume without calling the sink, and leaves anything else (and a record cut by the
   * window's end) to step(); test/ram/records.test.ts checks it with and without listeners.
   */
  private skipUnheard(r: ByteReader): void {
    const b = r.bytes;
    const end = b.length;
    const ps = this.layout.pageSize;
    // Flag bits above the word's last byte (page sizes above 256 bytes have some).
    const highFlags = this.flagMask >>> 8;
    const zeros = this.sink.zeroPage === undefined;
    const pages = this.sink.page === undefined;
    let p = r.pos;
    // The first two tests keep offsets that getBe64Number would reject (2^53 and above) for step() to report.
    while (p + 8 <= end && b[p] === 0 && b[p + 1] < 0x20 && (b[p + 6] & highFlags) === 0) {
      const flags = b[p + 7];
      if (zeros && flags === (RamFlag.ZERO | RamFlag.CONTINUE) && p + 9 <= end) p += 9;
      else if (pages && flags === (RamFlag.PAGE | RamFlag.CONTINUE) && p + 8 + ps <= end) p += 8 + ps;
      else break;
    }
    r.pos = p;
  }

  /**
   * The length of the next record as far as its first bytes tell, without reading it: its word, then the
   * block name's length, then the payload's (at most maxRecord; step() reports a longer one).
   */
  private nextRecordLength(r: ByteReader): number {
    const b = r.bytes;
    const p = r.pos;
    const have = b.length - p;
    if (have < 8) return 8;
    const at = (offset: number, size: 2 | 4) => new DataView(b.buffer, b.byteOffset + p + offset, size);
    const word = at(0, 4).getUint32(0) * 2 ** 32 + at(4, 4).getUint32(0);
    const flags = word % (this.flagMask + 1);
    const kind = flags & ~RamFlag.CONTINUE;
    if (kind !== RamFlag.ZERO && kind !== RamFlag.PAGE && kind !== RamFlag.XBZRLE && kind !== RamFlag.COMPRESS_PAGE) return 8;
    let n = 8;
    if ((flags & RamFlag.CONTINUE) === 0) {
      if (have < n + 1) return n + 1;
      n += 1 + b[p + n];
    }
    if (kind === RamFlag.ZERO) return n + 1;
    if (kind === RamFlag.PAGE) return n + this.layout.pageSize;
    const header = kind === RamFlag.XBZRLE ? 3 : 4;
    if (have < n + header) return n + header;
    const payload = kind === RamFlag.XBZRLE ? at(n + 1, 2).getUint16(0) : at(n, 4).getUint32(0);
    return Math.min(n + header + payload, this.maxRecord);
  }

  /** A payload length just read, checked against the most QEMU sends. */
  private boundedLength(r: ByteReader, length: number, max: number, what: string): number {
    if (length > max) throw new StreamFormatError(`${what} page of ${length} bytes is longer than ${max}`, { offset: r.offset, path: '' });
    return length;
  }

  private readBlockList(r: ByteReader, total: number, start: number): void {
    this.sink.memSize?.(total);
    const blocks: RamBlockInfo[] = [];
    let sum = 0;
    while (sum < total) {
      const info = this.readBlockEntry(r, blocks.length, start);
      blocks.push(info);
      sum += info.usedLength;
    }
    this.endBlockList(total, sum, blocks, start);
  }

  /** True if the window holds the whole block list after a MEM_SIZE word: a dry run that reports nothing. */
  private blockListIsIn(r: ByteReader, total: number, start: number): boolean {
    const probe = new ByteReader(r.bytes, r.base, r.pos, false);
    try {
      for (let sum = 0, count = 0; sum < total; count++) sum += this.readBlockEntry(probe, count, start, false).usedLength;
      return true;
    } catch (e) {
      // A list that is wrong in another way is in as far as it goes: the real read reports it.
      return !(e instanceof StreamTruncatedError);
    }
  }

  private readBlockEntry(r: ByteReader, count: number, start: number, report = true): RamBlockInfo {
    if (count >= MAX_RAM_BLOCKS) {
      throw new StreamFormatError(`RAM block list names more than ${MAX_RAM_BLOCKS} blocks`, { offset: start, path: '' });
    }
    const name = r.getCountedString();
    const usedLength = r.getBe64Number();
    let pageSize: number | undefined;
    const huge = this.layout.hugePageSizes;
    if (huge !== undefined && huge.length > 0) {
      r.need(8);
      const next = new DataView(r.bytes.buffer, r.bytes.byteOffset + r.pos, 8);
      const value = next.getUint32(0) * 2 ** 32 + next.getUint32(4);
      if (huge.includes(value)) pageSize = r.getBe64Number();
    }
    const guestAddress = this.layout.ignoreShared ? r.getBe64Number() : undefined;
    const info: RamBlockInfo = { name, usedLength, ...(pageSize !== undefined && { pageSize }), ...(guestAddress !== undefined && { guestAddress }) };
    if (report) this.sink.block?.(info);
    return info;
  }

  private endBlockList(total: number, sum: number, blocks: readonly RamBlockInfo[], start: number): void {
    if (sum !== total) {
      throw new StreamFormatError(`RAM block lengths add up to ${sum}, but the block list announced ${total}`, { offset: start, path: '' });
    }
    this.sink.blockList?.(total, blocks);
  }

  /**
   * Reads mapped-ram block entries with their headers; false when the stream jumps past a block's pages
   * (`skip` says where to), true once the list is whole.
   */
  private readMappedBlock(r: ByteReader): boolean {
    const list = this.listing as NonNullable<RamDecoder['listing']>;
    while (list.sum < list.total) {
      if (!r.final && r.remaining < 1 + 255 + 16 + MAPPED_REGION_BYTES) {
        this.need = 1 + 255 + 16 + MAPPED_REGION_BYTES;
        return false;
      }
      const info = this.readBlockEntry(r, list.blocks.length, list.start);
      const at = r.offset;
      const region: MappedRegion = { version: r.getBe32(), pageSize: r.getBe64Number(), bitmapOffset: r.getBe64Number(), pagesOffset: r.getBe64Number() };
      const bad = (why: string): never => {
        throw new StreamFormatError(`mapped-ram block "${info.name}": ${why}`, { offset: at, path: '' });
      };
      if (region.version !== MAPPED_REGION_VERSION) bad(`header version ${region.version} is not ${MAPPED_REGION_VERSION}`);
      if (region.pageSize !== this.layout.pageSize) bad(`page size ${region.pageSize} is not the stream's ${this.layout.pageSize}`);
      // The stream only goes forward: the bitmap lies after the header, the pages after the bitmap.
      if (region.bitmapOffset < r.offset || region.pagesOffset < region.bitmapOffset + Math.ceil(info.usedLength / region.pageSize / 64) * 8) {
        bad(`bitmap at ${region.bitmapOffset} and pages at ${region.pagesOffset} do not follow the header`);
      }
      this.sink.mappedRegion?.(info, region);
      list.blocks.push(info);
      list.sum += info.usedLength;
      this.skip = { to: region.pagesOffset + info.usedLength, bytes: this.sink.skipped?.bind(this.sink) };
      this.need = this.maxRecord;
      return false;
    }
    this.listing = null;
    this.endBlockList(list.total, list.sum, list.blocks, list.start);
    return true;
  }
}

function describeFlags(flags: number): string {
  const names = FLAG_NAMES.filter(([bit]) => flags & bit).map(([, n]) => n);
  return names.length ? ` (${names.join(', ')} records are not supported)` : '';
}

/** Writes RAM records; the mirror of RamDecoder (a sink of it: decoding into an encoder writes the bytes again). */
export class RamEncoder {
  constructor(
    private readonly layout: RamLayout,
    private readonly w: ByteWriter,
  ) {}

  /** A whole block list (the word, then every entry). */
  writeBlockList(total: number, blocks: readonly RamBlockInfo[]): void {
    this.memSize(total);
    for (const b of blocks) this.block(b);
  }

  memSize(total: number): void {
    this.w.putBe64Number(total + RamFlag.MEM_SIZE);
  }

  block(b: RamBlockInfo): void {
    this.w.putCountedString(b.name);
    this.w.putBe64Number(b.usedLength);
    if (b.pageSize !== undefined) this.w.putBe64Number(b.pageSize);
    if (this.layout.ignoreShared) this.w.putBe64Number(b.guestAddress ?? 0);
  }

  mappedRegion(_info: RamBlockInfo, region: MappedRegion): void {
    this.w.putBe32(region.version);
    this.w.putBe64Number(region.pageSize);
    this.w.putBe64Number(region.bitmapOffset);
    this.w.putBe64Number(region.pagesOffset);
  }

  /** Bytes written as they are (a mapped-ram block's bitmap and pages). */
  skipped(chunk: Uint8Array): void {
    this.w.putBuffer(chunk);
  }

  zeroPage(block: string, offset: number, fill: number, named: boolean): void {
    this.pageHead(RamFlag.ZERO, block, offset, named);
    this.w.putByte(fill);
  }

  page(block: string, offset: number, data: Uint8Array, named: boolean): void {
    this.pageHead(RamFlag.PAGE, block, offset, named);
    this.w.putBuffer(data);
  }

  xbzrlePage(block: string, offset: number, delta: Uint8Array, named: boolean): void {
    this.pageHead(RamFlag.XBZRLE, block, offset, named);
    this.w.putByte(XBZRLE_ENCODING);
    this.w.putBe16(delta.length);
    this.w.putBuffer(delta);
  }

  compressedPage(block: string, offset: number, deflated: Uint8Array, named: boolean): void {
    this.pageHead(RamFlag.COMPRESS_PAGE, block, offset, named);
    this.w.putBe32(deflated.length);
    this.w.putBuffer(deflated);
  }

  multifdFlush(): void {
    this.w.putBe64Number(RamFlag.MULTIFD_FLUSH);
  }

  private pageHead(kind: number, block: string, offset: number, named: boolean): void {
    this.w.putBe64Number(offset + kind + (named ? 0 : RamFlag.CONTINUE));
    if (named) this.w.putCountedString(block);
  }

  eos(): void {
    this.w.putBe64Number(RamFlag.EOS);
  }
}
