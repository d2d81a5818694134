/**
 * The JSON fast path: a device body read straight into analyze-migration.py's text, with no value tree
 * in between.
 *
 * Contract: writeBodyJson(r, plan, w, depth) appends exactly the text that
 * `pyDumps(renderStruct(decodeStruct(body)))` gives at the same depth (render-dict.ts is the reference),
 * reads exactly the bytes decodeStruct reads and throws the same errors. Where a key of the body repeats,
 * which text written in order cannot show (Python's dict keeps the key's first place and its last value),
 * it returns false and leaves `w` and `r` as they were, for the reference to render the body.
 * Proven by test/analyze/analyze-json.test.ts: every fixture against the script's own output, and 3000
 * seeded random descriptions and bodies (repeated keys, subsection names that collide, odd sizes, long
 * arrays of structs, cut bodies) against the reference.
 *
 * Why it exists: `vmstate analyze` must stay at least 5x faster than the script as a whole process on
 * device-heavy streams (bench/run.ts), and a CLI run is over before the JIT has compiled much: the value
 * tree costs too much there. How: the body reader drives a sink that writes each key and leaf as it is
 * read, and long runs of elements whose text differs only in its digits (register files, buffers,
 * arrays of structs such as AHCI's command slots) are laid down as copies of one element's text with
 * zero digits, where only the bytes a native scan finds not zero get their digits (writeCopies).
 */
import type { ByteReader } from '../stream/index.js';
import { forEachNonZeroRun } from '../stream/index.js';
import type { FieldGroup, PlannedField, StructPlan } from './field-plan.js';
import { HEX_DIGITS, type PyJsonWriter } from './python-json.js';
import { readInt, readStruct, type BodySink } from './read-body.js';
import { writeHexBytes, writeInt, writeIntText, type LeafRule } from './script-7.2.js';

/**
 * Writes the JSON of the device body at r into w, its braces at `depth` (1 for a section of the dump).
 * Returns false, with `w` and `r` as they were, when a key repeats.
 */
export function writeBodyJson(r: ByteReader, plan: StructPlan, w: PyJsonWriter, depth: number): boolean {
  if (!plan.distinctKeys) return false;
  const start = w.length;
  const pos = r.pos;
  const sink = new JsonSink(w);
  const root = sink.open(depth);
  // A subsection whose name from the stream is a key already written stops the read.
  if (!readStruct(r, plan, sink, root)) {
    w.length = start;
    r.pos = pos;
    return false;
  }
  sink.end(root);
  return true;
}

/** What a byte of an element is to its text: see ElementText.special. */
const PLAIN = 0;
const BOOL = 1;
const SIGN = 2;

/** Buffers at least this long print through writeCopies; shorter ones byte by byte. */
const HEX_COPIES_MIN = 32;

/**
 * Where the bytes of one element show in its text: byte j's two hex digits start at text offset
 * digitAt[j] (-1: none of its own), and special[j] says whether some values of the byte change the
 * text's length, which no copy can show: BOOL (not zero prints `true`, not `false`) or SIGN (from 0x80
 * up the value is negative and gets ` (N)`).
 */
class ElementText {
  readonly digitAt: Int32Array;
  readonly special: Uint8Array;
  /** While the element is written: where its bytes start in the stream and its text in the output. */
  streamStart = 0;
  textStart = 0;
  /** False once the element printed text whose length depends on its value: `true`, a negative number. */
  copyable = true;

  constructor(readonly size: number) {
    this.digitAt = new Int32Array(size);
    this.special = new Uint8Array(size);
  }

  start(streamStart: number, textStart: number): void {
    this.digitAt.fill(-1);
    this.special.fill(PLAIN);
    this.streamStart = streamStart;
    this.textStart = textStart;
    this.copyable = true;
  }

  /** `n` bytes from stream position `from` print as hex digit pairs from text position `at`, `stride` apart. */
  hex(from: number, at: number, n: number, stride: number, signed: boolean): void {
    const o = from - this.streamStart;
    const t = at - this.textStart;
    for (let j = 0; j < n; j++) this.digitAt[o + j] = t + j * stride;
    if (signed && n > 0) this.special[o] = SIGN;
  }

  /** The byte at stream position `at` prints as `true` or `false`; it is `x` in this element. */
  bool(at: number, x: number): void {
    this.special[at - this.streamStart] = BOOL;
    if (x !== 0) this.copyable = false;
  }
}

