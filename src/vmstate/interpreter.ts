/**
 * The one interpreter: loads and saves any description, following QEMU 7.2's vmstate_load_state and
 * vmstate_save_state_v (migration/vmstate.c): version gates and exists predicates per field, element
 * counts from constants or other fields, nested structs at their own local version, null-pointer markers,
 * subsections after the fields, hooks around it all, and the VMDESCRIPTION text QEMU writes alongside.
 */
import { LoadError, LoadOrderError, prefixStreamError, SaveError, StreamFormatError } from '../errors.js';
import type { ByteReader, ByteWriter, QemuJsonWriter } from '../stream/index.js';
import type { AnyVmsd, BufferField, Count, Field, LoadContext } from './fields.js';
import { checkIncomingVersion } from './versions.js';
import { VMDESC_RULES_7_2, type VmdescRules } from './vmdesc-rules.js';

/** VMS_NULLPTR_MARKER: stands for a null element of an array of pointers. */
export const NULLPTR_MARKER = 0x30;
/** QEMU_VM_SUBSECTION. */
const SUBSECTION = 0x05;

type State = Record<string, unknown>;

/**
 * A field as the hot loops read it. Field declarations come in many object shapes (each builder spreads
 * its own options), which makes every `f.size` a megamorphic load; these records all have one shape.
 */
interface CompiledField {
  readonly f: Field;
  /** The description the field belongs to. */
  readonly owner: AnyVmsd;
  readonly name: string;
  readonly kind: Field['kind'];
  /** Size of an int, unused or custom field, or of a fixed-size buffer; -1 for a buffer sized by a field. */
  readonly size: number;
  readonly signed: boolean;
  readonly check: 'equal' | 'le' | null;
  /** Element count; null for a single element. */
  readonly count: Count | null;
  readonly nullable: boolean;
  readonly exists: ((s: State, version: number) => boolean) | null;
  readonly version: number;
  readonly sub: AnyVmsd | null;
  readonly read: ((r: ByteReader) => unknown) | null;
  readonly write: ((w: ByteWriter, v: unknown) => void) | null;
  /** The name in the VMDESCRIPTION: `name[k]` when the name repeats in the description. */
  readonly descName: string;
  readonly compressible: boolean;
  /** Saving: the range of a 64-bit int or timer field's bigint (smaller ints are checked by their bits). */
  readonly loBig: bigint;
  readonly hiBig: bigint;
  /** Saving: the most the count field (or for a vbuffer the size field) can hold, if it is an int of this description. */
  readonly countMax: number;
  readonly sizeMax: number;
  /** Saving: whether a custom codec takes the value; null when it does not say. */
  readonly accepts: ((v: unknown) => boolean) | null;
  /** Saving: what one element must be, as error messages say it. */
  readonly expected: string;
}

/** A description as the hot loops read it: one object shape for all descriptions, hooks or not. */
interface CompiledVmsd {
  readonly fields: readonly CompiledField[];
  readonly subsections: readonly AnyVmsd[];
  readonly preSave: ((s: State) => void) | null;
  readonly postSave: ((s: State) => void) | null;
  readonly preLoad: ((s: State, c: LoadContext) => void) | null;
  readonly postLoad: ((s: State, c: LoadContext) => void) | null;
}

const compiled = new WeakMap<AnyVmsd, CompiledVmsd>();

/**
 * The VMDESCRIPTION text of a description depends on the state only through its "shape": which fields
 * exist, element counts and sizes taken from fields, null elements, which subsections are needed. The text
 * is generated once per shape and reused, which keeps a thousand-device snapshot cheap. Descriptions with
 * a pre-save hook anywhere inside are not cached: the hook may change the shape after it was computed.
 */
const textByShape = new WeakMap<VmdescRules, WeakMap<AnyVmsd, Map<number, Map<string, string>>>>();
const preSaveInside = new WeakMap<AnyVmsd, boolean>();

function hasPreSave(vmsd: AnyVmsd): boolean {
  let v = preSaveInside.get(vmsd);
  if (v === undefined) {
    v = !!vmsd.preSave || vmsd.fields.some((f) => f.kind === 'struct' && hasPreSave(f.vmsd)) || vmsd.subsections.some(hasPreSave);
    preSaveInside.set(vmsd, v);
  }
  return v;
}

