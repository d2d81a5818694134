/**
 * The one reader of a device body by its plan, the way analyze-migration.py reads it: compressed arrays
 * stand for `count` elements, each element reads exactly its `size` bytes (structs recurse), then each
 * listed subsection is read with its marker, name and version. What it meets goes to a BodySink as
 * events, in stream order: the value tree, the JSON text and the section table are sinks.
 */
import { StreamFormatError, prefixStreamError } from '../errors.js';
import type { ByteReader } from '../stream/index.js';
import { RecordType } from '../savevm/index.js';
import { hasKey, type FieldGroup, type PlannedField, type StructPlan } from './field-plan.js';

/** Receives a struct as it is read, in stream order. `S` is the sink's handle on one open struct. */
export interface BodySink<S> {
  /** A group of fields sharing one key begins (for array elements, the list). */
  group(s: S, g: FieldGroup): void;
  /** Reads element `k` (counted from the entry's first) of a leaf field: an int, bool or bytes. */
  leaf(s: S, r: ByteReader, f: PlannedField, k: number): void;
  /**
   * Reads all `f.count` elements of a compressed array (of leaves, or of structs) at once; or returns false,
   * having read and written nothing, to be handed them one element at a time (which is how errors name
   * the element).
   */
  run(s: S, r: ByteReader, f: PlannedField): boolean;
  /** Element `k` of a struct field begins; returns the handle its own fields go to. */
  field(s: S, f: PlannedField, k: number): S;
  /** Every element of the group has been read. */
  groupEnd(s: S, g: FieldGroup): void;
  /**
   * A subsection begins, `name` and `version` as read from the stream; returns the handle its fields go
   * to, or null to stop reading. `keyTaken` says a field or an earlier subsection of `s` already has that
   * key (Python's dict keeps the key's place and takes the new value).
   */
  subsection(s: S, name: string, version: number, keyTaken: boolean, plan: StructPlan): S | null;
  /** A struct opened by field() or subsection() has been read whole. */
  end(s: S): void;
}

/**
 * Reads the fields, then the subsections, of one struct into `s`. Returns false if the sink stopped the
 * read at a subsection, true when the struct was read whole.
 */
export function readStruct<S>(r: ByteReader, plan: StructPlan, sink: BodySink<S>, s: S): boolean {
  // Indexed loops: a CLI run executes this cold, where for-of's iterator calls cost more than the work.
  const groups = plan.groups;
  for (let gi = 0; gi < groups.length; gi++) {
    const g = groups[gi];
    sink.group(s, g);
    for (let fi = 0; fi < g.fields.length; fi++) {
      const f = g.fields[fi];
      if (f.count > 1 && f.indexError < 0 && sink.run(s, r, f)) continue;
      for (let k = 0; k < f.count; k++) {
        try {
          if (f.struct === null) {
            sink.leaf(s, r, f, k);
          } else {
            const child = sink.field(s, f, k);
            if (!readStruct(r, f.struct, sink, child)) return false;
            sink.end(child);
          }
        } catch (e) {
          throw prefixStreamError(e, f.indexed ? `${f.name}[${f.firstIndex + k}]` : f.name);
        }
        // Elements after an entry's first follow it by construction; only the first can be out of place.
        if (k === 0 && f.indexError >= 0) {
          throw new StreamFormatError(`element index ${f.firstIndex} does not follow ${f.indexError} elements already read`, {
            offset: r.offset,
            path: f.name,
          });
        }
      }
    }
    sink.groupEnd(s, g);
  }
  let seen: string[] | null = null;
  for (let si = 0; si < plan.subsections.length; si++) {
    const sub = plan.subsections[si];
    const offset = r.offset;
    const marker = r.getByte();
    if (marker !== RecordType.SUBSECTION) {
      throw new StreamFormatError(`subsection ${sub.vmsdName} not found: expected marker 0x05, found 0x${marker.toString(16).padStart(2, '0')}`, {
        offset,
        path: sub.vmsdName,
      });
    }
    const name = r.getCountedString();
    const version = r.getBe32();
    const keyTaken = hasKey(plan, name) || (seen !== null && seen.includes(name));
    (seen ??= []).push(name);
    const child = sink.subsection(s, name, version, keyTaken, sub);
    if (child === null) return false;
    try {
      if (!readStruct(r, sub, sink, child)) return false;
    } catch (e) {
      throw prefixStreamError(e, name);
    }
    sink.end(child);
  }
  return true;
}

const HEX_DIGITS = new TextEncoder().encode('0123456789abcdef');
const LATIN1 = new TextDecoder('latin1');

/** Reads an integer of `size` bytes: a number up to 4 bytes, a bigint above (and for odd sizes). */
export function readInt(r: ByteReader, size: number, signed: boolean): number | bigint {
  switch (size) {
    case 1:
    case 2:
    case 4:
    case 8:
      return r.getBeInt(size, signed);
    default: {
      // Odd sizes do not occur in QEMU's codecs, but the description is untrusted: read them generically.
      // Through hex text: a byte at a time would be quadratic in the size, which the description sets.
      const bytes = r.getBuffer(size);
      const text = new Uint8Array(3 + 2 * size);
      text.set([0x30, 0x78, 0x30]); // "0x0"
      for (let i = 0, p = 3; i < size; i++) {
        text[p++] = HEX_DIGITS[bytes[i] >> 4];
        text[p++] = HEX_DIGITS[bytes[i] & 15];
      }
      const v = BigInt(LATIN1.decode(text));
      return signed && size > 0 ? BigInt.asIntN(size * 8, v) : v;
    }
  }
}

/** Reads past everything, keeping nothing: for callers that need only where a body ends. Its handle is 0. */
const skipSink: BodySink<0> = {
  group() {},
  // Every leaf reads exactly its size (a bool leaf is one of size 1).
  leaf: (_s, r, f) => r.skip(f.desc.size),
  run(_s, r, f) {
    const size = f.struct === null ? f.desc.size : f.struct.fixedSize;
    if (size < 0 || r.remaining < f.count * size) return false;
    r.skip(f.count * size);
    return true;
  },
  field: () => 0,
  groupEnd() {},
  subsection: () => 0,
  end() {},
};

/** Reads past one struct body as the other sinks would read it, with the same errors, keeping nothing. */
export function skipStruct(r: ByteReader, plan: StructPlan): void {
  readStruct(r, plan, skipSink, 0);
}
