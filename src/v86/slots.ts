/**
 * v86 devices as vmstate descriptions. A v86 device's get_state() returns an array whose indices are its
 * fields (`state[3] = this.lsr`); a description here names each index and gives it a type, and from that
 * comes both a vmstate description (Vmsd) and the conversion between v86's array and the description's
 * state object, in both directions, so that array -> stream -> array gives back what v86 saved.
 *
 * Types: v86's device fields are JavaScript numbers (doubles), so `num` travels as QEMU's float64 (be64
 * IEEE 754), which keeps every value exactly; typed arrays travel element by element in their own width
 * (a Uint8Array as a buffer); the raw bytes of v86's wasm structs are described field by field
 * (`wasmStruct`). Indices no slot names are null in v86's array, as they are in what v86 saves.
 */
import { SaveError } from '../errors.js';
import type { ByteReader, ByteWriter } from '../stream/index.js';
import {
  array,
  bool,
  buffer,
  custom,
  defineVmsd,
  i16,
  i32,
  i8,
  struct,
  u16,
  u32,
  u8,
  varray,
  vbuffer,
  type AnyVmsd,
  type CustomCodec,
  type LoadContext,
  type Field,
  type Vmsd,
} from '../vmstate/index.js';
import { decodeV86Value, encodeV86Value } from './value-codec.js';
import type { V86Link, V86Supplier } from './links.js';
import type { V86TypedArray, V86Value } from './state-file.js';

/** QEMU's vmstate_info_float64: a double as big-endian IEEE 754 bits. */
export const float64: CustomCodec<number> = {
  type: 'float64',
  size: 8,
  read: (r: ByteReader) => {
    const b = r.getBuffer(8);
    return new DataView(b.buffer, b.byteOffset, 8).getFloat64(0);
  },
  write: (w: ByteWriter, v: number) => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, v);
    w.putBuffer(b);
  },
  accepts: (v) => typeof v === 'number',
  expected: 'a number',
};

type TypedName = 'Uint8Array' | 'Int8Array' | 'Uint16Array' | 'Int16Array' | 'Uint32Array' | 'Int32Array' | 'Float64Array';

const TYPED: Readonly<Record<TypedName, { readonly ctor: new (n: number) => V86TypedArray; readonly field: (name: string) => Field }>> = {
  Uint8Array: { ctor: Uint8Array, field: (n) => u8(n) },
  Int8Array: { ctor: Int8Array, field: (n) => i8(n) },
  Uint16Array: { ctor: Uint16Array, field: (n) => u16(n) },
  Int16Array: { ctor: Int16Array, field: (n) => i16(n) },
  Uint32Array: { ctor: Uint32Array, field: (n) => u32(n) },
  Int32Array: { ctor: Int32Array, field: (n) => i32(n) },
  Float64Array: { ctor: Float64Array, field: (n) => custom(n, float64) },
};

/** A v86 device (or a nested object's get_state) described: its Vmsd and the two conversions. */
export interface V86Device {
  readonly vmsd: AnyVmsd;
  /** The entries that must be loaded before this device's (interrupt controllers, the PCI host). */
  readonly suppliers: readonly V86Supplier[];
  /** v86's array -> the description's state object; SaveError when a value does not fit its slot. */
  toState(value: V86Value, path: string): Record<string, unknown>;
  /** The state object -> v86's value (its array, as long as v86's get_state makes it). */
  toTree(state: Record<string, unknown>): V86Value;
}

/** One index of a device's array. */
export interface Slot {
  readonly index: number;
  readonly name: string;
  readonly fields: readonly Field[];
  toState(v: V86Value, out: Record<string, unknown>, path: string): void;
  toTree(s: Record<string, unknown>): V86Value;
}

function misfit(path: string, v: V86Value, expected: string): SaveError {
  const shown = v === null || typeof v !== 'object' ? JSON.stringify(v) : Array.isArray(v) ? `an array of ${v.length}` : ArrayBuffer.isView(v) ? `a ${v.constructor.name} of ${v.length}` : 'a Map';
  return new SaveError(`v86 holds ${shown} where the description expects ${expected}`, path, { value: shown, expected });
}

/** A number (a JS double in v86), sent as float64. */
export function num(index: number, name: string): Slot {
  return {
    index,
    name,
    fields: [custom(name, float64)],
    toState(v, out, path) {
      if (typeof v !== 'number') throw misfit(`${path}.${name}`, v, 'a number');
      out[name] = v;
    },
    toTree: (s) => s[name] as number,
  };
}

