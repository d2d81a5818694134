/**
 * Any v86 state value as self-describing bytes, for the few slots whose type depends on v86's
 * configuration (slots.ts `anyValue`). One tag byte, then:
 *
 *   0 null   1 false   2 true   3 number: float64, big-endian
 *   4 string: uint32 byte length, UTF-8      5 array: uint32 count, the elements
 *   6 typed array: uint8 kind (index in KINDS), uint32 byte length, the bytes as v86 holds them
 *   7 Map: uint32 count, then key and value of each entry
 *
 * Decoding bounds every length by the bytes left, and nesting by MAX_DEPTH.
 */
import { StreamFormatError } from '../errors.js';
import { ByteReader, ByteWriter } from '../stream/index.js';
import type { V86TypedArray, V86Value } from './state-file.js';

const KINDS = [Uint8Array, Int8Array, Uint16Array, Int16Array, Uint32Array, Int32Array, Float32Array, Float64Array] as const;
const MAX_DEPTH = 32;

/** The bytes that stand for `v`. */
export function encodeV86Value(v: V86Value): Uint8Array {
  const w = new ByteWriter(64);
  const put = (x: V86Value): void => {
    if (x === null) w.putByte(0);
    else if (typeof x === 'boolean') w.putByte(x ? 2 : 1);
    else if (typeof x === 'number') {
      w.putByte(3);
      const b = new Uint8Array(8);
      new DataView(b.buffer).setFloat64(0, x);
      w.putBuffer(b);
    } else if (typeof x === 'string') {
      const b = new TextEncoder().encode(x);
      w.putByte(4);
      w.putBeInt(4, b.length);
      w.putBuffer(b);
    } else if (Array.isArray(x)) {
      w.putByte(5);
      w.putBeInt(4, x.length);
      x.forEach(put);
    } else if (ArrayBuffer.isView(x)) {
      w.putByte(6);
      w.putByte(KINDS.findIndex((k) => x instanceof k));
      w.putBeInt(4, x.byteLength);
      w.putBuffer(new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
    } else {
      w.putByte(7);
      w.putBeInt(4, x.map.length);
      for (const [k, e] of x.map) {
        put(k);
        put(e);
      }
    }
  };
  put(v);
  return w.take();
}

/** The value `bytes` stand for; StreamFormatError (path `name`) for bytes that are not one value. */
export function decodeV86Value(bytes: Uint8Array, name: string): V86Value {
  const r = new ByteReader(bytes);
  const bad = (message: string) => new StreamFormatError(message, { offset: r.offset, path: name });
  const count = (unit: number): number => {
    const n = r.getBeInt(4, false) as number;
    if (n * unit > r.remaining) throw bad(`a count of ${n} is more than the ${r.remaining} bytes left`);
    return n;
  };
  const get = (depth: number): V86Value => {
    if (depth > MAX_DEPTH) throw bad(`values nest deeper than ${MAX_DEPTH}`);
    const tag = r.getByte();
    switch (tag) {
      case 0:
        return null;
      case 1:
        return false;
      case 2:
        return true;
      case 3: {
        const b = r.getBuffer(8);
        return new DataView(b.buffer, b.byteOffset, 8).getFloat64(0);
      }
      case 4:
        return new TextDecoder().decode(r.getBuffer(count(1)));
      case 5:
        return Array.from({ length: count(1) }, () => get(depth + 1));
      case 6: {
        const kind = KINDS[r.getByte()];
        if (!kind) throw bad('unknown typed array kind');
        const b = r.getBuffer(count(1)).slice();
        if (b.length % kind.BYTES_PER_ELEMENT) throw bad(`${b.length} bytes are not whole ${kind.name} elements`);
        return new kind(b.buffer, 0, b.length / kind.BYTES_PER_ELEMENT) as V86TypedArray;
      }
      case 7:
        return { map: Array.from({ length: count(2) }, () => [get(depth + 1), get(depth + 1)] as const) };
      default:
        throw bad(`unknown value tag ${tag}`);
    }
  };
  const v = get(0);
  if (r.remaining) throw bad(`${r.remaining} bytes after the value`);
  return v;
}
