/**
 * Watching a live stream go by, for the proxy: a PullSource fed chunk by chunk as they arrive (the tap),
 * and a decoder that reads the setup and RAM phase through it, counting what it sees, up to the first
 * device section. That section starts the device phase, which can only be decoded once the VMDESCRIPTION
 * at the stream's end has arrived (see analyze/device-phase.ts).
 */
import { decodeStream, ramLayoutOf } from '../analyze/index.js';
import type { ChunkedSource, PullSource } from '../stream/index.js';

/** Chunks pushed in as they arrive, read as they are (no copy) by one ChunkedSource. */
export class StreamTap implements PullSource {
  private readonly queue: Uint8Array[] = [];
  private ended = false;
  private wake: (() => void) | null = null;

  /** `beforeRead` runs each time the reader wants more: it has consumed what it could of the rest. */
  constructor(private readonly beforeRead: () => void = () => {}) {}

  push(chunk: Uint8Array): void {
    this.queue.push(chunk);
    this.notify();
  }

  end(): void {
    this.ended = true;
    this.notify();
  }

  async readChunk(): Promise<Uint8Array | null> {
    this.beforeRead();
    while (this.queue.length === 0 && !this.ended) await new Promise<void>((resolve) => (this.wake = resolve));
    return this.queue.shift() ?? null;
  }

  async readInto(target: Uint8Array): Promise<number> {
    const chunk = await this.readChunk();
    if (chunk === null) return 0;
    const n = Math.min(chunk.length, target.length);
    target.set(chunk.subarray(0, n));
    if (n < chunk.length) this.queue.unshift(chunk.subarray(n));
    return n;
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }
}

/** What went by so far. */
export interface LiveStreamStats {
  /** RAM pages sent (with data or as zero pages), and of those, pages sent again (dirtied since). */
  pages: number;
  resentPages: number;
  /** Passes over guest RAM: a new one starts when a page comes at or before the one sent before it. */
  passes: number;
  /** Sections (START, PART, END, FULL) that went by whole. */
  sections: number;
}

/** Pages of one bitmap piece: 2^18 pages, 1 GiB of 4 KiB pages in 32 KiB of bits. */
const PIECE_PAGES = 1 << 18;

/** Which pages of each RAM block were sent, in pieces allocated as pages arrive (never by a block's claimed size). */
class SentPages {
  private readonly pieces = new Map<number, Uint8Array>();

  /** Marks the page; true if it was sent before. */
  mark(block: number, page: number): boolean {
    // A number, not a string, per page: block, then piece. Past 2^41 pages a block shares keys with the
    // next, which only miscounts pages sent again.
    const key = block * 2 ** 23 + Math.floor(page / PIECE_PAGES);
    let bits = this.pieces.get(key);
    if (!bits) this.pieces.set(key, (bits = new Uint8Array(PIECE_PAGES / 8)));
    const i = page % PIECE_PAGES;
    const seen = (bits[i >> 3] & (1 << (i & 7))) !== 0;
    bits[i >> 3] |= 1 << (i & 7);
    return seen;
  }
}

/**
 * Decodes `src` until its first device (FULL) section, counting into `stats` and calling `onSection` after
 * each section. Resolves to the offset of that section's header, or null if the stream ended without one.
 */
export async function watchUntilDevices(src: ChunkedSource, stats: LiveStreamStats, onSection: () => void = () => {}): Promise<number | null> {
  let pageSize = 4096;
  const blocks = new Map<string, number>();
  const sent = new SentPages();
  let last = -1;
  const page = (block: string, offset: number) => {
    let b = blocks.get(block);
    if (b === undefined) blocks.set(block, (b = blocks.size));
    // Block, then page: a block of over 2^40 pages would only miscount passes.
    const p = Math.floor(offset / pageSize);
    const position = b * 2 ** 40 + p;
    if (position <= last || stats.passes === 0) stats.passes++;
    last = position;
    stats.pages++;
    if (sent.mark(b, p)) stats.resentPages++;
  };
  let devicesAt: number | null = null;
  try {
    await decodeStream(src, null, {
      configuration: (c) => (pageSize = ramLayoutOf(c, { pageSize }).pageSize),
      sectionStart(ctx) {
        if (ctx.header.kind === 'full') devicesAt = ctx.header.offset;
      },
      ram: { page, zeroPage: page, xbzrlePage: page, compressedPage: page },
      sectionDone() {
        stats.sections++;
        onSection();
      },
    });
    return null;
  } catch (e) {
    // Without the VMDESCRIPTION the decoder stops at the first device section it is handed: as wanted.
    if (devicesAt !== null) return devicesAt;
    throw e;
  }
}
