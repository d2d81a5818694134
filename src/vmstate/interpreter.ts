/**
 * The one interpreter: loads and saves any description, following QEMU 7.2's vmstate_load_state and
 * vmstate_save_state_v (migration/vmstate.c): version gates and exists predicates per field, element
 * counts from constants or other fields, nested structs at their own local version, null-pointer markers,
 * subsections after the fields, hooks around it all, and the VMDESCRIPTION text QEMU writes alongside.
 */
import { LoadError, prefixStreamError, SaveError, StreamFormatError } from '../errors.js';
import type { ByteReader, ByteWriter } from '../stream/index.js';
import type { AnyVmsd, Count, Field, IntField, LoadContext } from './fields.js';
import type { QemuJsonWriter } from './json-writer.js';

/** VMS_NULLPTR_MARKER: stands for a null element of an array of pointers. */
export const NULLPTR_MARKER = 0x30;
/** QEMU_VM_SUBSECTION. */
const SUBSECTION = 0x05;

type State = Record<string, unknown>;

interface CompiledField {
  readonly f: Field;
  /** The name in the VMDESCRIPTION: `name[k]` when the name repeats in the description. */
  readonly descName: string;
  readonly compressible: boolean;
  /** Sent only under a condition (exists predicate, or a version above 0). */
  readonly gated: boolean;
  /** A single integer with no load check: the hot path of most descriptions, handled inline. */
  readonly plainInt: boolean;
}

const compiled = new WeakMap<AnyVmsd, readonly CompiledField[]>();

/**
 * The VMDESCRIPTION text of a description depends on the state only through its "shape": which fields
 * exist, element counts and sizes taken from fields, null elements, which subsections are needed. The text
 * is generated once per shape and reused, which keeps a thousand-device snapshot cheap. Descriptions with
 * a pre-save hook anywhere inside are not cached: the hook may change the shape after it was computed.
 */
const textByShape = new WeakMap<AnyVmsd, Map<string, string>>();
const preSaveInside = new WeakMap<AnyVmsd, boolean>();

function hasPreSave(vmsd: AnyVmsd): boolean {
  let v = preSaveInside.get(vmsd);
  if (v === undefined) {
    v = !!vmsd.preSave || vmsd.fields.some((f) => f.kind === 'struct' && hasPreSave(f.vmsd)) || vmsd.subsections.some(hasPreSave);
    preSaveInside.set(vmsd, v);
  }
  return v;
}

/** The shape of `s` under `vmsd` at `version`, as a short string. */
function shape(vmsd: AnyVmsd, s: State, version: number): string {
  if (isShapeStatic(vmsd)) return '';
  let out = '';
  for (const cf of shapeFields(vmsd)) {
    const f = cf.f;
    // The version is part of the cache key, so only exists predicates need asking here.
    if (!included(f, s, version)) {
      out += cf.index + '-';
      continue;
    }
    out += cf.index + '+';
    const n = f.count === undefined ? 1 : countOf(f.count, s, vmsd, f);
    if (typeof f.count === 'object') out += `,${n}`;
    if (f.kind === 'buffer' && typeof f.size !== 'number') out += `,${sizeOf(f.size, s, vmsd, f)}`;
    if (!f.nullable && (f.kind !== 'struct' || isShapeStatic(f.vmsd))) continue;
    const value = s[f.name];
    for (let i = 0; i < n; i++) {
      const el = f.count === undefined ? value : (value as ArrayLike<unknown>)[i];
      if (f.nullable && (el === null || el === undefined)) out += 'n';
      else if (f.kind === 'struct') out += `(${shape(f.vmsd, el as State, f.vmsd.version)})`;
    }
  }
  for (const sub of vmsd.subsections) {
    const needed = !sub.needed || (sub.needed as (s: State) => boolean)(s);
    out += needed ? `+(${shape(sub, s, sub.version)})` : '.';
  }
  return out;
}

const shapeFieldCache = new WeakMap<AnyVmsd, readonly (CompiledField & { index: number })[]>();
const shapeStaticCache = new WeakMap<AnyVmsd, boolean>();

