/**
 * Decodes a device section body by its vmdesc description, the way analyze-migration.py (QEMU 7.2) reads
 * it: compressed arrays are expanded, each element reads exactly `size` bytes (structs recurse), then each
 * listed subsection is read with its marker, name and version.
 */
import { StreamFormatError, prefixStreamError } from '../errors.js';
import type { ByteReader } from '../stream/index.js';
import { RecordType } from '../savevm/index.js';
import type { VmdescField, VmdescStruct } from './vmdesc.js';
import { intCodec, type FieldEntry, type FieldValue, type StructValue, type SubsectionEntry } from './values.js';

interface ExpandedField {
  readonly name: string;
  readonly index?: number;
  readonly desc: VmdescField;
  readonly int?: { signed: boolean };
}

const expandedCache = new WeakMap<VmdescStruct, readonly ExpandedField[]>();

/** The description's fields with compressed arrays (array_len) unfolded into indexed elements. */
function expand(desc: VmdescStruct): readonly ExpandedField[] {
  let out = expandedCache.get(desc);
  if (out) return out;
  const list: ExpandedField[] = [];
  for (const f of desc.fields) {
    const int = intCodec(f.type);
    if (f.array_len !== undefined) {
      for (let i = 0; i < f.array_len; i++) list.push({ name: f.name, index: i, desc: f, int });
    } else {
      list.push({ name: f.name, index: f.index, desc: f, int });
    }
  }
  expandedCache.set(desc, list);
  out = list;
  return out;
}

/** Decodes one struct body (fields, then subsections). Buffers are copied: the reader's bytes get reused. */
export function decodeStruct(r: ByteReader, desc: VmdescStruct): StructValue {
  const fields: FieldEntry[] = [];
  const listLengths = new Map<string, number>();
  for (const f of expand(desc)) {
    let value: FieldValue;
    try {
      value = decodeField(r, f);
    } catch (e) {
      throw prefixStreamError(e, f.index === undefined ? f.name : `${f.name}[${f.index}]`);
    }
    if (f.index !== undefined) {
      const have = listLengths.get(f.name) ?? 0;
      if (have !== f.index) {
        throw new StreamFormatError(`element index ${f.index} does not follow ${have} elements already read`, { offset: r.offset, path: f.name });
      }
      listLengths.set(f.name, have + 1);
      fields.push({ name: f.name, index: f.index, value });
    } else {
      fields.push({ name: f.name, value });
    }
  }
  const subsections: SubsectionEntry[] = [];
  for (const sub of desc.subsections ?? []) {
    const offset = r.offset;
    const expectName = sub.vmsd_name ?? '';
    const marker = r.getByte();
    if (marker !== RecordType.SUBSECTION) {
      throw new StreamFormatError(`subsection ${expectName} not found: expected marker 0x05, found 0x${marker.toString(16).padStart(2, '0')}`, {
        offset,
        path: expectName,
      });
    }
    const name = r.getCountedString();
    const version = r.getBe32();
    let value: StructValue;
    try {
      value = decodeStruct(r, sub);
    } catch (e) {
      throw prefixStreamError(e, name);
    }
    subsections.push({ name, version, value });
  }
  return { fields, subsections };
}

function decodeField(r: ByteReader, f: ExpandedField): FieldValue {
  const { type, size } = f.desc;
  if (type === 'struct') return { kind: 'struct', value: decodeStruct(r, f.desc.struct as VmdescStruct) };
  if (f.int) return { kind: 'int', type, size, signed: f.int.signed, value: readInt(r, size, f.int.signed) };
  if (type === 'bool' && size === 1) return { kind: 'bool', value: r.getByte() !== 0 };
  return { kind: 'bytes', type, value: r.getBuffer(size).slice() };
}

function readInt(r: ByteReader, size: number, signed: boolean): number | bigint {
  switch (size) {
    case 1: {
      const v = r.getByte();
      return signed ? (v << 24) >> 24 : v;
    }
    case 2: {
      const v = r.getBe16();
      return signed ? (v << 16) >> 16 : v;
    }
    case 4: {
      const v = r.getBe32();
      return signed ? v | 0 : v;
    }
    case 8: {
      const v = r.getBe64();
      return signed ? BigInt.asIntN(64, v) : v;
    }
    default: {
      // Odd sizes do not occur in QEMU's codecs, but the description is untrusted: read them generically.
      const bytes = r.getBuffer(size);
      let v = 0n;
      for (const b of bytes) v = (v << 8n) | BigInt(b);
      return signed && size > 0 ? BigInt.asIntN(size * 8, v) : v;
    }
  }
}
