/**
 * QEMU 7.2's scripts/analyze-migration.py: the rules that make `vmstate analyze` print what that script
 * prints, in one file. Another version of the script is another AnalyzeScript. The script reads a device
 * body by its VMDESCRIPTION entry:
 *
 *   - a field's `type` picks its reader: the integer codecs print `0x` and the unsigned value in hex, two
 *     digits a byte, then ` (N)` when the reader is a signed one and the value is negative; "bool" prints
 *     true or false by its first byte (one byte, as QEMU sends it); everything else (buffers, timers, codecs it does not know) prints its
 *     bytes as hex pairs separated by spaces;
 *   - a compressed array (`array_len`) stands for that many elements; array elements (fields with an
 *     `index`, and compressed arrays) gather into one list per name, each element's index checked
 *     against the list's length; other fields are keyed by their name, a repeated key keeping its first
 *     place and taking the last value (Python's dict);
 *   - subsections follow the fields, each keyed by the name read from the stream;
 *   - a section is keyed `idstr (section id)`, RAM as {"section sizes": {block: "0x%016x"}}.
 */
import { intCodec } from '../vmstate/index.js';
import { HEX_DIGITS, PyJsonWriter } from './python-json.js';

/** How a leaf's bytes are read. */
export type LeafKind = 'int' | 'bool' | 'bytes';

/** How one leaf type is read and shown. */
export interface LeafRule {
  readonly kind: LeafKind;
  /** Ints: QEMU reads the value as signed. */
  readonly signed: boolean;
  /** Ints: the script prints a negative value's sign. */
  readonly shownSigned: boolean;
  /**
   * How the value prints: an integer's hex; true or false by the first byte (a "bool", of one byte or,
   * read as bytes, of any other length); hex pairs; or the word nullptr.
   */
  readonly shown: 'int' | 'bool' | 'hex' | 'nullptr';
}

/** What one version of analyze-migration.py decides where versions differ. */
export interface AnalyzeScript {
  /** E.g. `analyze-migration.py (QEMU 7.2)`. */
  readonly name: string;
  /** How a leaf field of `type` and `size` bytes is read and shown. */
  leaf(type: string, size: number): LeafRule;
  /**
   * How fields become keys of their struct's dict. `index`: fields with an index, and compressed arrays,
   * gather into one list per name, each element's index checked against the list's length; any other
   * field is a key of its own, a later field of the same name taking its value. `name`: the fields of
   * one name gather into one list, at the first one's place, when they hold two elements or more,
   * whatever their indices; one element alone is a plain key.
   */
  readonly lists: 'index' | 'name';
}

/** The codecs 7.2's script reads with a signed reader (VMSDFieldInt and VMSDFieldIntLE), QEMU's unsigned "equal" codecs among them. */
const SHOWN_SIGNED: ReadonlySet<string> = new Set(['int8', 'int16', 'int32', 'int64', 'int32 equal', 'int32 le', 'int64 equal', 'uint8 equal', 'uint16 equal']);

const BYTES: LeafRule = { kind: 'bytes', signed: false, shownSigned: false, shown: 'hex' };
const BOOL: LeafRule = { kind: 'bool', signed: false, shownSigned: false, shown: 'bool' };
const BOOL_BYTES: LeafRule = { kind: 'bytes', signed: false, shownSigned: false, shown: 'bool' };
const INT_RULES: ReadonlyMap<string, LeafRule> = new Map(
  [...SHOWN_SIGNED, 'uint8', 'uint16', 'uint32', 'uint64', 'uint32 equal'].map((type) => [
    type,
    { kind: 'int', signed: intCodec(type)?.signed ?? false, shownSigned: SHOWN_SIGNED.has(type), shown: 'int' },
  ]),
);

/** The leaf rules of 7.2's script, which later versions extend. */
export function leafRule72(type: string, size: number): LeafRule {
  return INT_RULES.get(type) ?? (type !== 'bool' ? BYTES : size === 1 ? BOOL : BOOL_BYTES);
}

export const SCRIPT_7_2: AnalyzeScript = {
  name: 'analyze-migration.py (QEMU 7.2)',
  leaf: leafRule72,
  lists: 'index',
};

// ---- how leaves print (the same in every version so far)

/** Puts the `digits` low hex digits of `v` (up to 32 bits, unsigned) at b[p]; returns the position after them. */
function putHex(b: Uint8Array, p: number, v: number, digits: number): number {
  for (let s = digits * 4 - 4; s >= 0; s -= 4) b[p++] = HEX_DIGITS[(v >>> s) & 15];
  return p;
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
    const shift = 32 - size * 8;
    const v = (lo << shift) >> shift;
    if (v < 0) w.ascii(` (${v})`);
  } else if ((hi >>> ((size - 4) * 8 - 1)) & 1) {
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

/** Bytes `start` to `end` of `bytes` as hex pairs separated by spaces, without quotes. */
export function writeHexBytes(w: PyJsonWriter, bytes: Uint8Array, start = 0, end = bytes.length): void {
  if (end <= start) return;
  const b = w.reserve((end - start) * 3);
  let p = w.length;
  for (let i = start; i < end; i++) {
    if (i > start) b[p++] = 0x20;
    const x = bytes[i];
    b[p++] = HEX_DIGITS[x >> 4];
    b[p++] = HEX_DIGITS[x & 15];
  }
  w.length = p;
}

/** One small writer reused for the string forms: each is built and read back before the next call. */
const scratch = new PyJsonWriter(64);

/** The script's text of an integer of `size` bytes. */
export function renderInt(value: number | bigint, size: number, shownSigned: boolean): string {
  scratch.length = 0;
  writeInt(scratch, value, size, shownSigned);
  return scratch.text();
}

/** The script's text of a buffer: lowercase hex pairs separated by spaces. */
export function hexBytes(b: Uint8Array): string {
  const w = b.length > 16 ? new PyJsonWriter(b.length * 3) : scratch;
  w.length = 0;
  writeHexBytes(w, b);
  return w.text();
}

/** A RAM block's used length as the script lists it under "section sizes". */
export function ramSizeText(usedLength: number): string {
  return `0x${usedLength.toString(16).padStart(16, '0')}`;
}
