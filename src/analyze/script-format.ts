/**
 * How analyze-migration.py (QEMU 7.2) prints a leaf value: an integer as `0x` and its unsigned value in
 * hex, two digits per byte, then ` (N)` with the signed value when the field is shown signed and the value
 * is negative; a buffer as lowercase hex pairs separated by spaces. These write into a PyJsonWriter, so the
 * JSON path puts them straight into its output and the value tree gets its strings from the same code.
 */
import { forEachNonZeroRun } from '../stream/index.js';
import { HEX_DIGITS, PyJsonWriter, repeatBytes } from './py-json-writer.js';

/** Puts the `digits` low hex digits of `v` (up to 32 bits, unsigned) at b[p]; returns the position after them. */
export function putHex(b: Uint8Array, p: number, v: number, digits: number): number {
  for (let s = digits * 4 - 4; s >= 0; s -= 4) b[p++] = HEX_DIGITS[(v >>> s) & 15];
  return p;
}

/** For a value of 1 to 4 bytes shown signed: ` (N)` when its sign bit is set. */
function writeSignedSuffix(w: PyJsonWriter, lo: number, size: number): void {
  const shift = 32 - size * 8;
  const v = (lo << shift) >> shift;
  if (v < 0) w.ascii(` (${v})`);
}

/**
 * An integer of 1 to 8 bytes given as its two 32-bit halves, unsigned (`hi` is 0 up to 4 bytes and `lo`
 * holds only `size` bytes), without quotes.
 */
export function writeIntText(w: PyJsonWriter, hi: number, lo: number, size: number, shownSigned: boolean): void {
  const b = w.reserve(2 + 2 * size);
  let p = w.length;
  b[p++] = 0x30;
  b[p++] = 0x78;
  if (size > 4) {
    p = putHex(b, p, hi, (size - 4) * 2);
    p = putHex(b, p, lo, 8);
  } else {
    p = putHex(b, p, lo, size * 2);
  }
  w.length = p;
  if (!shownSigned) return;
  if (size <= 4) {
    writeSignedSuffix(w, lo, size);
  } else if ((hi >>> ((size - 4) * 8 - 1)) & 1) {
    // Negative 64-bit values are rare enough that a BigInt for their decimal text costs nothing.
    w.ascii(` (${BigInt.asIntN(size * 8, (BigInt(hi) << 32n) | BigInt(lo))})`);
  }
}

/** An integer of any size, including sizes QEMU never sends (0, or above 8 bytes), without quotes. */
export function writeInt(w: PyJsonWriter, value: number | bigint, size: number, shownSigned: boolean): void {
  if (size >= 1 && size <= 4 && typeof value === 'number') {
    writeIntText(w, 0, size === 4 ? value >>> 0 : value & ((1 << (size * 8)) - 1), size, shownSigned);
  } else if (size >= 5 && size <= 8) {
    const u = BigInt.asUintN(size * 8, BigInt(value));
    writeIntText(w, Number(u >> 32n), Number(u & 0xffffffffn), size, shownSigned);
  } else {
    const big = BigInt(value);
    const unsigned = size > 0 ? BigInt.asUintN(size * 8, big) : big;
    w.ascii(`0x${unsigned.toString(16).padStart(size * 2, '0')}`);
    if (shownSigned && size > 0) {
      const s = BigInt.asIntN(size * 8, unsigned);
      if (s < 0n) w.ascii(` (${s})`);
    }
  }
}

/**
 * Bytes `start` to `end` of `bytes` as hex pairs separated by spaces, without quotes. Device buffers are
 * nearly all zero bytes, so this lays down "00 00 00 …" with a few native copies and then writes only the
 * bytes that are not zero.
 */
export function writeHexBytes(w: PyJsonWriter, bytes: Uint8Array, start = 0, end = bytes.length): void {
  const n = end - start;
  if (n <= 0) return;
  const len = n * 3 - 1;
  const b = w.reserve(len + 1);
  const p = w.length;
  b[p] = 0x30;
  b[p + 1] = 0x30;
  b[p + 2] = 0x20;
  repeatBytes(b, p, 3, len);
  forEachNonZeroRun(bytes, start, end, (from, to) => {
    for (let i = from, d = p + (from - start) * 3; i < to; i++, d += 3) {
      const x = bytes[i];
      b[d] = HEX_DIGITS[x >> 4];
      b[d + 1] = HEX_DIGITS[x & 15];
    }
  });
  w.length = p + len;
}

/** One small writer reused for the string forms: they are built and read back before the next call. */
const scratch = new PyJsonWriter(64);

/** The script's rendering of an integer of `size` bytes, as a string. */
export function renderInt(value: number | bigint, size: number, shownSigned: boolean): string {
  scratch.length = 0;
  writeInt(scratch, value, size, shownSigned);
  return scratch.text();
}

/** Bytes as lowercase hex pairs separated by spaces. */
export function hexBytes(b: Uint8Array): string {
  // Large buffers get their own writer, so the scratch one stays small.
  const w = b.length > 16 ? new PyJsonWriter(b.length * 3) : scratch;
  w.length = 0;
  writeHexBytes(w, b);
  return w.text();
}
