/**
 * Finding the bytes that are not zero in device state, which is nearly all zeros (PCI config space, VGA
 * memory, register files). A CLI run is over before the JIT compiles a byte loop, so long ranges are
 * scanned natively instead: decoded as UTF-16LE, every 2 bytes become one code unit (the BOM is kept and a
 * lone surrogate or a trailing odd byte becomes one U+FFFD, so positions hold), and a regular expression
 * finds the runs of code units that are not zero.
 */

const UTF16 = new TextDecoder('utf-16le', { ignoreBOM: true });

/** Below this many bytes a plain loop costs less than a decoder call. */
const NATIVE_SCAN_MIN = 256;

/**
 * Calls `visit(from, to)` for ranges of bytes[start, end) that together hold every byte that is not zero,
 * in order and without overlap. A range may also hold zero bytes at its edges.
 */
export function forEachNonZeroRun(bytes: Uint8Array, start: number, end: number, visit: (from: number, to: number) => void): void {
  if (end - start < NATIVE_SCAN_MIN) {
    let i = start;
    while (i < end) {
      if (bytes[i] === 0) {
        i++;
        continue;
      }
      let j = i + 1;
      while (j < end && bytes[j] !== 0) j++;
      visit(i, j);
      i = j;
    }
    return;
  }
  const units = UTF16.decode(bytes.subarray(start, end));
  const runs = /[^\0]+/g;
  for (let m = runs.exec(units); m !== null; m = runs.exec(units)) {
    const from = start + 2 * m.index;
    visit(from, Math.min(end, from + 2 * m[0].length));
  }
}