/** A byte that v86 keeps as a number (the PIC's registers, read out of wasm memory). */
export function byte(index: number, name: string): Slot {
  return {
    index,
    name,
    fields: [u8(name)],
    toState(v, out, path) {
      if (typeof v !== 'number') throw misfit(`${path}.${name}`, v, 'a number');
      out[name] = v;
    },
    toTree: (s) => s[name] as number,
  };
}

/** A boolean. */
export function flag(index: number, name: string): Slot {
  return {
    index,
    name,
    fields: [bool(name)],
    toState(v, out, path) {
      if (typeof v !== 'boolean') throw misfit(`${path}.${name}`, v, 'a boolean');
      out[name] = v;
    },
    toTree: (s) => s[name] as boolean,
  };
}

/**
 * A typed array of `length` elements, or of any length with the element count sent first as
 * `<name>_count` (uint32).
 */
export function typed(index: number, name: string, type: TypedName, length?: number): Slot {
  const t = TYPED[type];
  const countName = `${name}_count`;
  const bytes = type === 'Uint8Array';
  const elem = t.field(name) as Exclude<Field, { kind: 'unused' }>;
  let elems: Field;
  if (bytes) elems = length === undefined ? vbuffer(name, countName) : buffer(name, length);
  else elems = (length === undefined ? varray(elem, countName) : array(elem, length)) as Field;
  return {
    index,
    name,
    fields: length === undefined ? [u32(countName), elems] : [elems],
    toState(v, out, path) {
      if (!(v instanceof t.ctor) || (length !== undefined && v.length !== length)) throw misfit(`${path}.${name}`, v, `a ${type} of ${length ?? 'any number of'} elements`);
      if (length === undefined) out[countName] = v.length;
      out[name] = bytes ? v : Array.from(v as ArrayLike<number>);
    },
    toTree(s) {
      const src = s[name] as ArrayLike<number>;
      const a = new t.ctor(src.length);
      for (let i = 0; i < src.length; i++) a[i] = src[i];
      return a;
    },
  };
}

/** A string, as UTF-8 bytes after their length (`<name>_length`, uint32). */
export function text(index: number, name: string): Slot {
  const lengthName = `${name}_length`;
  return {
    index,
    name,
    fields: [u32(lengthName), vbuffer(name, lengthName)],
    toState(v, out, path) {
      if (typeof v !== 'string') throw misfit(`${path}.${name}`, v, 'a string');
      const b = new TextEncoder().encode(v);
      out[lengthName] = b.length;
      out[name] = b;
    },
    toTree: (s) => new TextDecoder().decode(s[name] as Uint8Array),
  };
}

/**
 * Any value, self-described (value-codec.ts) after its length (`<name>_length`, uint32): for the few
 * slots whose type changes with v86's configuration (a disk's buffer, the firmware's fw_value).
 */
export function anyValue(index: number, name: string): Slot {
  const lengthName = `${name}_length`;
  return {
    index,
    name,
    fields: [u32(lengthName), vbuffer(name, lengthName)],
    toState(v, out) {
      const b = encodeV86Value(v);
      out[lengthName] = b.length;
      out[name] = b;
    },
    toTree: (s) => decodeV86Value(s[name] as Uint8Array, name),
  };
}

/** A nested object's get_state() (an IDE channel's drive, a floppy drive), as a struct. */
export function nested(index: number, name: string, device: V86Device): Slot {
  return {
    index,
    name,
    fields: [struct(name, device.vmsd as Vmsd<unknown>) as Field],
    toState(v, out, path) {
      out[name] = device.toState(v, `${path}.${name}`);
    },
    toTree: (s) => device.toTree(s[name] as Record<string, unknown>),
  };
}

/** A slot v86 may hold null in (an absent IDE channel, an unused PCI slot): `<name>_present` (bool) says which. */
export function optional(slot: Slot): Slot {
  const presentName = `${slot.name}_present`;
  const exists = (s: Record<string, unknown>) => s[presentName] === true;
  return {
    index: slot.index,
    name: slot.name,
    fields: [bool(presentName), ...slot.fields.map((f) => ({ ...f, exists }) as Field)],
    toState(v, out, path) {
      out[presentName] = v !== null;
      if (v !== null) slot.toState(v, out, path);
    },
    toTree: (s) => (s[presentName] === true ? slot.toTree(s) : null),
  };
}

/**
 * A device whose get_state() array is `length` long (indices past the last slot are still written, as
 * null), with a slot per index that holds a value.
 */
