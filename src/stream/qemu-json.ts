/**
 * JSON text exactly as QEMU's JSON writer prints it in compact mode (qobject/json-writer.c, QEMU 7.2),
 * for everything vmstate writes in QEMU's JSON: the VMDESCRIPTION trailer and QMP messages.
 *
 *   value   = object | array | string | number | true | false | null
 *   object  = "{" [ string ": " value *( ", " string ": " value ) ] "}"
 *   array   = "[" [ value *( ", " value ) ] "]"
 *   string  = '"' chars '"'   with \" \\ \b \f \n \r \t, and every other character below U+0020 or from
 *                             U+007F up as an uppercase \uXXXX per UTF-16 unit (astral: a surrogate pair)
 *
 * The writer streams: members go out as they are given, so a description is written while its device
 * is saved.
 */

const SHORT_ESCAPES: Readonly<Record<string, string>> = { '"': '\\"', '\\': '\\\\', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t' };
// eslint-disable-next-line no-control-regex
const SPECIAL = /["\\\u0000-\u001f\u007f-\uffff]/g;
// eslint-disable-next-line no-control-regex
const HAS_SPECIAL = /["\\\u0000-\u001f\u007f-\uffff]/;

/** A string literal the way QEMU quotes it. */
export function qemuJsonString(s: string): string {
  if (!HAS_SPECIAL.test(s)) return `"${s}"`;
  return `"${s.replace(SPECIAL, (c) => SHORT_ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`)}"`;
}

/** Writes one JSON text member by member; `key` is given inside objects and left out inside arrays. */
export class QemuJsonWriter {
  private readonly parts: string[] = [];
  /** Per open container: has it got a member yet? */
  private readonly first: boolean[] = [];

  private sep(key?: string): void {
    const n = this.first.length;
    if (n > 0) {
      if (this.first[n - 1]) this.first[n - 1] = false;
      else this.parts.push(', ');
    }
    if (key !== undefined) this.parts.push(qemuJsonString(key), ': ');
  }

  private open(key: string | undefined, bracket: '{' | '['): void {
    this.sep(key);
    this.parts.push(bracket);
    this.first.push(true);
  }

  private close(bracket: '}' | ']'): void {
    this.first.pop();
    this.parts.push(bracket);
  }

  startObject(key?: string): void {
    this.open(key, '{');
  }

  endObject(): void {
    this.close('}');
  }

  startArray(key?: string): void {
    this.open(key, '[');
  }

  endArray(): void {
    this.close(']');
  }

  str(key: string | undefined, value: string): void {
    this.sep(key);
    this.parts.push(qemuJsonString(value));
  }

  int(key: string | undefined, value: number): void {
    this.sep(key);
    this.parts.push(String(value));
  }

  /**
   * Any JSON-like value, as QMP replies hold them: objects by their own enumerable members (members
   * holding `undefined` left out, `toJSON()` honoured), `undefined` array elements and non-finite
   * numbers as null, bigints as integers.
   */
  value(key: string | undefined, v: unknown): void {
    if (typeof v === 'string') return this.str(key, v);
    if (typeof v === 'number') return this.raw(key, Number.isFinite(v) ? String(v) : 'null');
    if (typeof v === 'bigint' || typeof v === 'boolean') return this.raw(key, String(v));
    if (typeof v !== 'object' || v === null) return this.raw(key, 'null');
    const toJSON = (v as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function') return this.value(key, toJSON.call(v));
    if (Array.isArray(v)) {
      this.startArray(key);
      for (const item of v) this.value(undefined, item === undefined ? null : item);
      this.endArray();
      return;
    }
    this.startObject(key);
    for (const [k, member] of Object.entries(v)) if (member !== undefined) this.value(k, member);
    this.endObject();
  }

  /** Raw literal text (true, false, null, a number as written). */
  raw(key: string | undefined, text: string): void {
    this.sep(key);
    this.parts.push(text);
  }

  /** Position in the output, for capture(). */
  get mark(): number {
    return this.parts.length;
  }

  /** The text written since `mark`. */
  capture(mark: number): string {
    return this.parts.slice(mark).join('');
  }

  /** Appends members written earlier (captured text starting with a member) into the open object. */
  members(text: string): void {
    this.sep();
    this.parts.push(text);
  }

  toString(): string {
    return this.parts.join('');
  }
}

/** `value` as one line of QEMU's JSON (a QMP message). */
export function formatQemuJson(value: unknown): string {
  const w = new QemuJsonWriter();
  w.value(undefined, value);
  return w.toString();
}