/**
 * The shape of `s` under `vmsd` at `version`, as a short string; null when `s` has none (an array that is
 * not its count long, a struct element that is not an object), which saving then reports.
 */
function shape(vmsd: AnyVmsd, s: State, version: number): string | null {
  if (isShapeStatic(vmsd)) return '';
  let out = '';
  for (const { cf, present, absent } of shapeFields(vmsd)) {
    // The version is part of the cache key, so only exists predicates need asking here.
    if (!included(cf, s, version)) {
      out += absent;
      continue;
    }
    out += present;
    const n = cf.count === null ? 1 : countIn(cf.count, s);
    const value = s[cf.name];
    if (n < 0 || (cf.count !== null && (value === null || typeof value !== 'object' || (value as ArrayLike<unknown>).length !== n))) return null;
    if (typeof cf.count === 'object' && cf.count !== null) out += `,${n}`;
    if (cf.kind === 'buffer' && cf.size < 0) {
      const size = countIn((cf.f as BufferField).size, s);
      if (size < 0) return null;
      out += `,${size}`;
    }
    const sub = cf.sub;
    if (!cf.nullable && (sub === null || isShapeStatic(sub))) continue;
    for (let i = 0; i < n; i++) {
      const el = cf.count === null ? value : (value as ArrayLike<unknown>)[i];
      if (cf.nullable && (el === null || el === undefined)) out += 'n';
      else if (sub !== null) {
        if (el === null || typeof el !== 'object') return null;
        const inner = shape(sub, el as State, sub.version);
        if (inner === null) return null;
        out += `(${inner})`;
      }
    }
  }
  for (const sub of vmsd.subsections) {
    const needed = !sub.needed || (sub.needed as (s: State) => boolean)(s);
    if (!needed) {
      out += '.';
      continue;
    }
    const inner = shape(sub, s, sub.version);
    if (inner === null) return null;
    out += `+(${inner})`;
  }
  return out;
}

/** A count as shape() reads it: -1 when the count field holds no count. */
function countIn(c: Count, s: State): number {
  if (typeof c === 'number') return c;
  const v = s[c.field];
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v * (c.multiply ?? 1) : -1;
}

interface ShapeField {
  readonly cf: CompiledField;
  /** What the shape string says when the field is sent, and when it is not: its index and + or -. */
  readonly present: string;
  readonly absent: string;
}

const shapeFieldCache = new WeakMap<AnyVmsd, readonly ShapeField[]>();
const shapeStaticCache = new WeakMap<AnyVmsd, boolean>();

/** The fields whose presence, count, size or contents can change a description's text. */
function shapeFields(vmsd: AnyVmsd): readonly ShapeField[] {
  let list = shapeFieldCache.get(vmsd);
  if (!list) {
    list = compile(vmsd)
      .fields.map((cf, index) => ({ cf, present: `${index}+`, absent: `${index}-` }))
      .filter(
        ({ cf }) =>
          cf.exists !== null ||
          (typeof cf.count === 'object' && cf.count !== null) ||
          (cf.kind === 'buffer' && cf.size < 0) ||
          cf.nullable ||
          (cf.sub !== null && !isShapeStatic(cf.sub)),
      );
    shapeFieldCache.set(vmsd, list);
  }
  return list;
}

/** True if the description's text depends on nothing but its version. */
function isShapeStatic(vmsd: AnyVmsd): boolean {
  let v = shapeStaticCache.get(vmsd);
  if (v === undefined) {
    v = shapeFields(vmsd).length === 0 && vmsd.subsections.every((sub) => !sub.needed && isShapeStatic(sub));
    shapeStaticCache.set(vmsd, v);
  }
  return v;
}

