/**
 * Finding the bytes that are not zero in device state, which is nearly all zeros (PCI config space, VGA
 * memory, register files), for the CLI's cold runs. A CLI run is over before the JIT compiles a byte
 * loop, so long ranges are scanned natively instead: decoded as UTF-16LE, every 2 bytes become one code
 * unit (the BOM is kept and a lone surrogate becomes one U+FFFD, so positions hold; an odd last byte is
 * not decoded), and a regular expression finds the runs of code units that are not zero.
 *
 * Each decode makes a string as long as its bytes, garbage that a short CLI run pays for in scavenges.
 * Where Node's Buffer is there, blocks that are all zero are first recognised by a native compare with a
 * zero buffer, and only the others are decoded.
 */

const UTF16 = new TextDecoder('utf-16le', { ignoreBOM: true });

/** Below this many bytes a plain loop costs less than a decoder call. */
const NATIVE_SCAN_MIN = 256;

/**
 * Bytes decoded at a time: the first window is small and each next one four times larger, up to the last
 * size, so a scan that stops early pays for little more than it looked at, and a long one makes few calls.
 * All even, so no code unit straddles two windows.
 */
const FIRST_WINDOW = 4 * 1024;
const LAST_WINDOW = 256 * 1024;

/** The part of Node's Buffer the block scan uses: `zero.compare(bytes, from, to, 0, to - from)`. */
export interface ZeroBuffer {
  readonly length: number;
  compare(target: Uint8Array, targetStart: number, targetEnd: number, sourceStart: number, sourceEnd: number): number;
}

/**
 * The block scan's unit: bytes that hold something are decoded in whole blocks. A stretch of zero blocks
 * is crossed in steps that double up to the zero buffer's size.
 */
const BLOCK = 1024;
const MAX_STEP = 64 * 1024;
const NODE_ZERO: ZeroBuffer | null = (globalThis as { Buffer?: { alloc(n: number): ZeroBuffer } }).Buffer?.alloc(MAX_STEP) ?? null;

/** What visit() gets: a range, and whether to go on (false stops the scan). */
type Visit = (from: number, to: number) => boolean | void;

/**
 * Calls `visit(from, to)` for ranges of bytes[start, end) that together hold every byte that is not zero,
 * in order and without overlap. A range may also hold zero bytes at its edges. The scan stops when
 * `visit` returns false.
 */
export function forEachNonZeroRun(bytes: Uint8Array, start: number, end: number, visit: Visit): void {
  if (end - start < NATIVE_SCAN_MIN) {
    let i = start;
    while (i < end) {
      if (bytes[i] === 0) {
        i++;
        continue;
      }
      let j = i + 1;
      while (j < end && bytes[j] !== 0) j++;
      if (visit(i, j) === false) return;
      i = j;
    }
  } else if (NODE_ZERO !== null) {
    scanBlocks(bytes, start, end, visit, NODE_ZERO);
  } else {
    scanWindows(bytes, start, end, visit);
  }
}

/** The scan without Buffer: every byte decoded, in growing windows. */
export function scanWindows(bytes: Uint8Array, start: number, end: number, visit: Visit): void {
  for (let base = start, size = FIRST_WINDOW; base < end; base += size, size = Math.min(LAST_WINDOW, size * 4)) {
    if (!visitDecoded(bytes, base, Math.min(end, base + size), visit)) return;
  }
}

/** The scan with a zero buffer (at least MAX_STEP bytes): zero blocks skipped natively, the rest decoded. */
export function scanBlocks(bytes: Uint8Array, start: number, end: number, visit: Visit, zero: ZeroBuffer): void {
  let step = BLOCK;
  for (let p = start; p < end; ) {
    let q = Math.min(end, p + step);
    if (zero.compare(bytes, p, q, 0, q - p) === 0) {
      p = q;
      step = Math.min(MAX_STEP, step * 2);
      continue;
    }
    if (step > BLOCK) {
      // Something in a long step: look again block by block.
      step = BLOCK;
      continue;
    }
    // Decode this block and what follows it up to the next zero block, in steps that double while they
    // hold something (dense data is then decoded in few calls), up to a window's size.
    for (let grow = BLOCK; q < end && q - p < LAST_WINDOW; grow = Math.min(MAX_STEP, grow * 2)) {
      const next = Math.min(end, q + grow);
      if (zero.compare(bytes, q, next, 0, next - q) === 0) break;
      q = next;
    }
    if (!visitDecoded(bytes, p, q, visit)) return;
    p = q;
  }
}

/** Decodes bytes[from, to) and visits its runs; false if visit() stopped the scan. */
function visitDecoded(bytes: Uint8Array, from: number, to: number, visit: Visit): boolean {
  // An odd last byte is looked at by hand: after a lone high surrogate the decoder makes one U+FFFD of
  // both, and that byte's position would be lost.
  const even = to - ((to - from) & 1);
  let tail = even < to && bytes[even] !== 0;
  const units = UTF16.decode(bytes.subarray(from, even));
  const runs = /[^\0]+/g;
  for (let m = runs.exec(units); m !== null; ) {
    const at = from + 2 * m.index;
    let end = at + 2 * m[0].length;
    const next = runs.exec(units);
    if (next === null && end === even && tail) {
      end = to;
      tail = false;
    }
    if (visit(at, end) === false) return false;
    m = next;
  }
  return !tail || visit(even, to) !== false;
}
