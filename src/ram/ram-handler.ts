/**
 * Guest RAM as QEMU's iterative "ram" handler saves it (migration/ram.c, section version 4): the block
 * list in the START section, pages in PART sections (all-zero pages as ZERO records), and whatever is
 * left in the END section; each body ends with EOS. Loading writes pages into the same named blocks.
 */
import { LoadError } from '../errors.js';
import type { IterativeHandler, SectionBodyDecoder } from '../savevm/index.js';
import type { ByteWriter } from '../stream/index.js';
import { RamDecoder, RamEncoder, type RamLayout } from './records.js';

/** A named RAM block (QEMU's RAMBlock idstr and its used length). */
export interface RamBlock {
  readonly name: string;
  readonly data: Uint8Array;
}

/** Options for RamHandler. */
export interface RamHandlerOptions {
  /** TARGET_PAGE_SIZE. Defaults to 4096. */
  readonly pageSize?: number;
  /** Pages sent per PART section. Defaults to 16384 (64 MiB of 4 KiB pages). */
  readonly pagesPerIteration?: number;
}

/** True if every byte of `page` is zero. */
export function isZeroPage(page: Uint8Array): boolean {
  if ((page.byteOffset & 3) === 0 && (page.length & 31) === 0) {
    return zeroWords(new Int32Array(page.buffer, page.byteOffset, page.length >> 2), 0, page.length >> 2);
  }
  for (let i = 0; i < page.length; i++) if (page[i] !== 0) return false;
  return true;
}

/** True if words[start .. start+count) are all zero; count is a multiple of 8. */
function zeroWords(w: Int32Array, start: number, count: number): boolean {
  // Eight words per test: the loop runs at memory speed, several GB/s, with no allocation.
  for (let i = start, end = start + count; i < end; i += 8) {
    if ((w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7]) !== 0) return false;
  }
  return true;
}

export class RamHandler implements IterativeHandler {
  readonly version = 4;
  private readonly layout: RamLayout;
  private readonly perIteration: number;
  /** Next page to send: block index and page offset; lastBlock decides CONTINUE. */
  private blockIndex = 0;
  private offset = 0;
  private lastBlock: string | null = null;
  private readonly decoder: SectionBodyDecoder;
  /** Each block as 32-bit words (null when unaligned), built once for the zero-page test. */
  private readonly words: (Int32Array | null)[];

  constructor(
    readonly blocks: readonly RamBlock[],
    options: RamHandlerOptions = {},
  ) {
    this.layout = { pageSize: options.pageSize ?? 4096 };
    this.perIteration = options.pagesPerIteration ?? 16384;
    for (const b of blocks) {
      if (b.data.length % this.layout.pageSize !== 0) throw new RangeError(`RAM block ${b.name} is not a whole number of pages`);
    }
    this.decoder = this.makeDecoder();
    this.words = blocks.map((b) => ((b.data.byteOffset & 3) === 0 ? new Int32Array(b.data.buffer, b.data.byteOffset, b.data.length >> 2) : null));
  }

  saveSetup(w: ByteWriter): void {
    this.blockIndex = 0;
    this.offset = 0;
    this.lastBlock = null;
    const enc = new RamEncoder(this.layout, w);
    enc.blockList(
      this.blocks.reduce((n, b) => n + b.data.length, 0),
      this.blocks.map((b) => ({ name: b.name, usedLength: b.data.length })),
    );
    enc.eos();
  }

  saveIterate(w: ByteWriter): boolean {
    const done = this.sendPages(w, this.perIteration);
    new RamEncoder(this.layout, w).eos();
    return done;
  }

  saveComplete(w: ByteWriter): void {
    this.sendPages(w, Infinity);
    new RamEncoder(this.layout, w).eos();
  }

  /** Sends up to `max` pages; true when every page has been sent. */
  private sendPages(w: ByteWriter, max: number): boolean {
    const enc = new RamEncoder(this.layout, w);
    const ps = this.layout.pageSize;
    let sent = 0;
    while (this.blockIndex < this.blocks.length && sent < max) {
      const b = this.blocks[this.blockIndex];
      if (this.offset >= b.data.length) {
        this.blockIndex++;
        this.offset = 0;
        continue;
      }
      const named = this.lastBlock !== b.name;
      const words = this.words[this.blockIndex];
      const zero = words ? zeroWords(words, this.offset >> 2, ps >> 2) : isZeroPage(b.data.subarray(this.offset, this.offset + ps));
      if (zero) enc.zeroPage(b.name, this.offset, 0, named);
      else enc.page(b.name, this.offset, b.data.subarray(this.offset, this.offset + ps), named);
      this.lastBlock = b.name;
      this.offset += ps;
      sent++;
    }
    while (this.blockIndex < this.blocks.length && this.offset >= this.blocks[this.blockIndex].data.length) {
      this.blockIndex++;
      this.offset = 0;
    }
    return this.blockIndex >= this.blocks.length;
  }

  loadSection(): SectionBodyDecoder {
    return this.decoder;
  }

  /** One decoder for all sections, so CONTINUE records resolve across them. */
  private makeDecoder(): SectionBodyDecoder {
    const byName = new Map(this.blocks.map((b) => [b.name, b]));
    const ps = (): number => this.layout.pageSize;
    const target = (name: string, offset: number): Uint8Array => {
      const b = byName.get(name);
      if (!b) throw new LoadError(`unknown RAM block "${name}"`, 'ram');
      if (offset + ps() > b.data.length) throw new LoadError(`RAM page at 0x${offset.toString(16)} lies outside block "${name}" (${b.data.length} bytes)`, 'ram');
      return b.data;
    };
    return new RamDecoder(this.layout, {
      blockList: (_total, list) => {
        for (const info of list) {
          const b = byName.get(info.name);
          if (!b) throw new LoadError(`unknown RAM block "${info.name}"`, 'ram');
          if (b.data.length !== info.usedLength) {
            throw new LoadError(`RAM block "${info.name}" has ${info.usedLength} bytes in the stream but ${b.data.length} here`, 'ram');
          }
        }
      },
      zeroPage: (name, offset, fill) => target(name, offset).fill(fill, offset, offset + ps()),
      page: (name, offset, data) => target(name, offset).set(data, offset),
    });
  }
}
