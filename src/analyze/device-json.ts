/**
 * A device body read straight into analyze-migration.py's JSON text, with no value tree in between: the
 * interpreter (readStruct) drives a sink that writes each key and leaf as it is read, and long arrays as
 * copies of one element's text with their digits put in (see unsignedRun and structRun). The text equals
 * pyDumps(renderStruct(decodeStruct(...))) at the same indentation. Written text cannot be taken back to
 * overwrite a value, so a struct whose keys repeat (Python keeps the key's first place and its last value)
 * is read again through the value tree, which renders it as Python does.
 */
import type { ByteReader } from '../stream/index.js';
import { decodeStruct, readInt, readStruct, type StructSink } from './decode-device.js';
import { structPlan, type FieldGroup, type PlannedField, type StructPlan } from './field-plan.js';
import { forEachNonZeroRun } from '../stream/index.js';
import { HEX_DIGITS, repeatBytes, type PyJsonWriter } from './py-json-writer.js';
import { renderStruct } from './render-state.js';
import { putHex, writeHexBytes, writeInt, writeIntText } from './script-format.js';
import type { VmdescStruct } from './vmdesc.js';

/** A key repeats: the direct writer gives the body up to the value tree. It never leaves this module. */
class RepeatedKeyError extends Error {
  constructor() {
    super('a struct repeats a key');
  }
}

/**
 * Writes the JSON of the device body at r into w, its braces at `depth` (1 for a section of the dump).
 * Returns how: 'direct', or 'tree' when a repeated key sent it through the value tree. On a stream error
 * nothing is written and the error is thrown as the value tree's decode would throw it.
 */
export function writeDeviceJson(r: ByteReader, desc: VmdescStruct, w: PyJsonWriter, depth: number): 'direct' | 'tree' {
  const start = w.length;
  const pos = r.pos;
  try {
    const plan = structPlan(desc);
    const sink = new JsonSink(w);
    const root = sink.open(depth, plan);
    readStruct(r, plan, sink, root);
    sink.end(root);
    return 'direct';
  } catch (e) {
    w.length = start;
    if (!(e instanceof RepeatedKeyError)) throw e;
  }
  r.pos = pos;
  w.value(renderStruct(decodeStruct(r, desc)), depth);
  return 'tree';
}

/** What a byte of a struct element is to its text: see ElementLayout.kind. */
const PLAIN = 0;
const BOOL = 1;
const SIGN = 2;

/**
 * Where the bytes of one struct element (of a fixed-size struct) show in its text. It is noted while the
 * element is written the usual way; the elements after it are then written as copies of that text with
 * every digit zero, and only their bytes that are not zero are looked at, to put in their digits.
 */
class ElementLayout {
  /** Per byte of the element: where its two hex digits start in the element's text, or -1. */
  readonly digits: Int32Array;
  /** Per byte: PLAIN, BOOL (not zero prints `true`, not `false`) or SIGN (0x80 up prints a negative number). */
  readonly kind: Uint8Array;
  streamStart = 0;
  textStart = 0;
  /** False once the element printed text whose length depends on its value: `true`, a negative number. */
  copyable = true;

  constructor(readonly size: number) {
    this.digits = new Int32Array(size);
    this.kind = new Uint8Array(size);
  }

  start(streamStart: number, textStart: number): void {
    this.digits.fill(-1);
    this.kind.fill(PLAIN);
    this.streamStart = streamStart;
    this.textStart = textStart;
    this.copyable = true;
  }

  /** `n` bytes from stream position `from` print as hex digit pairs from text position `at`, `stride` apart. */
  hex(from: number, at: number, n: number, stride: number, signed: boolean): void {
    const o = from - this.streamStart;
    const t = at - this.textStart;
    for (let j = 0; j < n; j++) this.digits[o + j] = t + j * stride;
    if (signed && n > 0) this.kind[o] = SIGN;
  }

  /** The byte at stream position `at` prints as `true` or `false`; it is `x` in this element. */
  bool(at: number, x: number): void {
    this.kind[at - this.streamStart] = BOOL;
    if (x !== 0) this.copyable = false;
  }
}

/** The handle on an open struct is its depth: that fixes its indentation. */
class JsonSink implements StructSink<number> {
  /** Per depth: the struct open there has no key yet. */
  private readonly empty: boolean[] = [];
  /** The layout being noted while a struct element is written, else null. */
  private layout: ElementLayout | null = null;

  constructor(private readonly w: PyJsonWriter) {}

  open(depth: number, plan: StructPlan): number {
    if (!plan.distinctNames) throw new RepeatedKeyError();
    this.empty[depth] = true;
    return depth;
  }

  private key(depth: number, name: string): void {
    const w = this.w;
    w.byte(this.empty[depth] ? 0x7b : 0x2c);
    this.empty[depth] = false;
    w.newline(depth + 1);
    w.key(name);
  }

