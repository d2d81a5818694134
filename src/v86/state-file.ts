/**
 * v86's saved state (`V86.save_state()`, v86's src/state.js, state version 6), read and written byte for
 * byte. Layout, all little-endian:
 *
 *   0   int32 magic 0x86768676
 *   4   int32 version (6)
 *   8   int32 total length of the file
 *   12  int32 length L of the JSON block
 *   16  L bytes of JSON: {"buffer_infos":[{"offset":O,"length":N},...],"state":TREE}
 *   then, from 16 + L rounded up to 4, the buffers: buffer i at that start + O_i, each starting 4-aligned
 *
 * TREE is the CPU's get_state(): arrays nest each device's own get_state(); a typed array is the object
 * {"__state_type__":"Int32Array","buffer_id":i} naming buffer i, a Map is {"__state_type__":"Map",
 * "args":[[k,v],...]}. Reading turns placeholders back into typed arrays (viewing the file's bytes where
 * alignment allows); writing numbers the buffers again in the order v86 does (depth first, by index), so
 * a tree read from a file writes that file again. A zstd-compressed state is refused (v86 reads it only
 * through its wasm decoder).
 */
import { StreamFormatError, UsageError } from '../errors.js';

/** A value in v86's state tree. */
export type V86Value = null | boolean | number | string | V86TypedArray | V86Value[] | V86Map;

/** The typed arrays v86 saves (its CONSTRUCTOR_TABLE). */
export type V86TypedArray = Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | Float32Array | Float64Array;

/** A Map in the tree, kept as its entries in order. */
export interface V86Map {
  readonly map: readonly (readonly [V86Value, V86Value])[];
}

export const V86_STATE_MAGIC = 0x86768676;
export const V86_STATE_VERSION = 6;
const HEADER_BYTES = 16;
const ZSTD_MAGIC = 0xfd2fb528;
/** A JSON block beyond this is refused before it is decoded (a booted Linux's is about 10 KiB). */
const MAX_JSON_BYTES = 64 << 20;

const TYPED: Readonly<Record<string, { new (b: ArrayBuffer, offset: number, length: number): V86TypedArray; readonly BYTES_PER_ELEMENT: number }>> = {
  Uint8Array,
  Int8Array,
  Uint16Array,
  Int16Array,
  Uint32Array,
  Int32Array,
  Float32Array,
  Float64Array,
};

/** The name v86 writes for a typed array's constructor. */
export function typedArrayName(a: V86TypedArray): string {
  return a.constructor.name;
}

function isTyped(v: unknown): v is V86TypedArray {
  return ArrayBuffer.isView(v) && !(v instanceof DataView);
}