/** The fields whose presence, count, size or contents can change a description's text. */
function shapeFields(vmsd: AnyVmsd): readonly (CompiledField & { index: number })[] {
  let list = shapeFieldCache.get(vmsd);
  if (!list) {
    list = compile(vmsd)
      .map((cf, index) => ({ ...cf, index }))
      .filter(
        ({ f }) =>
          f.exists !== undefined ||
          typeof f.count === 'object' ||
          (f.kind === 'buffer' && typeof f.size !== 'number') ||
          f.nullable === true ||
          (f.kind === 'struct' && !isShapeStatic(f.vmsd)),
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

function compile(vmsd: AnyVmsd): readonly CompiledField[] {
  let c = compiled.get(vmsd);
  if (c) return c;
  const counts = new Map<string, number>();
  for (const f of vmsd.fields) counts.set(f.name, (counts.get(f.name) ?? 0) + 1);
  const seen = new Map<string, number>();
  c = vmsd.fields.map((f) => {
    const k = seen.get(f.name) ?? 0;
    seen.set(f.name, k + 1);
    return {
      f,
      descName: (counts.get(f.name) ?? 0) > 1 ? `${f.name}[${k}]` : f.name,
      compressible: canCompress(f),
      gated: f.exists !== undefined || (f.version ?? 0) > 0,
      plainInt: f.kind === 'int' && f.count === undefined && f.check === undefined && !f.nullable,
    };
  });
  compiled.set(vmsd, c);
  return c;
}

/** QEMU's vmsd_can_compress: a field described once for a whole array. */
function canCompress(f: Field): boolean {
  if (f.exists) return false;
  if (f.kind === 'struct') return f.vmsd.subsections.length === 0 && f.vmsd.fields.every(canCompress);
  return true;
}

function included(f: Field, state: State, version: number): boolean {
  return f.exists ? (f.exists as (s: State, v: number) => boolean)(state, version) : (f.version ?? 0) <= version;
}

function countOf(c: Count | undefined, state: State, vmsd: AnyVmsd, f: Field): number {
  if (c === undefined) return 1;
  if (typeof c === 'number') return c;
  const v = state[c.field];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
    throw new StreamFormatError(`count field "${c.field}" holds ${String(v)}, not a non-negative integer`, { offset: -1, path: `${vmsd.name}.${f.name}` });
  }
  return v * (c.multiply ?? 1);
}

// ---------------------------------------------------------------- save

/**
 * Writes `state` as described by `vmsd` at `version` (defaults to vmsd.version). With `desc`, also writes
 * the description's members ("vmsd_name", "version", "fields", "subsections") into the open JSON object.
 */
export function saveState(w: ByteWriter, vmsd: AnyVmsd, state: object, desc?: QemuJsonWriter, version = vmsd.version): void {
  if (!desc || hasPreSave(vmsd)) {
    saveBody(w, vmsd, state as State, desc, version);
    return;
  }
  const k = `${version}:${shape(vmsd, state as State, version)}`;
  let texts = textByShape.get(vmsd);
  if (!texts) textByShape.set(vmsd, (texts = new Map()));
  const text = texts.get(k);
  if (text !== undefined) {
    saveBody(w, vmsd, state as State, undefined, version);
    desc.members(text);
    return;
  }
  const mark = desc.mark;
  saveBody(w, vmsd, state as State, desc, version);
  texts.set(k, desc.capture(mark).replace(/^, /, ''));
}

function saveBody(w: ByteWriter, vmsd: AnyVmsd, s: State, desc: QemuJsonWriter | undefined, version: number): void {
  if (vmsd.preSave) runHook(() => (vmsd.preSave as (s: State) => void)(s), vmsd, 'pre-save');
  if (desc) {
    desc.str('vmsd_name', vmsd.name);
    desc.int('version', version);
    desc.startArray('fields');
  }
  const fields = compile(vmsd);
  for (let k = 0; k < fields.length; k++) {
    const cf = fields[k];
    const f = cf.f;
    if (cf.gated && !included(f, s, version)) continue;
    if (cf.plainInt && !desc) {
      putInt(w, (f as IntField<string, unknown>).size, s[f.name], vmsd, f);
      continue;
    }
    const n = f.count === undefined ? 1 : countOf(f.count, s, vmsd, f);
    const value = s[f.name];
    const isArray = f.count !== undefined;
    if (isArray && !Array.isArray(value) && !(value instanceof Uint8Array && f.kind === 'int')) {
      throw new SaveError(`field ${f.name} should hold an array of ${n} elements`, vmsd.name);
    }
    let describe = desc;
    for (let i = 0; i < n; i++) {
      const el = isArray ? (value as ArrayLike<unknown>)[i] : value;
      const start = w.length;
      if (describe) {
        describe.startObject();
        describe.str('name', cf.descName);
        if (n > 1) {
          if (cf.compressible) describe.int('array_len', n);
          else describe.int('index', i);
        }
        describe.str('type', f.type);
        if (f.kind === 'struct') describe.startObject('struct');
      }
      if (f.nullable && (el === null || el === undefined)) {
        w.putByte(NULLPTR_MARKER);
      } else {
        saveElement(w, f, el, vmsd, describe, s);
      }
      if (describe) {
        if (f.kind === 'struct') describe.endObject();
        describe.int('size', w.length - start);
        describe.endObject();
        if (cf.compressible) describe = undefined;
      }
    }
  }
  if (desc) desc.endArray();
  let anySub = false;
  for (const sub of vmsd.subsections) {
    if (sub.needed && !(sub.needed as (s: State) => boolean)(s)) continue;
    if (desc) {
      if (!anySub) desc.startArray('subsections');
      desc.startObject();
    }
    anySub = true;
    w.putByte(SUBSECTION);
    w.putCountedString(sub.name);
    w.putBe32(sub.version);
    saveState(w, sub, s, desc);
    if (desc) desc.endObject();
  }
  if (desc && anySub) desc.endArray();
  if (vmsd.postSave) runHook(() => (vmsd.postSave as (s: State) => void)(s), vmsd, 'post-save');
}

function saveElement(w: ByteWriter, f: Field, v: unknown, vmsd: AnyVmsd, desc: QemuJsonWriter | undefined, s: State): void {
  switch (f.kind) {
    case 'int':
      putInt(w, f.size, v, vmsd, f);
      return;
    case 'bool':
      w.putByte(v ? 1 : 0);
      return;
    case 'timer':
      w.putBe64(typeof v === 'bigint' ? v : -1n);
      return;
    case 'buffer': {
      const size = f.count === undefined ? sizeOf(f.size, s, vmsd, f) : (f.size as number);
      if (!(v instanceof Uint8Array) || v.length < size) {
        throw new SaveError(`field ${f.name} should hold at least ${size} bytes`, vmsd.name);
      }
      w.putBuffer(v.length === size ? v : v.subarray(0, size));
      return;
    }
    case 'unused':
      w.putFill(0, f.size);
      return;
    case 'struct':
      if (typeof v !== 'object' || v === null) throw new SaveError(`field ${f.name} should hold a ${f.vmsd.name} object`, vmsd.name);
      saveState(w, f.vmsd, v, desc);
      return;
    case 'custom':
      (f.write as (w: ByteWriter, v: unknown) => void)(w, v);
      return;
  }
}

function sizeOf(c: Count, s: State, vmsd: AnyVmsd, f: Field): number {
  return typeof c === 'number' ? c : countOf(c, s, vmsd, f);
}

function putInt(w: ByteWriter, size: 1 | 2 | 4 | 8, v: unknown, vmsd: AnyVmsd, f: Field): void {
  if (size === 8 && typeof v !== 'bigint') throw new SaveError(`field ${f.name} should hold a bigint`, vmsd.name);
  w.putBeInt(size, v as number | bigint);
}

function runHook(hook: () => void, vmsd: AnyVmsd, what: string): void {
  try {
    hook();
  } catch (e) {
    if (e instanceof SaveError) throw e;
    throw new SaveError(`${what} hook failed: ${(e as Error).message}`, vmsd.name, {}, e);
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
  const s = state as State;
  if (version > vmsd.version) {
    throw new LoadError(`incoming version_id ${version} is too new for local version_id ${vmsd.version}`, vmsd.name, { incoming: version, local: vmsd.version });
  }
  if (version < vmsd.minVersion) {
    throw new LoadError(`incoming version_id ${version} is too old for local minimum_version_id ${vmsd.minVersion}`, vmsd.name, {
      incoming: version,
      local: vmsd.minVersion,
    });
  }
  if (vmsd.preLoad) loadHook(() => (vmsd.preLoad as (s: State, c: LoadContext) => void)(s, { version, peer }), vmsd, 'pre-load');
  const fields = compile(vmsd);
  let k = 0;
  try {
    for (; k < fields.length; k++) {
      const cf = fields[k];
      const f = cf.f;
      if (cf.gated && !included(f, s, version)) continue;
      if (cf.plainInt) {
        s[f.name] = r.getBeInt((f as IntField<string, unknown>).size, (f as IntField<string, unknown>).signed);
      } else if (f.count === undefined) {
        const v = loadElement(r, f, s[f.name], s, vmsd, peer);
        if (f.kind !== 'unused') s[f.name] = v;
      } else {
        const n = countOf(f.count, s, vmsd, f);
        const prev = s[f.name];
        const old = Array.isArray(prev) ? prev : [];
        const out = new Array<unknown>(n);
        for (let i = 0; i < n; i++) {
          const local = old[i];
          if (f.nullable && (local === null || local === undefined)) {
            const offset = r.offset;
            const m = r.getByte();
            if (m !== NULLPTR_MARKER) {
              throw new StreamFormatError(`element ${i} is null here, so the null marker 0x30 was expected, found 0x${m.toString(16)}`, { offset, path: '' });
            }
            out[i] = null;
          } else {
            out[i] = loadElement(r, f, local, s, vmsd, peer);
          }
        }
        if (f.kind !== 'unused') s[f.name] = out;
      }
    }
  } catch (e) {
    // One handler for the loop: the failing field is fields[k].
    throw prefixStreamError(e, fields[k].f.name);
  }
  loadSubsections(r, vmsd, s, peer);
  if (vmsd.postLoad) loadHook(() => (vmsd.postLoad as (s: State, c: LoadContext) => void)(s, { version, peer }), vmsd, 'post-load');
}

function loadSubsections(r: ByteReader, vmsd: AnyVmsd, s: State, peer: LoadContext['peer']): void {
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
      loadState(r, sub, s, version, peer);
    } catch (e) {
      throw prefixStreamError(e, name);
    }
  }
}

function loadElement(r: ByteReader, f: Field, local: unknown, s: State, vmsd: AnyVmsd, peer: LoadContext['peer']): unknown {
  switch (f.kind) {
    case 'int': {
      const offset = r.offset;
      const v = r.getBeInt(f.size, f.signed);
      if (f.check === 'equal' && local !== undefined && local !== v) {
        throw new LoadError(`${f.name}: incoming value ${String(v)} does not match local value ${String(local)}`, vmsd.name, {
          offset,
          incoming: String(v),
          local: String(local),
        });
      }
      if (f.check === 'le' && local !== undefined && (Number(v) < 0 || Number(v) > Number(local))) {
        throw new LoadError(`${f.name}: incoming value ${String(v)} is not between 0 and local value ${String(local)}`, vmsd.name, {
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
      const size = f.count === undefined ? sizeOf(f.size, s, vmsd, f) : (f.size as number);
      const bytes = r.getBuffer(size);
      // Copy into the local buffer when it has the right size: devices keep references to their buffers.
      if (local instanceof Uint8Array && local.length === size) {
        local.set(bytes);
        return local;
      }
      return bytes.slice();
    }
    case 'unused':
      r.skip(f.size);
      return undefined;
    case 'struct': {
      const target = typeof local === 'object' && local !== null ? local : {};
      loadState(r, f.vmsd, target, f.vmsd.version, peer);
      return target;
    }
    case 'custom':
      return f.read(r);
  }
}

function loadHook(hook: () => void, vmsd: AnyVmsd, what: string): void {
  try {
    hook();
  } catch (e) {
    if (e instanceof LoadError || (e as { code?: string }).code === 'LOAD_ORDER') throw e;
    throw new LoadError(`${what} hook failed: ${(e as Error).message}`, vmsd.name, {}, e);
  }
}
