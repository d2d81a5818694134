/**
 * Guest RAM as QEMU's iterative "ram" handler saves it (migration/ram.c, section version 4): the block
 * list in the START section, pages in PART sections (all-zero pages as ZERO records), and whatever is
 * left in the END section; each body ends with EOS. Loading writes pages into the same named blocks.
 *
 * What to send is a bitmap per block. Setup marks every page (the first pass sends all of RAM); for live
 * migration, syncDirty() moves the pages the guest wrote since (the blocks' dirty bitmaps) into it, as
 * QEMU's migration_bitmap_sync does after each pass, and completion syncs once more with the guest
 * stopped.
 */
import { LoadError, UsageError } from '../errors.js';
import type { IterativeHandler, SectionBodyDecoder } from '../savevm/index.js';
import { forEachNonZeroRun, type ByteWriter } from '../stream/index.js';
import { inflatePage } from './compressed-page.js';
import { RamDecoder, RamEncoder, type RamLayout } from './records.js';
import { applyXbzrle } from './xbzrle.js';

/** A named RAM block (QEMU's RAMBlock idstr and its used length). */
export interface RamBlock {
  readonly name: string;
  readonly data: Uint8Array;
  /** One bit per page the guest wrote since the last sync; absent for RAM nobody tracks. */
  readonly dirty?: Uint8Array;
  /**
   * One bit per page ever written since the block was allocated zeroed: a clear bit promises the page is
   * all zero, so saving sends it as ZERO without reading it and loading a ZERO record leaves it alone.
   * Reading or writing a page of fresh memory costs a page fault (about 12 us each here, in a virtual
   * machine: 1 GiB of untouched RAM took 2-4 s to scan); QEMU avoids the same cost on load by testing
   * before it clears. Absent: every page is read.
   */
  readonly written?: Uint8Array;
}

/** What has been sent, in query-migrate's terms. */
export interface RamStats {
  /** Pages sent as ZERO records ("duplicate"). */
  zeroPages: number;
  /** Pages sent whole ("normal"). */
  normalPages: number;
  /** Dirty-bitmap syncs so far ("dirty-sync-count"). */
  syncs: number;
  /** Pages the guest dirtied between the last two syncs, per second ("dirty-pages-rate"). */
  dirtyPagesRate: number;
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
  if ((page.byteOffset & 3) === 0 && (page.length & 3) === 0) {
    return zeroWords(new Int32Array(page.buffer, page.byteOffset, page.length >> 2), 0, page.length >> 2);
  }
  for (let i = 0; i < page.length; i++) if (page[i] !== 0) return false;
  return true;
}

/** True if words[start .. start+count) are all zero. */
function zeroWords(w: Int32Array, start: number, count: number): boolean {
  for (let i = start, end = start + count; i < end; i++) if (w[i] !== 0) return false;
  return true;
}

export class RamHandler implements IterativeHandler {
  readonly version = 4;
  readonly stats: RamStats = { zeroPages: 0, normalPages: 0, syncs: 0, dirtyPagesRate: 0 };
  /** When the dirty bitmap was last synced (or setup ran), in ms. */
  private lastSync = 0;
  private readonly layout: RamLayout;
  private readonly perIteration: number;
  /** Pages still to send in this pass, one bit per page per block, and how many bits are set. */
  private readonly toSend: Uint8Array[];
  /** The same bitmaps as 32-bit words (their buffers are padded to whole words), to skip 32 pages at once. */
  private readonly toSendWords: Int32Array[];
  private pending = 0;
  /** Where the current pass has got to; lastBlock decides CONTINUE. */
  private blockIndex = 0;
  private page = 0;
  private lastBlock: string | null = null;
  private decoder: SectionBodyDecoder;
  /**
   * While a load may still be rejected: per block, each page it overwrote as it was before (null for a
   * page that was all zero), so endLoad(false) can put them back.
   */
  private undo: { readonly kept: Uint8Array; readonly pages: number[]; readonly before: (Uint8Array | null)[] }[] | null = null;
  /** Each block as 32-bit words (null when unaligned), built once for the zero-page test. */
  private readonly words: (Int32Array | null)[];

  constructor(
    readonly blocks: readonly RamBlock[],
    options: RamHandlerOptions = {},
  ) {
    this.layout = { pageSize: options.pageSize ?? 4096 };
    this.perIteration = options.pagesPerIteration ?? 16384;
    for (const b of blocks) {
      if (b.data.length % this.layout.pageSize !== 0) throw new UsageError(`RAM block ${b.name} is not a whole number of pages`, { block: b.name });
    }
    this.decoder = this.makeDecoder();
    this.words = blocks.map((b) => ((b.data.byteOffset & 3) === 0 ? new Int32Array(b.data.buffer, b.data.byteOffset, b.data.length >> 2) : null));
    this.toSend = blocks.map((b) => {
      const pages = b.data.length / this.layout.pageSize;
      return new Uint8Array(new ArrayBuffer(Math.ceil(pages / 32) * 4), 0, Math.ceil(pages / 8));
    });
    this.toSendWords = this.toSend.map((bits) => new Int32Array(bits.buffer));
  }

