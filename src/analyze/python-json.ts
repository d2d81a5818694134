/**
 * JSON text exactly as Python's `json` module writes it with `indent=4, separators=(',', ': ')` and the
 * default `ensure_ascii=True`, which is what analyze-migration.py prints. Objects are Maps (insertion
 * order, any key) or plain objects; bigints print as integers. PyJsonWriter does the writing.
 */
import { PyJsonWriter } from './py-json-writer.js';

/** A value the Python-style writer accepts. */
export type PyJson = string | number | bigint | boolean | null | readonly PyJson[] | ReadonlyMap<string, PyJson> | { readonly [k: string]: PyJson };

/** Serializes `value` like `json.dumps(value, indent=4, separators=(',', ': '))`. */
export function pyDumps(value: PyJson): string {
  const w = new PyJsonWriter();
  w.value(value);
  return w.text();
}