  /** An array element starts its own line in the list, after a comma unless it is the first. */
  private item(depth: number, f: PlannedField, k: number): void {
    if (!f.indexed) return;
    if (f.listPosition + k > 0) this.w.byte(0x2c);
    this.w.newline(depth + 2);
  }

  group(depth: number, g: FieldGroup): void {
    this.key(depth, g.name);
    if (g.indexed) this.w.byte(0x5b);
  }

  leaf(depth: number, r: ByteReader, f: PlannedField, k: number): void {
    this.item(depth, f, k);
    this.value(r, f);
  }

  run(depth: number, r: ByteReader, f: PlannedField): boolean {
    // While a layout is noted, every byte goes through value(), which notes where it prints.
    if (this.layout !== null) return false;
    if (f.struct !== null) return this.structRun(depth, r, f, f.struct);
    const size = f.desc.size;
    // All elements must be there: a short array goes element by element, so the error names the element.
    if (r.remaining < f.count * size) return false;
    if (f.kind === 'int' && !f.shownSigned && (size === 1 || size === 2 || size === 4)) {
      this.unsignedRun(depth, r, f);
      return true;
    }
    for (let k = 0; k < f.count; k++) {
      this.item(depth, f, k);
      this.value(r, f);
    }
    return true;
  }

  /**
   * A compressed array of unsigned 1-, 2- or 4-byte integers: register files and tables, most of a dump's
   * elements and nearly all zero. They print at a fixed width, so the lines are laid down as copies of one
   * zero line by a few native copies, and only the elements a native scan finds not zero get their digits:
   * no loop over every element, which would still be interpreted in a CLI run, too short for the JIT.
   */
  private unsignedRun(depth: number, r: ByteReader, f: PlannedField): void {
    const w = this.w;
    const size = f.desc.size;
    const digits = size * 2;
    // Element 0 has no comma when it opens the list; every later line is ",\n", indent, "\"0x", digits, "\"".
    this.item(depth, f, 0);
    this.value(r, f);
    const indent = (depth + 2) * 4;
    const per = indent + digits + 6;
    const len = (f.count - 1) * per;
    const b = w.reserve(len);
    const p = w.length;
    let t = p;
    b[t++] = 0x2c;
    b[t++] = 0x0a;
    for (let i = 0; i < indent; i++) b[t++] = 0x20;
    b[t++] = 0x22;
    b[t++] = 0x30;
    b[t++] = 0x78;
    const first = t;
    t = putHex(b, t, 0, digits);
    b[t] = 0x22;
    repeatBytes(b, p, per, len);
    // Element k (from 1) has its digits at first + (k - 1) * per and its bytes at q0 + k * size.
    const src = r.bytes;
    const q0 = r.pos - size;
    const end = q0 + f.count * size;
    forEachNonZeroRun(src, r.pos, end, (from, to) => {
      for (let k = Math.floor((from - q0) / size), q = q0 + k * size; q < to; k++, q += size) {
        const v = size === 4 ? ((src[q] << 24) | (src[q + 1] << 16) | (src[q + 2] << 8) | src[q + 3]) >>> 0 : size === 2 ? (src[q] << 8) | src[q + 1] : src[q];
        putHex(b, first + (k - 1) * per, v, digits);
      }
    });
    w.length = p + len;
    r.pos = end;
  }

  /**
   * A compressed array of fixed-size structs, such as 32 command slots per AHCI port or 1020 GIC
   * interrupts: element after element has the same text but for its digits. One element is written the
   * usual way with its layout noted; the following ones are laid down as copies of its text with zero
   * digits, in growing batches, and only their bytes a native scan finds not zero get their digits. An
   * element whose text differs in length (a `true`, a negative number) is written the usual way, and the
   * copies start again after it.
   */
  private structRun(depth: number, r: ByteReader, f: PlannedField, plan: StructPlan): boolean {
    const size = plan.fixedSize;
    if (size <= 0 || r.remaining < f.count * size) return false;
    const layout = new ElementLayout(size);
    for (let k = 0; k < f.count; ) {
      const child = this.field(depth, f, k);
      layout.start(r.pos, this.w.length);
      this.layout = layout;
      try {
        readStruct(r, plan, this, child);
        this.end(child);
      } finally {
        this.layout = null;
      }
      k++;
      if (layout.copyable) k = this.copies(depth, r, f.count - k, layout) + k;
    }
    return true;
  }