/** An element of `size` bytes printing two hex digits per byte, `stride` apart from text offset `first`. */
function hexElement(size: number, first: number, stride: number): ElementText {
  const e = new ElementText(size);
  for (let j = 0; j < size; j++) e.digitAt[j] = first + j * stride;
  return e;
}

const ONE_HEX_BYTE = hexElement(1, 0, 3);
const HEX_BYTE_TEMPLATE = new Uint8Array([0x30, 0x30, 0x20]);

/**
 * Fills b[start, start + total) with copies of its first `unit` bytes, in a few native copies that double
 * in length.
 */
function repeatBytes(b: Uint8Array, start: number, unit: number, total: number): void {
  for (let done = unit; done < total; done *= 2) b.copyWithin(start + done, start, start + Math.min(done, total - done));
}

/**
 * Appends `count` copies of `template`, the text of an element whose bytes show as `element` says
 * (offsets relative to the template, plus `shift`), for the elements whose bytes follow one another
 * from src[from], and puts in the digits of their bytes that are not zero. With special bytes, it
 * stops before the first element whose text would differ in length, laying down copies in growing
 * batches so that an early stop wastes little. Returns how many elements it wrote.
 */
function writeCopies(w: PyJsonWriter, template: Uint8Array, element: ElementText, shift: number, src: Uint8Array, from: number, count: number, specials: boolean): number {
  const { size, digitAt, special } = element;
  const per = template.length;
  let done = 0;
  for (let batch = specials ? 4 : count; done < count; batch *= 2) {
    const n = Math.min(batch, count - done);
    const b = w.reserve(n * per);
    const p = w.length;
    b.set(template, p);
    repeatBytes(b, p, per, n * per);
    // Element e of the batch has its bytes at base + e * size and its text at p + e * per.
    const base = from + done * size;
    let stop = n;
    forEachNonZeroRun(src, base, base + n * size, (lo, hi) => {
      for (let q = lo; q < hi; q++) {
        const e = size === 1 ? q - base : Math.floor((q - base) / size);
        const j = q - base - e * size;
        const x = src[q];
        if (specials && special[j] !== PLAIN && (special[j] === BOOL || x >= 0x80)) {
          stop = e;
          return false;
        }
        const t = digitAt[j];
        if (t >= 0) {
          const d = p + e * per + shift + t;
          b[d] = HEX_DIGITS[x >> 4];
          b[d + 1] = HEX_DIGITS[x & 15];
        }
      }
      return true;
    });
    w.length = p + stop * per;
    done += stop;
    if (stop < n) break;
  }
  return done;
}

/** The handle on an open struct is its depth: that fixes its indentation. */
class JsonSink implements BodySink<number> {
  /** Per depth: the struct open there has no key yet. */
  private readonly empty: boolean[] = [];
  /** The element being noted while one element of a struct array is written, else null. */
  private noting: ElementText | null = null;

  constructor(private readonly w: PyJsonWriter) {}

  open(depth: number): number {
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
    // While an element is noted, every byte goes through value(), which notes where it prints.
    if (this.noting !== null) return false;
    if (f.struct !== null) return this.structRun(depth, r, f, f.struct);
    const size = f.desc.size;
    // All elements must be there: a short array goes element by element, so the error names the element.
    if (r.remaining < f.count * size) return false;
    const leaf = f.leaf as LeafRule;
    this.item(depth, f, 0);
    this.value(r, f);
    if (leaf.kind === 'int' && !leaf.shownSigned && (size === 1 || size === 2 || size === 4)) {
      // Every later element prints ",\n", the indent, "\"0x", its digits, "\"": copies of one zero line.
      const indent = (depth + 2) * 4;
      const template = new Uint8Array(2 + indent + 3 + 2 * size + 1).fill(0x30);
      template[0] = 0x2c;
      template[1] = 0x0a;
      template.fill(0x20, 2, 2 + indent);
      template.set([0x22, 0x30, 0x78], 2 + indent);
      template[template.length - 1] = 0x22;
      r.pos += writeCopies(this.w, template, hexElement(size, 2 + indent + 3, 2), 0, r.bytes, r.pos, f.count - 1, false) * size;
      return true;
    }
    for (let k = 1; k < f.count; k++) {
      this.item(depth, f, k);
      this.value(r, f);
    }
    return true;
  }

