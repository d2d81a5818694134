/**
 * Renders decoded sections the way analyze-migration.py (QEMU 7.2) prints them, quirks included:
 * integers as zero-padded hex strings with the signed value in parentheses when negative (and the
 * "uint8 equal" / "uint16 equal" codecs read as signed), buffers as space-separated hex bytes, array
 * elements gathered into lists, subsections keyed by the name read from the stream.
 */
import { scriptShowsSigned } from './field-plan.js';
import type { PyJson } from './python-json.js';
import { hexBytes, renderInt } from './script-format.js';
import type { FieldValue, StructValue } from './values.js';

function renderField(v: FieldValue): PyJson {
  switch (v.kind) {
    case 'int':
      return renderInt(v.value, v.size, scriptShowsSigned(v.type, v.signed));
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