function compile(vmsd: AnyVmsd): CompiledVmsd {
  let c = compiled.get(vmsd);
  if (c) return c;
  const counts = new Map<string, number>();
  for (const f of vmsd.fields) counts.set(f.name, (counts.get(f.name) ?? 0) + 1);
  const seen = new Map<string, number>();
  const fields = vmsd.fields.map((f): CompiledField => {
    const k = seen.get(f.name) ?? 0;
    seen.set(f.name, k + 1);
    const size = f.kind === 'int' || f.kind === 'unused' || f.kind === 'custom' ? f.size : f.kind === 'buffer' && typeof f.size === 'number' ? f.size : -1;
    return {
      f,
      owner: vmsd,
      name: f.name,
      kind: f.kind,
      size,
      signed: f.kind === 'int' && f.signed,
      check: (f.kind === 'int' && f.check) || null,
      count: f.count ?? null,
      nullable: f.nullable === true,
      exists: (f.exists as CompiledField['exists']) ?? null,
      version: f.version ?? 0,
      sub: f.kind === 'struct' ? f.vmsd : null,
      read: f.kind === 'custom' ? (f.read as (r: ByteReader) => unknown) : null,
      write: f.kind === 'custom' ? (f.write as (w: ByteWriter, v: unknown) => void) : null,
      descName: (counts.get(f.name) ?? 0) > 1 ? `${f.name}[${k}]` : f.name,
      compressible: canCompress(f),
      loBig: ranges(f).loBig,
      hiBig: ranges(f).hiBig,
      countMax: countFieldMax(vmsd, f.count),
      sizeMax: f.kind === 'buffer' ? countFieldMax(vmsd, f.size) : Infinity,
      accepts: (f.kind === 'custom' && (f.accepts as CompiledField['accepts'])) || null,
      expected: expectedOf(f),
    };
  });
  c = {
    fields,
    subsections: vmsd.subsections,
    preSave: (vmsd.preSave as CompiledVmsd['preSave']) ?? null,
    postSave: (vmsd.postSave as CompiledVmsd['postSave']) ?? null,
    preLoad: (vmsd.preLoad as CompiledVmsd['preLoad']) ?? null,
    postLoad: (vmsd.postLoad as CompiledVmsd['postLoad']) ?? null,
  };
  compiled.set(vmsd, c);
  return c;
}

const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;

/** The values an int or timer field can hold: numbers for up to 4 bytes, bigints for 8. */
function ranges(f: Field): { lo: number; hi: number; loBig: bigint; hiBig: bigint } {
  if (f.kind === 'timer') return { lo: 0, hi: -1, loBig: INT64_MIN, hiBig: INT64_MAX };
  if (f.kind !== 'int') return { lo: 0, hi: -1, loBig: 0n, hiBig: -1n };
  const bits = BigInt(f.size * 8);
  const loBig = f.signed ? -(1n << (bits - 1n)) : 0n;
  const hiBig = f.signed ? (1n << (bits - 1n)) - 1n : (1n << bits) - 1n;
  return f.size === 8 ? { lo: 0, hi: -1, loBig, hiBig } : { lo: Number(loBig), hi: Number(hiBig), loBig: 0n, hiBig: -1n };
}

/** The most a count or size field named by `c` can hold, when it is a number field of `vmsd`. */
function countFieldMax(vmsd: AnyVmsd, c: Count | undefined): number {
  if (c === undefined || typeof c === 'number') return Infinity;
  const f = vmsd.fields.find((x) => x.name === c.field);
  return f !== undefined && f.kind === 'int' && f.size < 8 ? ranges(f).hi : Infinity;
}

/** What one element of `f` must be, e.g. "uint8 (an integer from 0 to 255)". */
function expectedOf(f: Field): string {
  switch (f.kind) {
    case 'int': {
      const { lo, hi, loBig, hiBig } = ranges(f);
      return f.size === 8 ? `${f.type} (a bigint from ${loBig} to ${hiBig})` : `${f.type} (an integer from ${lo} to ${hi})`;
    }
    case 'bool':
      return 'bool (true or false)';
    case 'timer':
      return `timer (a bigint from ${INT64_MIN} to ${INT64_MAX}, -1 when not armed)`;
    case 'buffer':
      return typeof f.size === 'number' ? `${f.type} (a Uint8Array of ${f.size} bytes)` : `${f.type} (a Uint8Array)`;
    case 'unused':
      return 'nothing';
    case 'struct':
      return `struct ${f.vmsd.name} (an object)`;
    case 'custom':
      return `${f.type} (${(f.expected as string | undefined) ?? 'a value its codec takes'})`;
  }
}

/** QEMU's vmsd_can_compress: a field described once for a whole array. */
function canCompress(f: Field): boolean {
  if (f.exists) return false;
  if (f.kind === 'struct') return f.vmsd.subsections.length === 0 && f.vmsd.fields.every(canCompress);
  return true;
}

function included(cf: CompiledField, state: State, version: number): boolean {
  return cf.exists !== null ? cf.exists(state, version) : cf.version <= version;
}