  /** Bytes of RAM still to send before the pass ends (QEMU's "remaining"). */
  get remainingBytes(): number {
    return this.pending * this.layout.pageSize;
  }

  /** Total bytes of RAM. */
  get totalBytes(): number {
    return this.blocks.reduce((n, b) => n + b.data.length, 0);
  }

  saveSetup(w: ByteWriter): void {
    this.blockIndex = 0;
    this.page = 0;
    this.lastBlock = null;
    this.stats.zeroPages = this.stats.normalPages = this.stats.syncs = this.stats.dirtyPagesRate = 0;
    this.lastSync = performance.now();
    this.pending = 0;
    const ps = this.layout.pageSize;
    this.blocks.forEach((b, i) => {
      const pages = b.data.length / ps;
      const bits = this.toSend[i];
      bits.fill(0xff);
      if (pages % 8) bits[bits.length - 1] = (1 << (pages % 8)) - 1;
      this.pending += pages;
      b.dirty?.fill(0); // tracking starts now: everything is being sent anyway
    });
    const enc = new RamEncoder(this.layout, w);
    enc.writeBlockList(
      this.totalBytes,
      this.blocks.map((b) => ({ name: b.name, usedLength: b.data.length })),
    );
    enc.eos();
  }

  saveIterate(w: ByteWriter): boolean {
    this.sendPages(w, this.perIteration);
    new RamEncoder(this.layout, w).eos();
    return this.pending === 0;
  }

  saveComplete(w: ByteWriter): void {
    this.syncDirty(false); // the guest is stopped: keep the rate it dirtied at while it ran
    this.sendPages(w, Infinity);
    new RamEncoder(this.layout, w).eos();
  }

  /**
   * Adds the pages the guest dirtied since the last sync to what is to send, and starts a new pass;
   * `measure` updates dirty-pages-rate from them.
   */
  syncDirty(measure = true): void {
    let dirtied = 0;
    this.blocks.forEach((b, i) => {
      const dirty = b.dirty;
      if (!dirty) return;
      const bits = this.toSend[i];
      for (let k = 0; k < dirty.length; k++) {
        const d = dirty[k];
        if (d === 0) continue;
        dirtied += popcount8(d);
        this.pending += popcount8(d & ~bits[k]);
        bits[k] |= d;
        dirty[k] = 0;
      }
    });
    const now = performance.now();
    if (measure && now > this.lastSync) this.stats.dirtyPagesRate = Math.round((dirtied * 1000) / (now - this.lastSync));
    this.lastSync = now;
    this.stats.syncs++;
    this.blockIndex = 0;
    this.page = 0;
  }

  /** Sends up to `max` pages marked in the bitmaps, from where the pass got to. */
  private sendPages(w: ByteWriter, max: number): void {
    const enc = new RamEncoder(this.layout, w);
    const ps = this.layout.pageSize;
    let sent = 0;
    while (this.blockIndex < this.blocks.length && sent < max && this.pending > 0) {
      const b = this.blocks[this.blockIndex];
      const bits = this.toSend[this.blockIndex];
      const words = this.words[this.blockIndex];
      const pages = b.data.length / ps;
      let p = this.page;
      const bitWords = this.toSendWords[this.blockIndex];
      for (; p < pages && sent < max; p++) {
        if (bitWords[p >> 5] === 0) {
          p |= 31; // none of these 32 pages is to send
          continue;
        }
        if ((bits[p >> 3] & (1 << (p & 7))) === 0) continue;
        bits[p >> 3] &= ~(1 << (p & 7));
        this.pending--;
        const offset = p * ps;
        const named = this.lastBlock !== b.name;
        const zero =
          !mayHoldData(b, p) ||
          (words ? zeroWords(words, offset >> 2, ps >> 2) : isZeroPage(b.data.subarray(offset, offset + ps)));
        if (zero) {
          enc.zeroPage(b.name, offset, 0, named);
          this.stats.zeroPages++;
        } else {
          enc.page(b.name, offset, b.data.subarray(offset, offset + ps), named);
          this.stats.normalPages++;
        }
        this.lastBlock = b.name;
        sent++;
      }
      if (sent >= max && p < pages) {
        this.page = p;
        return;
      }
      this.blockIndex++;
      this.page = 0;
    }
  }

