/**
 * Finding the bytes that are not zero in device state, which is nearly all zeros (PCI config space,
 * register files, command slots), for `vmstate analyze`: a CLI run is over before the JIT compiles a
 * byte loop, so stretches of zeros are crossed natively instead, by comparing blocks with a zero buffer
 * (Node's Buffer) in steps that double while they hold nothing; a block that holds something is looked
 * at byte by byte. Without Buffer (in a browser) the byte loop does it all.
 *
 * Contract: visit() gets ranges that together hold every byte that is not zero, in order and without
 * overlap (a range may hold zeros too); test/stream/non-zero-runs.test.ts checks both ways against it.
 */

/** The part of Node's Buffer the block scan uses: `zero.compare(bytes, from, to, 0, to - from)`. */
export interface ZeroBuffer {
  readonly length: number;
  compare(target: Uint8Array, targetStart: number, targetEnd: number, sourceStart: number, sourceEnd: number): number;
}

/** Below this many bytes the byte loop costs less than a native call. */
const NATIVE_SCAN_MIN = 256;
/** The block scan's unit; a stretch of zero blocks is crossed in steps that double up to MAX_STEP. */
const BLOCK = 1024;
const MAX_STEP = 64 * 1024;
const NODE_ZERO: ZeroBuffer | null = (globalThis as { Buffer?: { alloc(n: number): ZeroBuffer } }).Buffer?.alloc(MAX_STEP) ?? null;

/** What visit() gets: a range, and whether to go on (false stops the scan). */
type Visit = (from: number, to: number) => boolean | void;

/**
 * Calls `visit(from, to)` for ranges of bytes[start, end) that together hold every byte that is not zero,
 * in order and without overlap. The scan stops when `visit` returns false.
 */
export function forEachNonZeroRun(bytes: Uint8Array, start: number, end: number, visit: Visit): void {
  if (NODE_ZERO === null || end - start < NATIVE_SCAN_MIN) scanBytes(bytes, start, end, visit);
  else scanBlocks(bytes, start, end, visit, NODE_ZERO);
}

/** The scan with a zero buffer (at least MAX_STEP bytes): zero blocks skipped natively, the rest byte by byte. */
export function scanBlocks(bytes: Uint8Array, start: number, end: number, visit: Visit, zero: ZeroBuffer): void {
  let step = BLOCK;
  for (let p = start; p < end; ) {
    const q = Math.min(end, p + step);
    if (zero.compare(bytes, p, q, 0, q - p) === 0) {
      p = q;
      step = Math.min(MAX_STEP, step * 2);
    } else if (step > BLOCK) {
      // Something in a long step: look again block by block.
      step = BLOCK;
    } else {
      if (!scanBytes(bytes, p, q, visit)) return;
      p = q;
    }
  }
}

/** The runs of bytes that are not zero in bytes[from, to), one by one; false if visit() stopped the scan. */
export function scanBytes(bytes: Uint8Array, from: number, to: number, visit: Visit): boolean {
  for (let i = from; i < to; ) {
    if (bytes[i] === 0) {
      i++;
      continue;
    }
    let j = i + 1;
    while (j < to && bytes[j] !== 0) j++;
    if (visit(i, j) === false) return false;
    i = j;
  }
  return true;
}