function countOf(c: Count, state: State, vmsd: AnyVmsd, cf: CompiledField): number {
  if (typeof c === 'number') return c;
  const v = state[c.field];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
    throw new StreamFormatError(`count field "${c.field}" holds ${String(v)}, not a non-negative integer`, { offset: -1, path: `${vmsd.name}.${cf.name}` });
  }
  const n = v * (c.multiply ?? 1);
  // QEMU's element counts are 32-bit; a larger product is no count (and no JavaScript array length).
  if (n > 0xffffffff) {
    throw new StreamFormatError(`count field "${c.field}" holds ${v}, times ${c.multiply} is more than 2^32 - 1 elements`, { offset: -1, path: `${vmsd.name}.${cf.name}` });
  }
  return n;
}

/** A buffer's size: fixed, or another field's value (VMS_VBUFFER). */
function bufferSize(cf: CompiledField, s: State, vmsd: AnyVmsd): number {
  return cf.size >= 0 ? cf.size : countOf((cf.f as BufferField).size, s, vmsd, cf);
}

// ---------------------------------------------------------------- save

/**
 * Saving is strict: a value that does not fit its field (out of range, of the wrong type, an array or
 * buffer whose length is not its count, a count its field cannot hold) is SaveError, never written as
 * something else. The error's path is found on the way out: each level puts its part (a field and
 * element, a subsection) before the path of the error from below, and saveState puts the description's
 * name first, e.g. `dev.regs[3].ctl`. Only errors the interpreter made are prefixed (those in `relative`):
 * a SaveError a hook throws passes through as it is.
 */
const relative = new WeakSet<SaveError>();

/** A SaveError at `path`, relative to the description being saved. */
function fail(path: string, reason: string, data: Record<string, unknown> = {}): SaveError {
  const e = new SaveError(reason, path, { ...data, field: path });
  relative.add(e);
  return e;
}

/** `e` with `part` put before its path (a relative path: `x`, `[3]`, `/sub`, or empty). */
function within(e: unknown, part: string, done = false): unknown {
  if (!(e instanceof SaveError) || !relative.has(e)) return e;
  const path = !e.path ? part : e.path.startsWith('[') || e.path.startsWith('/') ? part + e.path : `${part}.${e.path}`;
  const { reason, path: _p, field: _f, ...rest } = e.data as { reason: string; path: string; field: string };
  const out = new SaveError(reason, path, { ...rest, field: path }, e.cause);
  if (!done) relative.add(out);
  return out;
}

/** A value as an error message shows it: `300`, `5n`, `a string "x"`, `an array of 3 elements`, … */
function show(v: unknown): string {
  switch (typeof v) {
    case 'number':
    case 'boolean':
    case 'undefined':
      return String(v);
    case 'bigint':
      return `${v}n`;
    case 'string':
      return `a string ${JSON.stringify(v.length > 20 ? `${v.slice(0, 20)}…` : v)}`;
    case 'object':
      if (v === null) return 'null';
      if (Array.isArray(v)) return `an array of ${elements(v.length)}`;
      if (v instanceof Uint8Array) return `a ${v.constructor.name} of ${v.length} bytes`;
      if (ArrayBuffer.isView(v)) return `a ${v.constructor.name}`;
      return 'an object';
    default:
      return `a ${typeof v}`;
  }
}

/** "1 element", "3 elements". */
function elements(n: number): string {
  return n === 1 ? '1 element' : `${n} elements`;
}

/** "holds X, expected Y": the one shape of a value that does not fit. */
function misfit(path: string, v: unknown, expected: string): SaveError {
  const value = show(v);
  return fail(path, `holds ${value}, expected ${expected}`, { value, expected });
}

/**
 * Writes `state` as described by `vmsd` at `version` (defaults to vmsd.version). With `desc`, also writes
 * the description's members ("vmsd_name", "version", "fields", "subsections") into the open JSON object,
 * as the release `rules` stand for describes them (defaults to QEMU 7.2's). A value that does not fit its
 * field is SaveError, whose path names the field from the description's name on, e.g. `dev.regs[3].ctl`;
 * what was written before it stays in `w`.
 */
export function saveState(w: ByteWriter, vmsd: AnyVmsd, state: object, desc?: QemuJsonWriter, version = vmsd.version, rules: VmdescRules = VMDESC_RULES_7_2): void {
  try {
    saveVmsd(w, vmsd, state as State, desc, version, rules);
  } catch (e) {
    throw within(e, vmsd.name, true);
  }
}