  /**
   * A compressed array of fixed-size structs, such as 32 command slots per AHCI port or 1020 GIC
   * interrupts: element after element has the same text but for its digits. One element is written the
   * usual way with its text noted; the following ones are copies of it. An element whose text differs
   * in length (a `true`, a negative number) is written the usual way, and the copies start again after it.
   */
  private structRun(depth: number, r: ByteReader, f: PlannedField, plan: StructPlan): boolean {
    const size = plan.fixedSize;
    if (size <= 0 || r.remaining < f.count * size) return false;
    const element = new ElementText(size);
    const indent = (depth + 2) * 4;
    for (let k = 0; k < f.count; ) {
      const child = this.field(depth, f, k);
      element.start(r.pos, this.w.length);
      this.noting = element;
      try {
        readStruct(r, plan, this, child);
        this.end(child);
      } finally {
        this.noting = null;
      }
      k++;
      if (!element.copyable || k === f.count) continue;
      // The element's text with every digit '0', behind its list separator: one element's copy.
      const w = this.w;
      const template = new Uint8Array(2 + indent + w.length - element.textStart);
      template[0] = 0x2c;
      template[1] = 0x0a;
      template.fill(0x20, 2, 2 + indent);
      template.set(w.buf.subarray(element.textStart, w.length), 2 + indent);
      for (let j = 0; j < size; j++) {
        const t = element.digitAt[j];
        if (t >= 0) template[2 + indent + t] = template[3 + indent + t] = 0x30;
      }
      const n = writeCopies(w, template, element, 2 + indent, r.bytes, r.pos, f.count - k, true);
      r.pos += n * size;
      k += n;
    }
    return true;
  }

  field(depth: number, f: PlannedField, k: number): number {
    this.item(depth, f, k);
    return this.open(f.indexed ? depth + 2 : depth + 1);
  }

  groupEnd(depth: number, g: FieldGroup): void {
    if (!g.indexed) return;
    this.w.newline(depth + 1);
    this.w.byte(0x5d);
  }

  subsection(depth: number, name: string, _version: number, keyTaken: boolean): number | null {
    if (keyTaken) return null;
    this.key(depth, name);
    return this.open(depth + 1);
  }

  end(depth: number): void {
    if (this.empty[depth]) {
      this.w.ascii('{}');
    } else {
      this.w.newline(depth);
      this.w.byte(0x7d);
    }
  }

  /** One leaf's value, as the reference renders it; noted in `noting` if an element is being noted. */
  private value(r: ByteReader, f: PlannedField): void {
    const w = this.w;
    const size = f.desc.size;
    const noting = this.noting;
    const leaf = f.leaf as LeafRule;
    if (leaf.kind === 'int') {
      if (size >= 1 && size <= 8) {
        r.need(size);
        const src = r.bytes;
        let q = r.pos;
        if (!leaf.shownSigned || src[q] < 0x80) {
          // The hex digits of a big-endian integer are those of its bytes in stream order: one short loop.
          const b = w.reserve(4 + 2 * size);
          let p = w.length;
          b[p++] = 0x22;
          b[p++] = 0x30;
          b[p++] = 0x78;
          noting?.hex(q, p, size, 2, leaf.shownSigned);
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
        if (noting !== null) noting.copyable = false;
        let hi = 0;
        for (let i = 4; i < size; i++) hi = hi * 256 + src[q++];
        let lo = 0;
        for (let i = Math.min(size, 4); i > 0; i--) lo = lo * 256 + src[q++];
        r.pos = q;
        w.byte(0x22);
        writeIntText(w, hi, lo, size, true);
      } else {
        if (noting !== null) noting.copyable = false;
        w.byte(0x22);
        writeInt(w, readInt(r, size, false), size, leaf.shownSigned);
      }
      w.byte(0x22);
    } else if (leaf.kind === 'bool') {
      const x = r.getByte();
      noting?.bool(r.pos - 1, x);
      w.ascii(x !== 0 ? 'true' : 'false');
    } else {
      const start = r.pos;
      r.skip(size);
      if (leaf.shown === 'bool') {
        if (size > 0) noting?.bool(start, r.bytes[start]);
        w.ascii(size > 0 && r.bytes[start] !== 0 ? 'true' : 'false');
      } else if (leaf.shown === 'nullptr') {
        w.ascii('"nullptr"');
      } else {
        w.byte(0x22);
        noting?.hex(start, w.length, size, 3, false);
        if (size < HEX_COPIES_MIN) {
          writeHexBytes(w, r.bytes, start, start + size);
        } else {
          writeCopies(w, HEX_BYTE_TEMPLATE, ONE_HEX_BYTE, 0, r.bytes, start, size, false);
          w.length--; // the last pair has no space after it
        }
        w.byte(0x22);
      }
    }
  }
}
