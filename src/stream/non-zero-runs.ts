/**
 * Finding the bytes that are not zero in device state, which is nearly all zeros (PCI config space, VGA
 * memory, register files), and in dirty bitmaps, which are nearly all zeros after the first pass. A CLI
 * run is over before the JIT compiles a byte loop, and a bitmap scanned a few times per migration never
 * gets compiled either, so long ranges are scanned natively instead: decoded as UTF-16LE, every 2 bytes
 * become one code unit (the BOM is kept and a lone surrogate or a trailing odd byte becomes one U+FFFD,
 * so positions hold), and a regular expression finds the runs of code units that are not zero.
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

/**
 * Calls `visit(from, to)` for ranges of bytes[start, end) that together hold every byte that is not zero,
 * in order and without overlap. A range may also hold zero bytes at its edges. The scan stops when
 * `visit` returns false.
 */
export function forEachNonZeroRun(bytes: Uint8Array, start: number, end: number, visit: (from: number, to: number) => boolean | void): void {
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
    return;
  }
  for (let base = start, size = FIRST_WINDOW; base < end; base += size, size = Math.min(LAST_WINDOW, size * 4)) {
    const top = Math.min(end, base + size);
    const units = UTF16.decode(bytes.subarray(base, top));
    const runs = /[^\0]+/g;
    for (let m = runs.exec(units); m !== null; m = runs.exec(units)) {
      const from = base + 2 * m.index;
      if (visit(from, Math.min(top, from + 2 * m[0].length)) === false) return;
    }
  }
}