function saveVmsd(w: ByteWriter, vmsd: AnyVmsd, state: State, desc: QemuJsonWriter | undefined, version: number, rules: VmdescRules): void {
  if (!desc || hasPreSave(vmsd)) {
    saveBody(w, vmsd, state, desc, version, rules);
    return;
  }
  let byVmsd = textByShape.get(rules);
  if (!byVmsd) textByShape.set(rules, (byVmsd = new WeakMap()));
  let byVersion = byVmsd.get(vmsd);
  if (!byVersion) byVmsd.set(vmsd, (byVersion = new Map()));
  let texts = byVersion.get(version);
  if (!texts) byVersion.set(version, (texts = new Map()));
  const k = shape(vmsd, state, version);
  if (k === null) {
    // A state that has no shape does not fit its description: saving it says where.
    saveBody(w, vmsd, state, desc, version, rules);
    return;
  }
  const text = texts.get(k);
  if (text !== undefined) {
    saveBody(w, vmsd, state, undefined, version, rules);
    desc.members(text);
    return;
  }
  const mark = desc.mark;
  saveBody(w, vmsd, state, desc, version, rules);
  texts.set(k, desc.capture(mark).replace(/^, /, ''));
}

function saveBody(w: ByteWriter, vmsd: AnyVmsd, s: State, desc: QemuJsonWriter | undefined, version: number, rules: VmdescRules): void {
  const c = compile(vmsd);
  if (c.preSave !== null) runHook(c.preSave, s, 'pre-save');
  if (desc) {
    desc.str('vmsd_name', vmsd.name);
    desc.int('version', version);
    desc.startArray('fields');
  }
  for (const cf of c.fields) if (included(cf, s, version)) saveField(w, cf, s, desc, rules);
  if (desc) desc.endArray();
  let anySub = false;
  for (const sub of c.subsections) {
    if (sub.needed && !(sub.needed as (s: State) => boolean)(s)) continue;
    if (desc) {
      if (!anySub) desc.startArray('subsections');
      desc.startObject();
    }
    anySub = true;
    w.putByte(SUBSECTION);
    w.putCountedString(sub.name);
    w.putBe32(sub.version);
    try {
      saveVmsd(w, sub, s, desc, sub.version, rules);
    } catch (e) {
      throw within(e, sub.name.startsWith(`${vmsd.name}/`) ? sub.name.slice(vmsd.name.length) : `/${sub.name}`);
    }
    if (desc) desc.endObject();
  }
  if (desc && anySub) desc.endArray();
  if (c.postSave !== null) runHook(c.postSave, s, 'post-save');
}

/** The element count of an array, or the size of a vbuffer, from a count field; SaveError if it cannot be one. */
function savedCount(c: Exclude<Count, number>, max: number, s: State, path: string, vmsd: AnyVmsd): number {
  const v = s[c.field];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
    const value = show(v);
    throw fail(path, `count field ${c.field} holds ${value}, expected a non-negative integer`, { value, expected: 'a non-negative integer', countField: c.field });
  }
  if (v > max) {
    const type = vmsd.fields.find((f) => f.name === c.field)?.type;
    const expected = `at most ${max} (${c.field} is ${type})`;
    throw fail(path, `count field ${c.field} holds ${v}, expected ${expected}`, { value: String(v), expected, countField: c.field });
  }
  return c.multiply === undefined ? v : v * c.multiply;
}

/** How a count from a field is said in an error: "count field n holds 2" (", times 4"). */
function countText(c: Count, s: State): string {
  return typeof c === 'number' ? '' : ` (count field ${c.field} holds ${show(s[c.field])}${c.multiply !== undefined ? `, times ${c.multiply}` : ''})`;
}

