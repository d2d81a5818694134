/**
 * `--set` edits: `IDSTR[#INSTANCE]:FIELD.PATH=VALUE`. The field path names keys as `vmstate analyze`
 * prints them; keys may themselves hold dots and brackets (`parent_obj.parent_obj`, `config[1]`), so each
 * step takes the longest key that fits. A trailing `[N]` picks an array element or one byte of a buffer.
 */
import { UsageError } from '../errors.js';
import type { FieldValue, StructValue } from './value-tree.js';

/** One parsed `--set`. */
export interface FieldEdit {
  readonly spec: string;
  readonly idstr: string;
  readonly instanceId: number;
  readonly path: string;
  readonly value: string;
}

/** Parses `IDSTR[#INSTANCE]:FIELD.PATH=VALUE`; the instance defaults to 0. */
export function parseEdit(spec: string): FieldEdit {
  const eq = spec.indexOf('=');
  const target = eq >= 0 ? spec.slice(0, eq) : '';
  const colon = target.lastIndexOf(':');
  if (eq < 0 || colon <= 0 || colon === target.length - 1) {
    throw new UsageError(`--set ${spec}: expected IDSTR[#INSTANCE]:FIELD.PATH=VALUE`, { spec });
  }
  let idstr = target.slice(0, colon);
  let instanceId = 0;
  const hash = idstr.lastIndexOf('#');
  if (hash >= 0) {
    const inst = idstr.slice(hash + 1);
    if (!/^\d+$/.test(inst)) throw new UsageError(`--set ${spec}: instance "${inst}" is not a number`, { spec });
    instanceId = Number(inst);
    idstr = idstr.slice(0, hash);
  }
  return { spec, idstr, instanceId, path: target.slice(colon + 1), value: spec.slice(eq + 1) };
}

/** Applies an edit to a decoded device body; throws UsageError naming what did not fit. */
export function applyEdit(body: StructValue, edit: FieldEdit): void {
  const fail = (why: string): never => {
    throw new UsageError(`--set ${edit.spec}: ${why}`, { spec: edit.spec });
  };
  let struct: StructValue = body;
  let rest = edit.path;
  for (;;) {
    const key = longestKey(struct, rest);
    if (key === null) return fail(`no field matches "${rest}"`);
    rest = rest.slice(key.length);
    const sub = struct.subsections.find((s) => s.name === key);
    const elems = struct.fields.filter((f) => f.name === key);
    let value: FieldValue | undefined;
    if (elems.length > 0 && elems[0].index !== undefined) {
      const m = /^\[([^\]]+)\]/.exec(rest);
      if (!m) return fail(`"${key}" is an array: give an element index`);
      const i = parseIndex(m[1], fail);
      const el = elems.find((f) => f.index === i);
      if (!el) return fail(`"${key}" has no element ${i}`);
      value = el.value;
      rest = rest.slice(m[0].length);
    } else if (elems.length > 0) {
      value = elems[elems.length - 1].value;
    }
    if (value === undefined && sub) {
      if (rest === '') return fail(`"${key}" is a subsection: name a field inside it`);
      struct = sub.value;
      rest = rest.slice(1);
      continue;
    }
    if (value === undefined) return fail(`no field matches "${key}"`);
    if (value.kind === 'struct') {
      if (!rest.startsWith('.')) return fail(`"${key}" is a struct: name a field inside it`);
      struct = value.value;
      rest = rest.slice(1);
      continue;
    }
    setLeaf(value, rest, edit.value, fail);
    return;
  }
}

function longestKey(s: StructValue, path: string): string | null {
  let best: string | null = null;
  const consider = (k: string) => {
    if (!path.startsWith(k)) return;
    const next = path[k.length];
    if (next !== undefined && next !== '.' && next !== '[') return;
    if (best === null || k.length > best.length) best = k;
  };
  for (const f of s.fields) consider(f.name);
  for (const sub of s.subsections) consider(sub.name);
  return best;
}

function parseIndex(text: string, fail: (why: string) => never): number {
  const n = /^0x[0-9a-f]+$/i.test(text) ? parseInt(text, 16) : /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n)) fail(`index "${text}" is not a number`);
  return n;
}

function parseInteger(text: string, fail: (why: string) => never): bigint {
  const t = text.trim();
  if (!/^-?(0x[0-9a-f]+|\d+)$/i.test(t)) return fail(`value "${text}" is not an integer`);
  return t.startsWith('-') ? -BigInt(t.slice(1)) : BigInt(t);
}

function setLeaf(v: FieldValue, rest: string, text: string, fail: (why: string) => never): void {
  if (v.kind === 'bytes') {
    const m = /^\[([^\]]+)\]$/.exec(rest);
    if (m) {
      const i = parseIndex(m[1], fail);
      if (i >= v.value.length) fail(`byte ${i} is past the end of a ${v.value.length}-byte buffer`);
      const b = parseInteger(text, fail);
      if (b < 0n || b > 255n) fail(`byte value ${text} is not between 0 and 255`);
      v.value[i] = Number(b);
      return;
    }
    if (rest !== '') fail(`unexpected "${rest}" after a buffer`);
    const bytes = text.trim().split(/\s+/);
    if (bytes.length !== v.value.length || !bytes.every((b) => /^[0-9a-f]{2}$/i.test(b))) {
      fail(`a ${v.value.length}-byte buffer takes ${v.value.length} space-separated hex bytes`);
    }
    bytes.forEach((b, i) => (v.value[i] = parseInt(b, 16)));
    return;
  }
  if (rest !== '') fail(`unexpected "${rest}" after a scalar field`);
  if (v.kind === 'bool') {
    if (!/^(true|false|0|1)$/.test(text)) fail(`value "${text}" is not a boolean (true, false, 1, 0)`);
    v.value = text === 'true' || text === '1';
    return;
  }
  if (v.kind !== 'int') return;
  const n = parseInteger(text, fail);
  const bits = BigInt(v.size * 8);
  const min = v.signed ? -(1n << (bits - 1n)) : 0n;
  const max = (1n << bits) - 1n;
  if (n < min || n > max) fail(`value ${text} does not fit ${v.type} (${v.size} bytes)`);
  const stored = v.signed ? BigInt.asIntN(Number(bits), n) : n;
  v.value = v.size <= 4 ? Number(stored) : stored;
}