/** Reads a save_state() file into its tree; malformed files are StreamFormatError with the byte offset. */
export function readV86State(file: Uint8Array): V86Value[] {
  const bad = (message: string, offset: number) => new StreamFormatError(`v86 state: ${message}`, { offset, path: '' });
  if (file.length < HEADER_BYTES) throw bad(`${file.length} bytes is shorter than the 16-byte header`, 0);
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  if (dv.getUint32(0, true) === ZSTD_MAGIC) throw bad('the state is zstd-compressed; save it uncompressed', 0);
  const magic = dv.getUint32(0, true);
  if (magic !== V86_STATE_MAGIC) throw bad(`bad magic 0x${magic.toString(16)}, expected 0x${V86_STATE_MAGIC.toString(16)}`, 0);
  const version = dv.getInt32(4, true);
  if (version !== V86_STATE_VERSION) throw bad(`version ${version}, only ${V86_STATE_VERSION} is read`, 4);
  const total = dv.getInt32(8, true);
  if (total !== file.length) throw bad(`the header says ${total} bytes, the file has ${file.length}`, 8);
  const jsonLength = dv.getInt32(12, true);
  if (jsonLength < 0 || jsonLength > MAX_JSON_BYTES || HEADER_BYTES + jsonLength > file.length) {
    throw bad(`JSON block of ${jsonLength} bytes does not fit in the file`, 12);
  }
  let info: unknown;
  try {
    info = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(file.subarray(HEADER_BYTES, HEADER_BYTES + jsonLength)));
  } catch (e) {
    throw bad(`the JSON block does not parse: ${(e as Error).message}`, HEADER_BYTES);
  }
  const { buffer_infos: infos, state } = (info ?? {}) as { buffer_infos?: unknown; state?: unknown };
  if (!Array.isArray(infos) || !Array.isArray(state)) throw bad('the JSON block lacks buffer_infos or state', HEADER_BYTES);
  const start = (HEADER_BYTES + jsonLength + 3) & ~3;
  const buffers = infos.map((b: unknown, i) => {
    const { offset, length } = (b ?? {}) as { offset?: unknown; length?: unknown };
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || (offset as number) < 0 || (length as number) < 0 || start + (offset as number) + (length as number) > file.length) {
      throw bad(`buffer ${i} lies outside the file`, HEADER_BYTES);
    }
    return file.subarray(start + (offset as number), start + (offset as number) + (length as number));
  });
  const revive = (v: unknown, depth: number): V86Value => {
    if (depth > 64) throw bad('the state tree nests more than 64 levels', HEADER_BYTES);
    if (v === null || typeof v === 'boolean' || typeof v === 'number' || typeof v === 'string') return v;
    if (Array.isArray(v)) return v.map((x) => revive(x, depth + 1));
    const o = v as { __state_type__?: unknown; buffer_id?: unknown; args?: unknown };
    if (o.__state_type__ === 'Map' && Array.isArray(o.args)) {
      return { map: o.args.map((kv: unknown) => (Array.isArray(kv) && kv.length === 2 ? ([revive(kv[0], depth + 1), revive(kv[1], depth + 1)] as const) : (() => { throw bad('a Map entry is not a [key, value] pair', HEADER_BYTES); })())) };
    }
    const ctor = typeof o.__state_type__ === 'string' ? TYPED[o.__state_type__] : undefined;
    const id = o.buffer_id;
    if (!ctor || typeof id !== 'number' || buffers[id] === undefined) throw bad(`unknown value ${JSON.stringify(v).slice(0, 80)}`, HEADER_BYTES);
    const bytes = buffers[id];
    if (bytes.length % ctor.BYTES_PER_ELEMENT !== 0) throw bad(`buffer ${id} is ${bytes.length} bytes, not whole ${o.__state_type__} elements`, HEADER_BYTES);
    // A copy: the tree must not change the file, and a view needs its element alignment.
    const copy = bytes.slice();
    return new ctor(copy.buffer, 0, copy.length / ctor.BYTES_PER_ELEMENT);
  };
  return state.map((v) => revive(v, 0));
}

/** Writes a tree as save_state() would: the same JSON, the same buffer numbering and alignment. */
export function writeV86State(state: readonly V86Value[]): Uint8Array {
  const buffers: Uint8Array[] = [];
  const save = (v: V86Value): unknown => {
    if (v === null || typeof v !== 'object') return v;
    if (Array.isArray(v)) return v.map(save);
    if (isTyped(v)) {
      buffers.push(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
      return { __state_type__: typedArrayName(v), buffer_id: buffers.length - 1 };
    }
    if ('map' in v) return { __state_type__: 'Map', args: v.map.map(([k, x]) => [save(k), save(x)]) };
    throw new UsageError('v86 state: a value that is not null, boolean, number, string, array, typed array or Map');
  };
  const tree = state.map(save);
  const infos: { offset: number; length: number }[] = [];
  let size = 0;
  for (const b of buffers) {
    infos.push({ offset: size, length: b.length });
    size = (size + b.length + 3) & ~3;
  }
  const json = new TextEncoder().encode(JSON.stringify({ buffer_infos: infos, state: tree }));
  const start = (HEADER_BYTES + json.length + 3) & ~3;
  const out = new Uint8Array(start + size);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, V86_STATE_MAGIC, true);
  dv.setInt32(4, V86_STATE_VERSION, true);
  dv.setInt32(8, out.length, true);
  dv.setInt32(12, json.length, true);
  out.set(json, HEADER_BYTES);
  buffers.forEach((b, i) => out.set(b, start + infos[i].offset));
  return out;
}