/** One field (all its elements), and with `desc` its entry in the description. */
function saveField(w: ByteWriter, cf: CompiledField, s: State, desc: QemuJsonWriter | undefined, rules: VmdescRules): void {
  const count = cf.count;
  const value = s[cf.name];
  let n = 1;
  // A Uint8Array holds a byte array's bytes as they travel, signed or not.
  let raw = false;
  if (count !== null) {
    n = typeof count === 'number' ? count : savedCount(count, cf.countMax, s, cf.name, cf.owner);
    raw = value instanceof Uint8Array && cf.kind === 'int' && cf.size === 1;
    if (!Array.isArray(value) && !raw) throw misfit(cf.name, value, `an array of ${elements(n)}${countText(count, s)}`);
    if ((value as ArrayLike<unknown>).length !== n) throw misfit(cf.name, value, `${elements(n)}${countText(count, s)}`);
  }
  const runs = desc !== undefined && cf.nullable && rules.nullptrType;
  let describe = desc;
  let prevNull = false;
  let i = 0;
  try {
    for (; i < n; i++) {
      if (raw && describe === undefined) {
        // The rest of a byte array held in a Uint8Array goes as it is.
        w.putBuffer((value as Uint8Array).subarray(i));
        break;
      }
      const el = count !== null ? (value as ArrayLike<unknown>)[i] : value;
      const isNull = cf.nullable && (el === null || el === undefined);
      const start = w.length;
      // How many elements this one's description stands for, itself included.
      let span = rules.indexLastElement ? n : n - i;
      if (runs && isNull !== prevNull) {
        // A run of NULL or non-NULL elements starts here: it is described on its own.
        prevNull = isNull;
        describe = desc;
        span = runLength(value as ArrayLike<unknown>, i, n, isNull);
      }
      const asNullptr = isNull && rules.nullptrType;
      if (describe) {
        describe.startObject();
        // QEMU numbers a repeated name by the field's position, which its stand-in for NULL has none of.
        describe.str('name', asNullptr && cf.descName !== cf.name ? `${cf.name}[-1]` : cf.descName);
        if (span > 1) {
          if (cf.compressible || asNullptr) describe.int('array_len', span);
          else describe.int('index', i);
        }
        describe.str('type', asNullptr ? 'nullptr' : cf.f.type);
        if (cf.kind === 'struct' && !asNullptr) describe.startObject('struct');
      }
      if (isNull) w.putByte(NULLPTR_MARKER);
      else if (raw) w.putByte(el as number);
      // Ints, the most common elements, go through their own small function, which V8 inlines here.
      else if (cf.kind === 'int') putInt(w, cf, el);
      else saveElement(w, cf, el, describe, s, rules);
      if (describe) {
        if (cf.kind === 'struct' && !asNullptr) describe.endObject();
        describe.int('size', w.length - start);
        describe.endObject();
        if (cf.compressible) describe = undefined;
      }
    }
  } catch (e) {
    // One handler for the loop: the failing element is the i-th.
    throw within(e, count !== null ? `${cf.name}[${i}]` : cf.name);
  }
}

/** How many elements from `i` on are NULL (`isNull`) or not, up to the next change or the end. */
function runLength(value: ArrayLike<unknown>, i: number, n: number, isNull: boolean): number {
  let j = i + 1;
  while (j < n && (value[j] === null || value[j] === undefined) === isNull) j++;
  return j - i;
}

/** One element; a value that does not fit is SaveError with an empty path (saveField names the element). */
function saveElement(w: ByteWriter, cf: CompiledField, v: unknown, desc: QemuJsonWriter | undefined, s: State, rules: VmdescRules): void {
  switch (cf.kind) {
    case 'int':
      putInt(w, cf, v);
      return;
    case 'bool':
      if (v === true) w.putByte(1);
      else if (v === false) w.putByte(0);
      else throw misfit('', v, cf.expected);
      return;
    case 'timer':
      if (typeof v !== 'bigint' || v < cf.loBig || v > cf.hiBig) throw misfit('', v, cf.expected);
      w.putBe64(v);
      return;
    case 'buffer': {
      const size = cf.size >= 0 ? cf.size : savedCount((cf.f as BufferField).size as Exclude<Count, number>, cf.sizeMax, s, '', cf.owner);
      if (!(v instanceof Uint8Array) || v.length !== size) {
        const c = (cf.f as BufferField).size;
        const from = typeof c === 'number' ? '' : `: size field ${c.field} holds ${show(s[c.field])}${c.multiply !== undefined ? `, times ${c.multiply}` : ''}`;
        throw misfit('', v, `${cf.f.type} (a Uint8Array of ${size} bytes${from})`);
      }
      w.putBuffer(v);
      return;
    }
    case 'unused':
      w.putFill(0, cf.size);
      return;
    case 'struct': {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw misfit('', v, cf.expected);
      const sub = cf.sub as AnyVmsd;
      saveVmsd(w, sub, v as State, desc, sub.version, rules);
      return;
    }
    case 'custom': {
      if (cf.accepts !== null && !cf.accepts(v)) throw misfit('', v, cf.expected);
      const start = w.length;
      (cf.write as (w: ByteWriter, v: unknown) => void)(w, v);
      if (w.length - start !== cf.size) {
        throw fail('', `${cf.f.type} wrote ${w.length - start} bytes, expected ${cf.size}`, { value: show(v), expected: `${cf.size} bytes` });
      }
      return;
    }
  }
}

