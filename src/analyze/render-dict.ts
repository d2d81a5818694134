/**
 * The reference renderer: a decoded body as the dict analyze-migration.py builds for it, under one
 * script's rules (Python dict semantics: array elements gathered into lists, a repeated key keeping its
 * place and taking the new value, subsections keyed by the name read from the stream). pyDumps of this
 * dict is the script's text; the JSON fast path must print exactly that.
 */
import type { PyJson } from './python-json.js';
import { hexBytes, renderInt, type AnalyzeScript, type LeafRule } from './script-7.2.js';
import { DEFAULT_SCRIPT } from './scripts.js';
import type { FieldValue, StructValue } from './value-tree.js';

function renderField(v: FieldValue, script: AnalyzeScript): PyJson {
  switch (v.kind) {
    case 'int':
      return renderInt(v.value, v.size, script.leaf(v.type, v.size).shownSigned);
    case 'bool':
      return v.value;
    case 'bytes':
      return renderBytes(v.value, script.leaf(v.type, v.value.length).shown);
    case 'struct':
      return renderStruct(v.value, script);
  }
}

function renderBytes(b: Uint8Array, shown: LeafRule['shown']): PyJson {
  if (shown === 'bool') return b.length > 0 && b[0] !== 0;
  if (shown === 'nullptr') return 'nullptr';
  return hexBytes(b);
}

/** A struct as the script's ordered dict. */
export function renderStruct(s: StructValue, script: AnalyzeScript = DEFAULT_SCRIPT): Map<string, PyJson> {
  const out = new Map<string, PyJson>();
  for (const f of s.fields) {
    const v = renderField(f.value, script);
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
  for (const sub of s.subsections) out.set(sub.name, renderStruct(sub.value, script));
  return out;
}
