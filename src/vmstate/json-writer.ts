/**
 * A streaming JSON writer that produces exactly the text QEMU's JSONWriter does in compact mode
 * (qobject/json-writer.c, QEMU 7.2): `{"a": 1, "b": [2, 3]}`, members separated by ", ", keys by ": ",
 * control characters and everything from 0x7f up as uppercase \uXXXX. The VMDESCRIPTION trailer is
 * written with it, so a description we produce is byte-identical to QEMU's for the same device.
 */

const ESCAPES: Record<string, string> = { '"': '\\"', '\\': '\\\\', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t' };
// eslint-disable-next-line no-control-regex
const SPECIAL = /["\\\u0000-\u001f\u007f-\uffff]/g;
// eslint-disable-next-line no-control-regex
const HAS_SPECIAL = /["\\\u0000-\u001f\u007f-\uffff]/;

/** A string literal the way QEMU quotes it. */
export function qemuJsonString(s: string): string {
  if (!HAS_SPECIAL.test(s)) return `"${s}"`;
  return `"${s.replace(SPECIAL, (c) => ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`)}"`;
}

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

  startObject(key?: string): void {
    this.sep(key);
    this.parts.push('{');
    this.first.push(true);
  }

  endObject(): void {
    this.first.pop();
    this.parts.push('}');
  }

  startArray(key?: string): void {
    this.sep(key);
    this.parts.push('[');
    this.first.push(true);
  }

  endArray(): void {
    this.first.pop();
    this.parts.push(']');
  }

  str(key: string | undefined, value: string): void {
    this.sep(key);
    this.parts.push(qemuJsonString(value));
  }

  int(key: string | undefined, value: number): void {
    this.sep(key);
    this.parts.push(String(value));
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