/** An int element: a bigint of its range for 8 bytes, else a number that its codec's bits hold as it is. */
function putInt(w: ByteWriter, cf: CompiledField, v: unknown): void {
  if (cf.size === 8) {
    if (typeof v !== 'bigint' || v < cf.loBig || v > cf.hiBig) throw misfit('', v, cf.expected);
    w.putBe64(v);
    return;
  }
  if (typeof v !== 'number') throw misfit('', v, cf.expected);
  // The value cut to its codec's bits, as two's complement when signed: the value itself exactly when it
  // fits (NaN, a fraction or a value out of range comes out as something else).
  if (cf.size === 4) {
    if ((cf.signed ? v | 0 : v >>> 0) !== v) throw misfit('', v, cf.expected);
    w.putBe32(v);
  } else if (cf.size === 1) {
    if ((cf.signed ? (v << 24) >> 24 : v & 0xff) !== v) throw misfit('', v, cf.expected);
    w.putByte(v & 0xff);
  } else {
    if ((cf.signed ? (v << 16) >> 16 : v & 0xffff) !== v) throw misfit('', v, cf.expected);
    w.putBe16(v & 0xffff);
  }
}

function runHook(hook: (s: State) => void, s: State, what: string): void {
  try {
    hook(s);
  } catch (e) {
    if (e instanceof SaveError) throw e;
    const err = new SaveError(`${what} hook failed: ${(e as Error).message}`, '', {}, e);
    relative.add(err);
    throw err;
  }
}

// ---------------------------------------------------------------- load

const NO_PEERS: LoadContext['peer'] = () => {
  throw new LoadError('no registry to read other entries from', '');
};

/**
 * Reads a body described by `vmsd` into `state`, at `version` (the section's or subsection's version).
 * `peer` gives hooks access to other entries' state (the registry supplies it during a snapshot load).
 */
export function loadState(r: ByteReader, vmsd: AnyVmsd, state: object, version: number, peer: LoadContext['peer'] = NO_PEERS): void {
  loadBody(r, vmsd, state, version, peer);
}

/**
 * Reads a body as loadState does, into `state`, but runs no hook: a dry run over a copy of the state
 * that finds how far a body reaches (or that its bytes are not all in yet) before the load with effects.
 */
export function measureState(r: ByteReader, vmsd: AnyVmsd, state: object, version: number): void {
  loadBody(r, vmsd, state, version, null);
}

/** Hooks' access to other entries; null in a dry run, which runs no hook. */
type Peer = LoadContext['peer'] | null;

function loadBody(r: ByteReader, vmsd: AnyVmsd, state: object, version: number, peer: Peer): void {
  const s = state as State;
  checkIncomingVersion(version, vmsd, vmsd.name);
  const c = compile(vmsd);
  if (c.preLoad !== null && peer !== null) loadHook(c.preLoad, s, { version, peer }, vmsd, 'pre-load');
  const fields = c.fields;
  let k = 0;
  try {
    for (; k < fields.length; k++) if (included(fields[k], s, version)) loadField(r, fields[k], s, vmsd, peer);
  } catch (e) {
    // One handler for the loop: the failing field is fields[k].
    throw prefixStreamError(e, fields[k].name);
  }
  loadSubsections(r, vmsd, s, peer);
  if (c.postLoad !== null && peer !== null) loadHook(c.postLoad, s, { version, peer }, vmsd, 'post-load');
}