  loadSection(): SectionBodyDecoder {
    return this.decoder;
  }

  /** A load starts: a fresh decoder (no block named yet), and with `undo` an empty undo log. */
  beginLoad(undo = true): void {
    this.decoder = this.makeDecoder();
    this.undo = undo ? this.blocks.map((b) => ({ kept: new Uint8Array(b.data.length / this.layout.pageSize), pages: [], before: [] })) : null;
  }

  /** A load ended: keep what it wrote, or put back every page it overwrote. */
  endLoad(committed: boolean): void {
    const undo = this.undo;
    this.undo = null;
    if (committed || undo === null) return;
    const ps = this.layout.pageSize;
    undo.forEach(({ pages, before }, i) => {
      const data = this.blocks[i].data;
      pages.forEach((page, k) => {
        const was = before[k];
        if (was === null) data.fill(0, page * ps, (page + 1) * ps);
        else data.set(was, page * ps);
      });
    });
  }

  /** Before a load writes the page at `offset` of block `i`: keeps it in the undo log the first time. */
  private keepPage(i: number, offset: number): void {
    const log = this.undo?.[i];
    if (log === undefined) return;
    const ps = this.layout.pageSize;
    const page = offset / ps;
    if (log.kept[page] !== 0) return;
    log.kept[page] = 1;
    // A native scan (a load that fails late has looked at every page of RAM), or none for a page never written.
    const data = this.blocks[i].data;
    let zero = true;
    if (mayHoldData(this.blocks[i], page)) forEachNonZeroRun(data, offset, offset + ps, () => (zero = false));
    log.pages.push(page);
    log.before.push(zero ? null : data.slice(offset, offset + ps));
  }

  /** One decoder for all sections, so CONTINUE records resolve across them. */
  private makeDecoder(): SectionBodyDecoder {
    const byName = new Map(this.blocks.map((b, i) => [b.name, i]));
    const ps = (): number => this.layout.pageSize;
    /** The index of the block holding the page at `offset`. */
    const blockOf = (name: string, offset: number): number => {
      const i = byName.get(name);
      if (i === undefined) throw new LoadError(`unknown RAM block "${name}"`, 'ram');
      const b = this.blocks[i];
      if (offset + ps() > b.data.length) throw new LoadError(`RAM page at 0x${offset.toString(16)} lies outside block "${name}" (${b.data.length} bytes)`, 'ram');
      return i;
    };
    /** Block i's bytes, about to be written at `offset`: the old page kept for undo, the page marked written. */
    const writeAt = (i: number, offset: number): Uint8Array => {
      this.keepPage(i, offset);
      const { data, written } = this.blocks[i];
      if (written) {
        const page = offset / ps();
        written[page >> 3] |= 1 << (page & 7);
      }
      return data;
    };
    const target = (name: string, offset: number): Uint8Array => writeAt(blockOf(name, offset), offset);
    /** A page never written is zero already: clearing it would only fault it in. */
    const zeroPage = (name: string, offset: number, fill: number): void => {
      const i = blockOf(name, offset);
      if (fill === 0 && !mayHoldData(this.blocks[i], offset / ps())) return;
      writeAt(i, offset).fill(fill, offset, offset + ps());
    };
    return new RamDecoder(this.layout, {
      blockList: (_total, list) => {
        for (const info of list) {
          const i = byName.get(info.name);
          const b = i === undefined ? undefined : this.blocks[i];
          if (!b) throw new LoadError(`unknown RAM block "${info.name}"`, 'ram');
          if (b.data.length !== info.usedLength) {
            throw new LoadError(`RAM block "${info.name}" has ${info.usedLength} bytes in the stream but ${b.data.length} here`, 'ram');
          }
        }
      },
      zeroPage,
      page: (name, offset, data) => target(name, offset).set(data, offset),
      xbzrlePage: (name, offset, delta) => applyXbzrle(target(name, offset).subarray(offset, offset + ps()), delta),
      compressedPage: (name, offset, deflated) => inflatePage(deflated, target(name, offset).subarray(offset, offset + ps())),
    });
  }
}

/** False only for a page the block's written bitmap says was never written (all zero since allocation). */
function mayHoldData(b: RamBlock, page: number): boolean {
  return b.written === undefined || (b.written[page >> 3] & (1 << (page & 7))) !== 0;
}

function popcount8(x: number): number {
  x = x - ((x >> 1) & 0x55);
  x = (x & 0x33) + ((x >> 2) & 0x33);
  return (x + (x >> 4)) & 0x0f;
}