  /**
   * Writes up to `left` elements after the one `layout` describes, as copies of its text; stops before an
   * element whose text would differ in length. Returns how many it wrote, with r past their bytes.
   */
  private copies(depth: number, r: ByteReader, left: number, layout: ElementLayout): number {
    const w = this.w;
    const src = r.bytes;
    const { size, digits, kind } = layout;
    // The element's text with every digit '0', behind its list separator: one element's copy.
    const indent = (depth + 2) * 4;
    const body = w.length - layout.textStart;
    const per = 2 + indent + body;
    const first = new Uint8Array(per);
    first[0] = 0x2c;
    first[1] = 0x0a;
    first.fill(0x20, 2, 2 + indent);
    first.set(w.buf.subarray(layout.textStart, w.length), 2 + indent);
    forEachNonZeroRun(src, layout.streamStart, layout.streamStart + size, (from, to) => {
      for (let q = from; q < to; q++) {
        const t = digits[q - layout.streamStart];
        if (t >= 0) first[2 + indent + t] = first[3 + indent + t] = 0x30;
      }
    });
    let done = 0;
    for (let batch = 4; done < left; batch *= 2) {
      const n = Math.min(batch, left - done);
      const b = w.reserve(n * per);
      const p = w.length;
      b.set(first, p);
      repeatBytes(b, p, per, n * per);
      // Element e of the batch has its bytes at base + e * size and its text at p + e * per.
      const base = r.pos;
      let stop = n;
      forEachNonZeroRun(src, base, base + n * size, (from, to) => {
        for (let q = from; q < to; q++) {
          const e = Math.floor((q - base) / size);
          const o = q - base - e * size;
          const x = src[q];
          if (kind[o] !== PLAIN && (kind[o] === BOOL || x >= 0x80)) {
            stop = e;
            return false;
          }
          const t = digits[o];
          if (t >= 0) {
            const d = p + e * per + 2 + indent + t;
            b[d] = HEX_DIGITS[x >> 4];
            b[d + 1] = HEX_DIGITS[x & 15];
          }
        }
        return true;
      });
      w.length = p + stop * per;
      r.pos = base + stop * size;
      done += stop;
      if (stop < n) break;
    }
    return done;
  }

  field(depth: number, f: PlannedField, k: number): number {
    this.item(depth, f, k);
    return this.open(f.indexed ? depth + 2 : depth + 1, f.struct as StructPlan);
  }

  groupEnd(depth: number, g: FieldGroup): void {
    if (!g.indexed) return;
    this.w.newline(depth + 1);
    this.w.byte(0x5d);
  }

  subsection(depth: number, name: string, _version: number, keyTaken: boolean, plan: StructPlan): number {
    if (keyTaken) throw new RepeatedKeyError();
    this.key(depth, name);
    return this.open(depth + 1, plan);
  }

  end(depth: number): void {
    if (this.empty[depth]) {
      this.w.ascii('{}');
    } else {
      this.w.newline(depth);
      this.w.byte(0x7d);
    }
  }

  /** One leaf's value, as renderStruct would give it to pyDumps; noted in `layout` if there is one. */
  private value(r: ByteReader, f: PlannedField): void {
    const w = this.w;
    const size = f.desc.size;
    const layout = this.layout;
    if (f.kind === 'int') {
      if (size >= 1 && size <= 8) {
        r.need(size);
        const src = r.bytes;
        let q = r.pos;
        if (!f.shownSigned || src[q] < 0x80) {
          // The hex digits of a big-endian integer are those of its bytes in stream order: one short loop.
          const b = w.reserve(4 + 2 * size);
          let p = w.length;
          b[p++] = 0x22;
          b[p++] = 0x30;
          b[p++] = 0x78;
          layout?.hex(q, p, size, 2, f.shownSigned);
          for (const end = q + size; q < end; q++) {
            const x = src[q];
            b[p++] = HEX_DIGITS[x >> 4];
            b[p++] = HEX_DIGITS[x & 15];
          }
          b[p++] = 0x22;
          w.length = p;
          r.pos = q;
          return;
        }
        // Negative and shown signed: the text gets its " (N)" suffix. Read as two 32-bit halves, no BigInt.
        if (layout !== null) layout.copyable = false;
        let hi = 0;
        for (let i = 4; i < size; i++) hi = hi * 256 + src[q++];
        let lo = 0;
        for (let i = Math.min(size, 4); i > 0; i--) lo = lo * 256 + src[q++];
        r.pos = q;
        w.byte(0x22);
        writeIntText(w, hi, lo, size, true);
      } else {
        if (layout !== null) layout.copyable = false;
        w.byte(0x22);
        writeInt(w, readInt(r, size, false), size, f.shownSigned);
      }
      w.byte(0x22);
    } else if (f.kind === 'bool') {
      const x = r.getByte();
      layout?.bool(r.pos - 1, x);
      w.ascii(x !== 0 ? 'true' : 'false');
    } else {
      const start = r.pos;
      r.skip(size);
      if (f.desc.type === 'bool') {
        if (size > 0) layout?.bool(start, r.bytes[start]);
        w.ascii(size > 0 && r.bytes[start] !== 0 ? 'true' : 'false');
      } else {
        w.byte(0x22);
        layout?.hex(start, w.length, size, 3, false);
        writeHexBytes(w, r.bytes, start, start + size);
        w.byte(0x22);
      }
    }
  }
}
