/**
 * JSON text exactly as Python's `json.dumps(value, indent=4, separators=(',', ': '))` writes it with the
 * default `ensure_ascii=True`: the layout analyze-migration.py prints in every QEMU version. Written as
 * ASCII bytes into one growing buffer (Python escapes everything outside printable ASCII, so every byte
 * is below 0x80); renderers write their tokens here directly. Objects are Maps (insertion order, any key)
 * or plain objects; bigints print as integers.
 */

/** A value the Python-style writer accepts. */
export type PyJson = string | number | bigint | boolean | null | readonly PyJson[] | ReadonlyMap<string, PyJson> | { readonly [k: string]: PyJson };

const ESCAPES: Readonly<Record<number, number>> = { 0x22: 0x22, 0x5c: 0x5c, 0x0a: 0x6e, 0x0d: 0x72, 0x09: 0x74, 0x08: 0x62, 0x0c: 0x66 };
/** ASCII codes of the lowercase hex digits. */
export const HEX_DIGITS = new Uint8Array([48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 97, 98, 99, 100, 101, 102]);
const DECODER = new TextDecoder();

export class PyJsonWriter {
  /** The bytes; only the first `length` are written. It is replaced when it grows. */
  buf: Uint8Array;
  length = 0;
  /** The bytes key() writes for each name seen so far. */
  private readonly keys = new Map<string, Uint8Array>();

  constructor(initialSize = 1 << 16) {
    this.buf = new Uint8Array(Math.max(16, initialSize));
  }

  /** Makes room for `n` more bytes and returns the buffer to write them into (it may have moved). */
  reserve(n: number): Uint8Array {
    const need = this.length + n;
    if (need <= this.buf.length) return this.buf;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    return next;
  }

  byte(c: number): void {
    this.reserve(1)[this.length++] = c;
  }

  /** Characters already known to be printable ASCII that needs no escape (digits, literals). */
  ascii(s: string): void {
    const b = this.reserve(s.length);
    let p = this.length;
    for (let i = 0; i < s.length; i++) b[p++] = s.charCodeAt(i);
    this.length = p;
  }

  /** A newline and the indentation of `depth` levels. */
  newline(depth: number): void {
    const n = depth * 4;
    const b = this.reserve(n + 1);
    const p = this.length;
    b[p] = 0x0a;
    // One native fill: a byte loop runs interpreted in a CLI run, which is over before the JIT gets to it.
    b.fill(0x20, p + 1, p + 1 + n);
    this.length = p + 1 + n;
  }

  /**
   * A dict key and its separator: the string literal of `name`, then ": ". A dump writes a few hundred
   * distinct keys thousands of times, so each key's bytes are made once per writer and then copied.
   */
  key(name: string): void {
    let k = this.keys.get(name);
    if (k === undefined) {
      const start = this.length;
      this.string(name);
      this.ascii(': ');
      k = this.buf.slice(start, this.length);
      this.keys.set(name, k);
      return;
    }
    this.reserve(k.length).set(k, this.length);
    this.length += k.length;
  }

  /** A JSON string literal with Python's ensure_ascii escaping (lowercase \uXXXX). */
  string(s: string): void {
    let b = this.reserve(s.length + 2);
    let p = this.length;
    b[p++] = 0x22;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x20 && c < 0x7f && c !== 0x22 && c !== 0x5c) {
        b[p++] = c;
        continue;
      }
      // Escapes take up to six bytes for one character: make room for the worst case of the rest.
      this.length = p;
      b = this.reserve(6 * (s.length - i) + 1);
      const short = ESCAPES[c];
      b[p++] = 0x5c;
      if (short !== undefined) {
        b[p++] = short;
      } else {
        b[p++] = 0x75;
        b[p++] = HEX_DIGITS[c >> 12];
        b[p++] = HEX_DIGITS[(c >> 8) & 15];
        b[p++] = HEX_DIGITS[(c >> 4) & 15];
        b[p++] = HEX_DIGITS[c & 15];
      }
    }
    b[p++] = 0x22;
    this.length = p;
  }

  /** Any PyJson value, its nested lines indented from `depth`. */
  value(v: PyJson, depth = 0): void {
    if (typeof v === 'string') {
      this.string(v);
    } else if (typeof v === 'number') {
      this.ascii(pyNumber(v));
    } else if (typeof v === 'bigint') {
      this.ascii(v.toString());
    } else if (typeof v === 'boolean') {
      this.ascii(v ? 'true' : 'false');
    } else if (v === null) {
      this.ascii('null');
    } else if (Array.isArray(v)) {
      if (v.length === 0) {
        this.ascii('[]');
        return;
      }
      this.byte(0x5b);
      for (let i = 0; i < v.length; i++) {
        if (i > 0) this.byte(0x2c);
        this.newline(depth + 1);
        this.value(v[i] as PyJson, depth + 1);
      }
      this.newline(depth);
      this.byte(0x5d);
    } else {
      const entries: Iterable<[string, PyJson]> = v instanceof Map ? v.entries() : Object.entries(v);
      let first = true;
      for (const [k, item] of entries) {
        this.byte(first ? 0x7b : 0x2c);
        first = false;
        this.newline(depth + 1);
        this.key(k);
        this.value(item, depth + 1);
      }
      if (first) {
        this.ascii('{}');
      } else {
        this.newline(depth);
        this.byte(0x7d);
      }
    }
  }

  /** The bytes written so far, as a view of the buffer (valid until the next write). */
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }

  /** The bytes written from `start` on as a string. */
  text(start = 0): string {
    const n = this.length - start;
    // Short pieces (one rendered integer) are cheaper through fromCharCode than through a decoder call.
    if (n <= 64) return String.fromCharCode.apply(null, this.buf.subarray(start, this.length) as unknown as number[]);
    return DECODER.decode(this.buf.subarray(start, this.length));
  }
}

/** Python's repr of a float or int as json.dumps prints it. */
function pyNumber(n: number): string {
  if (Number.isInteger(n) && Math.abs(n) < 1e16) return n.toFixed(0);
  if (Number.isNaN(n)) return 'NaN';
  if (!Number.isFinite(n)) return n > 0 ? 'Infinity' : '-Infinity';
  const s = String(n);
  // Python writes 1e-05 where JavaScript writes 1e-5, and always keeps a '.0' on integral floats.
  return s.replace(/e([+-])(\d)$/, 'e$10$2');
}

/** Serializes `value` like `json.dumps(value, indent=4, separators=(',', ': '))`. */
export function pyDumps(value: PyJson): string {
  const w = new PyJsonWriter();
  w.value(value);
  return w.text();
}
