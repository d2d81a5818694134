/**
 * Decoded device state, as a tree of values in stream order: built from a body by the body reader (a
 * sink), and written back to bytes (rewrite). It holds what is needed to render it the way
 * analyze-migration.py does and to encode it again byte for byte.
 */
import type { ByteReader, ByteWriter } from '../stream/index.js';
import { RecordType } from '../savevm/index.js';
import { structPlan, type PlannedField, type StructPlan } from './field-plan.js';
import { readInt, readStruct, type BodySink } from './read-body.js';
import type { AnalyzeScript, LeafRule } from './script-7.2.js';
import { DEFAULT_SCRIPT } from './scripts.js';
import type { VmdescStruct } from './vmdesc.js';

/** An integer field: `value` is a number up to 4 bytes, a bigint above. */
export interface IntValue {
  readonly kind: 'int';
  /** The vmdesc codec name, e.g. `uint32`, `int32 equal`. */
  readonly type: string;
  readonly size: number;
  readonly signed: boolean;
  value: number | bigint;
}

export interface BoolValue {
  readonly kind: 'bool';
  value: boolean;
}

/** Any field decoded as opaque bytes: buffers, timers, PCI config, virtio blobs, old-style `data`. */
export interface BytesValue {
  readonly kind: 'bytes';
  readonly type: string;
  readonly value: Uint8Array;
}

export interface StructFieldValue {
  readonly kind: 'struct';
  readonly value: StructValue;
}

export type FieldValue = IntValue | BoolValue | BytesValue | StructFieldValue;

/** One field element; `index` is set for elements of arrays (which render as JSON lists). */
export interface FieldEntry {
  readonly name: string;
  readonly index?: number;
  readonly value: FieldValue;
}

/** A subsection as sent: its name and version come from the stream. */
export interface SubsectionEntry {
  readonly name: string;
  readonly version: number;
  readonly value: StructValue;
}

/** The body of a device section, a struct field or a subsection. */
export interface StructValue {
  readonly fields: FieldEntry[];
  readonly subsections: SubsectionEntry[];
}

function readLeaf(r: ByteReader, f: PlannedField): FieldValue {
  const { type, size } = f.desc;
  const leaf = f.leaf as LeafRule;
  if (leaf.kind === 'int') return { kind: 'int', type, size, signed: leaf.signed, value: readInt(r, size, leaf.signed) };
  if (leaf.kind === 'bool') return { kind: 'bool', value: r.getByte() !== 0 };
  // Copied: the reader's bytes are reused once the section is done.
  return { kind: 'bytes', type, value: r.getBuffer(size).slice() };
}

/** Builds the tree; a struct's entries are added as they begin, in stream order. */
const treeSink: BodySink<StructValue> = {
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

/** Decodes one struct body (fields, then subsections) into values, read as `script` reads it. Buffers are copied. */
export function decodeStruct(r: ByteReader, desc: VmdescStruct, script: AnalyzeScript = DEFAULT_SCRIPT): StructValue {
  return readValueTree(r, structPlan(desc, script));
}

/** decodeStruct for a body whose plan is at hand. */
export function readValueTree(r: ByteReader, plan: StructPlan): StructValue {
  const root: StructValue = { fields: [], subsections: [] };
  readStruct(r, plan, treeSink, root);
  return root;
}

/** Writes a decoded body back to bytes: the mirror of decodeStruct. */
export function encodeStruct(w: ByteWriter, s: StructValue): void {
  for (const f of s.fields) encodeField(w, f.value);
  for (const sub of s.subsections) {
    w.putByte(RecordType.SUBSECTION);
    w.putCountedString(sub.name);
    w.putBe32(sub.version);
    encodeStruct(w, sub.value);
  }
}

function encodeField(w: ByteWriter, v: FieldValue): void {
  switch (v.kind) {
    case 'struct':
      encodeStruct(w, v.value);
      return;
    case 'bool':
      w.putByte(v.value ? 1 : 0);
      return;
    case 'bytes':
      w.putBuffer(v.value);
      return;
    case 'int':
      encodeInt(w, v);
      return;
  }
}

function encodeInt(w: ByteWriter, v: IntValue): void {
  const n = v.value;
  switch (v.size) {
    case 1:
    case 2:
    case 4:
    case 8:
      w.putBeInt(v.size, n);
      return;
    default: {
      let u = BigInt.asUintN(v.size * 8, BigInt(n));
      const bytes = new Uint8Array(v.size);
      for (let i = v.size - 1; i >= 0; i--) {
        bytes[i] = Number(u & 0xffn);
        u >>= 8n;
      }
      w.putBuffer(bytes);
    }
  }
}
