/**
 * A guest that dirties RAM at a set rate, so that precopy can be measured where it is hard: it adds 1 to
 * the first word of each page of a window at the top of the first RAM block, one page after another and
 * round again, `pagesPerSecond` pages a second. It is the same workload as the multiboot kernel
 * bench/migration.ts runs in QEMU (test/support/dirtying-kernel.ts), so both guests dirty memory alike.
 *
 * The rate holds on average: each tick writes the pages due since the last one, as a guest's vCPU keeps
 * writing while the migration or a QMP command (a RAM hash) has the event loop; of a stall longer than
 * CATCH_UP_MS only that much is made up for, so a process that was not scheduled ends in no long burst.
 */
import { UsageError } from '../errors.js';
import type { GuestRam } from '../ram/index.js';

/** The most pages the window spans: 256 MiB of 4 KiB pages. */
const MAX_WINDOW_PAGES = 65536;
/** The longest stretch of time whose pages a tick still writes. */
const CATCH_UP_MS = 1000;
/** The highest rate accepted. */
export const MAX_DIRTY_RATE = 1_000_000;

export class DirtyingWorkload {
  /** The window's first guest-physical address. */
  readonly base: number;
  /** How many pages the window spans: a quarter of the first RAM block, at most MAX_WINDOW_PAGES. */
  readonly pages: number;
  private next = 0;
  private written = 0;
  private due = 0;
  private last: number | null = null;

  constructor(
    private readonly ram: GuestRam,
    readonly pagesPerSecond: number,
  ) {
    if (!Number.isFinite(pagesPerSecond) || pagesPerSecond <= 0 || pagesPerSecond > MAX_DIRTY_RATE) {
      throw new UsageError(`dirty rate ${pagesPerSecond}: expected pages per second, more than 0 and up to ${MAX_DIRTY_RATE}`);
    }
    const block = ram.blocks[0];
    if (!block) throw new UsageError('dirtying workload: the machine has no RAM');
    const blockPages = block.data.length / ram.pageSize;
    this.pages = Math.max(1, Math.min(MAX_WINDOW_PAGES, Math.floor(blockPages / 4)));
    this.base = block.base + (blockPages - this.pages) * ram.pageSize;
  }

  /** Pages written so far (the sum of the window's counters, if nothing else writes there). */
  get pagesWritten(): number {
    return this.written;
  }

  /** Writes the pages due at `now` (ms); the first call after pause() only starts the clock. */
  tick(now: number): void {
    if (this.last === null) {
      this.last = now;
      return;
    }
    this.due = Math.min(this.due + ((now - this.last) * this.pagesPerSecond) / 1000, (CATCH_UP_MS * this.pagesPerSecond) / 1000);
    this.last = now;
    const ps = this.ram.pageSize;
    for (; this.due >= 1; this.due--) {
      const addr = this.base + this.next * ps;
      this.ram.writeU32(addr, (this.ram.readU32(addr) + 1) >>> 0);
      this.next = (this.next + 1) % this.pages;
      this.written++;
    }
  }

  /** Stops the clock: time paused is not owed pages. */
  pause(): void {
    this.last = null;
    this.due = 0;
  }
}
