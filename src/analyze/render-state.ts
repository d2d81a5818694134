/**
 * Renders decoded sections the way analyze-migration.py (QEMU 7.2) prints them, quirks included:
 * integers as zero-padded hex strings with the signed value in parentheses when negative (and the
 * "uint8 equal" / "uint16 equal" codecs read as signed), buffers as space-separated hex bytes, array
 * elements gathered into lists, subsections keyed by the name read from the stream.
 */
import type { PyJson } from './python-json.js';
import type { FieldValue, StructValue } from './values.js';

/** Codecs the script reads as signed although QEMU's values are unsigned. */
const SCRIPT_SIGNED = new Set(['uint8 equal', 'uint16 equal']);

const HEX_BYTE: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Bytes as lowercase hex pairs separated by spaces. */
export function hexBytes(b: Uint8Array): string {
  if (b.length === 0) return '';
  const parts = new Array<string>(b.length);
  for (let i = 0; i < b.length; i++) parts[i] = HEX_BYTE[b[i]];
  return parts.join(' ');
}

/** The script's rendering of an integer of `size` bytes. */
export function renderInt(value: number | bigint, size: number, signed: boolean): string {
  const bits = BigInt(size * 8);
  const big = BigInt(value);
  const unsigned = size > 0 ? BigInt.asUintN(Number(bits), big) : big;
  const hex = `0x${unsigned.toString(16).padStart(size * 2, '0')}`;
  if (!signed || size === 0) return hex;
  const s = BigInt.asIntN(Number(bits), unsigned);
  return s < 0n ? `${hex} (${s})` : hex;
}

function renderField(v: FieldValue): PyJson {
  switch (v.kind) {
    case 'int':
      return renderInt(v.value, v.size, v.signed || SCRIPT_SIGNED.has(v.type));
    case 'bool':
      return v.value;
    case 'bytes':
      return v.type === 'bool' ? v.value.length > 0 && v.value[0] !== 0 : hexBytes(v.value);
    case 'struct':
      return renderStruct(v.value);
  }
}

/** A struct as an ordered map, with Python dict semantics (a repeated key keeps its place, takes the new value). */
export function renderStruct(s: StructValue): Map<string, PyJson> {
  const out = new Map<string, PyJson>();
  for (const f of s.fields) {
    const v = renderField(f.value);
    if (f.index === undefined) {
      out.set(f.name, v);
    } else {
      let list = out.get(f.name);
      if (!Array.isArray(list)) {
        list = [];
        out.set(f.name, list);
      }
      (list as PyJson[]).push(v);
    }
  }
  for (const sub of s.subsections) out.set(sub.name, renderStruct(sub.value));
  return out;
}