export function v86Device(name: string, version: number, length: number, slots: readonly Slot[], links: readonly V86Link[] = []): V86Device {
  const sorted = [...slots].sort((a, b) => a.index - b.index);
  const postLoad = links.length ? (s: Record<string, unknown>, ctx: LoadContext) => links.forEach((l) => l.postLoad(s, ctx)) : undefined;
  const vmsd = defineVmsd({ name, version, fields: sorted.flatMap((s) => s.fields), ...(postLoad ? { postLoad } : {}) });
  return {
    vmsd,
    suppliers: links.flatMap((l) => l.suppliers),
    toState(value, path) {
      if (!Array.isArray(value) || value.length !== length) throw misfit(path, value, `an array of ${length}`);
      const out: Record<string, unknown> = {};
      const named = new Set(sorted.map((s) => s.index));
      value.forEach((v, i) => {
        if (v !== null && !named.has(i)) throw misfit(`${path}[${i}]`, v, 'null (no field of the description is at this index)');
      });
      for (const s of sorted) s.toState(value[s.index], out, path);
      return out;
    },
    toTree(state) {
      const out = new Array<V86Value>(length).fill(null);
      for (const s of sorted) out[s.index] = s.toTree(state);
      return out;
    },
  };
}

/** One field of a wasm struct: its offset in bytes and its type. */
export interface WasmField {
  readonly name: string;
  readonly offset: number;
  readonly type: 'u8' | 'bool' | 'u32' | 'f64' | 'u32x8' | `u32x${number}`;
}

/**
 * The raw bytes of a #[repr(C)] Rust struct in v86's wasm memory (APIC, IOAPIC), described field by
 * field: the stream carries the fields, and the bytes are written back little-endian at their offsets.
 * Bytes no field covers (padding) must be zero, or saving refuses.
 */
export function wasmStruct(name: string, version: number, size: number, layout: readonly WasmField[], suppliers: readonly V86Supplier[] = []): V86Device {
  const fieldOf = (f: WasmField): Field => {
    if (f.type === 'u8') return u8(f.name);
    if (f.type === 'bool') return bool(f.name);
    if (f.type === 'u32') return u32(f.name);
    if (f.type === 'f64') return custom(f.name, float64);
    return array(u32(f.name), Number(f.type.slice(4)));
  };
  const widthOf = (f: WasmField) => (f.type === 'u8' || f.type === 'bool' ? 1 : f.type === 'u32' ? 4 : f.type === 'f64' ? 8 : 4 * Number(f.type.slice(4)));
  const vmsd = defineVmsd({ name, version, fields: layout.map(fieldOf) });
  return {
    vmsd,
    suppliers,
    toState(value, path) {
      if (!(value instanceof Uint8Array) || value.length !== size) throw misfit(path, value, `a Uint8Array of ${size}`);
      const dv = new DataView(value.buffer, value.byteOffset, value.byteLength);
      const covered = new Uint8Array(size);
      const out: Record<string, unknown> = {};
      for (const f of layout) {
        covered.fill(1, f.offset, f.offset + widthOf(f));
        if (f.type === 'u8') out[f.name] = dv.getUint8(f.offset);
        else if (f.type === 'bool') out[f.name] = dv.getUint8(f.offset) !== 0;
        else if (f.type === 'u32') out[f.name] = dv.getUint32(f.offset, true);
        else if (f.type === 'f64') out[f.name] = dv.getFloat64(f.offset, true);
        else out[f.name] = Array.from({ length: widthOf(f) / 4 }, (_, i) => dv.getUint32(f.offset + 4 * i, true));
      }
      covered.forEach((c, i) => {
        if (!c && value[i] !== 0) throw new SaveError(`byte ${i} is padding in the layout but holds 0x${value[i].toString(16)}`, path);
      });
      return out;
    },
    toTree(state) {
      const out = new Uint8Array(size);
      const dv = new DataView(out.buffer);
      for (const f of layout) {
        const v = state[f.name];
        if (f.type === 'u8') dv.setUint8(f.offset, v as number);
        else if (f.type === 'bool') dv.setUint8(f.offset, v ? 1 : 0);
        else if (f.type === 'u32') dv.setUint32(f.offset, v as number, true);
        else if (f.type === 'f64') dv.setFloat64(f.offset, v as number, true);
        else (v as number[]).forEach((x, i) => dv.setUint32(f.offset + 4 * i, x, true));
      }
      return out;
    },
  };
}
