/**
 * Reads a device section body by its vmdesc description, the way analyze-migration.py (QEMU 7.2) reads
 * it: compressed arrays are expanded, each element reads exactly `size` bytes (structs recurse), then each
 * listed subsection is read with its marker, name and version. This is the one interpreter of a body; what
 * it meets goes to a StructSink, which builds the value tree (decodeStruct) or writes JSON text directly.
 */
import { StreamFormatError, prefixStreamError } from '../errors.js';
import type { ByteReader } from '../stream/index.js';
import { RecordType } from '../savevm/index.js';
import { hasKey, structPlan, type FieldGroup, type PlannedField, type StructPlan } from './field-plan.js';
import type { VmdescStruct } from './vmdesc.js';
import type { FieldValue, StructValue } from './values.js';

/** Receives a struct as it is read, in stream order. `S` is the sink's handle on one open struct. */
export interface StructSink<S> {
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
   * A subsection begins, `name` and `version` as read from the stream. `keyTaken` says a field or an earlier
   * subsection of `s` already has that key (Python's dict keeps the key's place and takes the new value).
   */
  subsection(s: S, name: string, version: number, keyTaken: boolean, plan: StructPlan): S;
  /** A struct opened by field() or subsection() has been read whole. */
  end(s: S): void;
}

/** Reads the fields, then the subsections, of one struct into `s`. */
export function readStruct<S>(r: ByteReader, plan: StructPlan, sink: StructSink<S>, s: S): void {
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
            readStruct(r, f.struct, sink, child);
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
    try {
      readStruct(r, sub, sink, child);
    } catch (e) {
      throw prefixStreamError(e, name);
    }
    sink.end(child);
  }
}

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
      const bytes = r.getBuffer(size);
      let v = 0n;
      for (const b of bytes) v = (v << 8n) | BigInt(b);
      return signed && size > 0 ? BigInt.asIntN(size * 8, v) : v;
    }
  }
}

function readLeaf(r: ByteReader, f: PlannedField): FieldValue {
  const { type, size } = f.desc;
  if (f.kind === 'int') return { kind: 'int', type, size, signed: f.signed, value: readInt(r, size, f.signed) };
  if (f.kind === 'bool') return { kind: 'bool', value: r.getByte() !== 0 };
  // Copied: the reader's bytes are reused once the section is done.
  return { kind: 'bytes', type, value: r.getBuffer(size).slice() };
}

/** Builds the value tree; a struct's entries are added as they begin, in stream order. */
const treeSink: StructSink<StructValue> = {
  group() {},
  leaf(s, r, f, k) {
    const value = readLeaf(r, f);
    s.fields.push(f.indexed ? { name: f.name, index: f.firstIndex + k, value } : { name: f.name, value });
  },
  run: () => false,
  field(s, f, k) {
    const child: StructValue = { fields: [], subsections: [] };
    const value: FieldValue = { kind: 'struct', value: child };
    s.fields.push(f.indexed ? { name: f.name, index: f.firstIndex + k, value } : { name: f.name, value });
    return child;
  },
  groupEnd() {},
  subsection(s, name, version) {
    const child: StructValue = { fields: [], subsections: [] };
    s.subsections.push({ name, version, value: child });
    return child;
  },
  end() {},
};

/** Reads past everything, keeping nothing: for callers that need only where a body ends. */
const skipSink: StructSink<null> = {
  group() {},
  // Every leaf reads exactly its size (a bool leaf is one of size 1).
  leaf: (_s, r, f) => r.skip(f.desc.size),
  run(_s, r, f) {
    const size = f.struct === null ? f.desc.size : f.struct.fixedSize;
    if (size < 0 || r.remaining < f.count * size) return false;
    r.skip(f.count * size);
    return true;
  },
  field: () => null,
  groupEnd() {},
  subsection: () => null,
  end() {},
};

/** Reads past one struct body as decodeStruct would read it, with the same errors, building nothing. */
export function skipStruct(r: ByteReader, desc: VmdescStruct): void {
  readStruct(r, structPlan(desc), skipSink, null);
}

/** Decodes one struct body (fields, then subsections) into values. Buffers are copied. */
export function decodeStruct(r: ByteReader, desc: VmdescStruct): StructValue {
  const root: StructValue = { fields: [], subsections: [] };
  readStruct(r, structPlan(desc), treeSink, root);
  return root;
}
