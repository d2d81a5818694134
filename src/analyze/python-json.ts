/**
 * JSON text exactly as Python's `json` module writes it with `indent=4, separators=(',', ': ')` and the
 * default `ensure_ascii=True`, which is what analyze-migration.py prints. Objects are Maps (insertion
 * order, any key) or plain objects; bigints print as integers.
 */

/** A value the Python-style writer accepts. */
export type PyJson = string | number | bigint | boolean | null | readonly PyJson[] | ReadonlyMap<string, PyJson> | { readonly [k: string]: PyJson };

const ESCAPES: Record<string, string> = { '"': '\\"', '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\b': '\\b', '\f': '\\f' };
// Python escapes everything outside printable ASCII (space to tilde) when ensure_ascii is on.
// eslint-disable-next-line no-control-regex
const NEEDS_ESCAPE = /["\\\u0000-\u001f\u007f-\uffff]/;
// eslint-disable-next-line no-control-regex
const NEEDS_ESCAPE_G = /["\\\u0000-\u001f\u007f-\uffff]/g;

/** A JSON string literal with Python's ensure_ascii escaping (lowercase \uXXXX). */
export function pyString(s: string): string {
  if (!NEEDS_ESCAPE.test(s)) return `"${s}"`;
  return `"${s.replace(NEEDS_ESCAPE_G, (c) => ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}"`;
}

/** Serializes `value` like `json.dumps(value, indent=4, separators=(',', ': '))`. */
export function pyDumps(value: PyJson): string {
  const out: string[] = [];
  write(value, '', out);
  return out.join('');
}

function write(v: PyJson, indent: string, out: string[]): void {
  if (typeof v === 'string') {
    out.push(pyString(v));
  } else if (typeof v === 'number') {
    out.push(pyNumber(v));
  } else if (typeof v === 'bigint') {
    out.push(v.toString());
  } else if (typeof v === 'boolean') {
    out.push(v ? 'true' : 'false');
  } else if (v === null) {
    out.push('null');
  } else if (Array.isArray(v)) {
    if (v.length === 0) {
      out.push('[]');
      return;
    }
    const inner = indent + '    ';
    out.push('[\n', inner);
    for (let i = 0; i < v.length; i++) {
      if (i > 0) out.push(',\n', inner);
      write(v[i] as PyJson, inner, out);
    }
    out.push('\n', indent, ']');
  } else {
    const entries: Iterable<[string, PyJson]> = v instanceof Map ? v.entries() : Object.entries(v);
    const inner = indent + '    ';
    let first = true;
    for (const [k, item] of entries) {
      out.push(first ? '{\n' : ',\n', inner, pyString(k), ': ');
      first = false;
      write(item, inner, out);
    }
    out.push(first ? '{}' : `\n${indent}}`);
  }
}

/** Python's repr of a float or int as json.dumps prints it. */
function pyNumber(n: number): string {
  if (Number.isInteger(n) && Math.abs(n) < 1e16) return n.toFixed(0);
  if (Number.isNaN(n)) return 'NaN';
  if (!Number.isFinite(n)) return n > 0 ? 'Infinity' : '-Infinity';
  const s = String(n);
  // Python writes 1e-05 where JavaScript writes 1e-5, and always keeps a '.0' on integral floats.
  return s.replace(/e([+-])(\d)$/, 'e$10$2');
}