/** One field: a single element or an array. */
function loadField(r: ByteReader, cf: CompiledField, s: State, vmsd: AnyVmsd, peer: Peer): void {
  if (cf.count === null) {
    const v = loadElement(r, cf, s[cf.name], s, vmsd, peer);
    if (cf.kind !== 'unused') s[cf.name] = v;
    return;
  }
  const n = countOf(cf.count, s, vmsd, cf);
  const prev = s[cf.name];
  const old = Array.isArray(prev) ? prev : [];
  // A count from the stream sizes nothing before its elements are read: a count larger than the bytes
  // left grows the array as elements arrive, and the stream runs out first.
  const out: unknown[] = n <= r.remaining ? new Array<unknown>(n) : [];
  for (let i = 0; i < n; i++) {
    const local = old[i];
    if (cf.nullable && (local === null || local === undefined)) {
      const offset = r.offset;
      const m = r.getByte();
      if (m !== NULLPTR_MARKER) {
        throw new StreamFormatError(`element ${i} is null here, so the null marker 0x30 was expected, found 0x${m.toString(16)}`, { offset, path: '' });
      }
      out[i] = null;
    } else {
      out[i] = loadElement(r, cf, local, s, vmsd, peer);
    }
  }
  if (cf.kind !== 'unused') s[cf.name] = out;
}

function loadSubsections(r: ByteReader, vmsd: AnyVmsd, s: State, peer: Peer): void {
  const prefix = vmsd.name;
  while (r.peekByte() === SUBSECTION) {
    // Not ours unless the name is "<parent>/..."; it may belong to an enclosing description.
    // Peeks past the end of a whole stream just find no subsection, as in QEMU; in a chunked window they
    // ask for more bytes.
    if (r.remaining < 2 && r.final) return;
    r.need(2);
    const len = r.peekByte(1);
    if (len < prefix.length + 1) return;
    if (r.remaining < 2 + len && r.final) return;
    r.need(2 + len);
    const nameBytes = r.bytes.subarray(r.pos + 2, r.pos + 2 + len);
    const name = new TextDecoder().decode(nameBytes);
    if (!name.startsWith(prefix)) return;
    const sub = vmsd.subsections.find((x) => x.name === name);
    if (!sub) throw new LoadError(`unknown subsection ${name}`, vmsd.name, { subsection: name });
    r.skip(2 + len);
    const version = r.getBe32();
    try {
      loadBody(r, sub, s, version, peer);
    } catch (e) {
      throw prefixStreamError(e, name);
    }
  }
}

function loadElement(r: ByteReader, cf: CompiledField, local: unknown, s: State, vmsd: AnyVmsd, peer: Peer): unknown {
  switch (cf.kind) {
    case 'int': {
      const offset = r.offset;
      const v = r.getBeInt(cf.size as 1 | 2 | 4 | 8, cf.signed);
      if (cf.check === 'equal' && local !== undefined && local !== v) {
        throw new LoadError(`${cf.name}: incoming value ${String(v)} does not match local value ${String(local)}`, vmsd.name, {
          offset,
          incoming: String(v),
          local: String(local),
        });
      }
      if (cf.check === 'le' && local !== undefined && (Number(v) < 0 || Number(v) > Number(local))) {
        throw new LoadError(`${cf.name}: incoming value ${String(v)} is not between 0 and local value ${String(local)}`, vmsd.name, {
          offset,
          incoming: String(v),
          local: String(local),
        });
      }
      return v;
    }
    case 'bool':
      return r.getByte() !== 0;
    case 'timer':
      return BigInt.asIntN(64, r.getBe64());
    case 'buffer': {
      const size = cf.count === null ? bufferSize(cf, s, vmsd) : cf.size;
      const bytes = r.getBuffer(size);
      // Copy into the local buffer when it has the right size: devices keep references to their buffers.
      if (local instanceof Uint8Array && local.length === size) {
        local.set(bytes);
        return local;
      }
      return bytes.slice();
    }
    case 'unused':
      r.skip(cf.size);
      return undefined;
    case 'struct': {
      const sub = cf.sub as AnyVmsd;
      const target = typeof local === 'object' && local !== null ? local : {};
      loadBody(r, sub, target, sub.version, peer);
      return target;
    }
    case 'custom':
      return (cf.read as (r: ByteReader) => unknown)(r);
  }
}

function loadHook(hook: (s: State, c: LoadContext) => void, s: State, ctx: LoadContext, vmsd: AnyVmsd, what: string): void {
  try {
    hook(s, ctx);
  } catch (e) {
    if (e instanceof LoadError || e instanceof LoadOrderError) throw e;
    throw new LoadError(`${what} hook failed: ${(e as Error).message}`, vmsd.name, {}, e);
  }
}
