/**
 * Field loops specialised per description. The interpreter's own loop is shared by every description, so
 * each `state[field.name]` in it sees hundreds of object shapes and property names: V8 falls back to its
 * slowest property lookups, and a thousand-device save pays for it on every field. Here each description
 * gets its field loop written out once as JavaScript (new Function), its field names as constants, so
 * every access has a property cache of its own. Only the simple kinds are written inline (plain integers,
 * fixed buffers, structs, custom codecs); every other field, and every error, goes through the
 * interpreter's per-field functions, so their rules stay in one place. Where code generation is not
 * allowed (a browser page whose Content-Security-Policy forbids eval), the plain loops below do the same.
 */
import type { ByteReader, ByteWriter } from '../stream/index.js';
import type { AnyVmsd, LoadContext } from './fields.js';
import type { CompiledField, State } from './interpreter.js';

/** Reads a description's fields (not its subsections or hooks) into `s`. */
export type FieldLoader = (r: ByteReader, s: State, version: number, peer: LoadContext['peer']) => void;
/** Writes a description's fields (not its subsections or hooks) from `s`. */
export type FieldSaver = (w: ByteWriter, s: State, version: number) => void;

/** What generated loops call back into: the interpreter's general per-field code. */
export interface LoopHelpers {
  loadField(r: ByteReader, cf: CompiledField, s: State, vmsd: AnyVmsd, peer: LoadContext['peer']): void;
  saveField(w: ByteWriter, cf: CompiledField, s: State, vmsd: AnyVmsd): void;
  loadState(r: ByteReader, vmsd: AnyVmsd, state: object, version: number, peer: LoadContext['peer']): void;
  saveState(w: ByteWriter, vmsd: AnyVmsd, state: object): void;
  /** Whether the field is sent at this version, for this state (its version gate or exists predicate). */
  included(cf: CompiledField, s: State, version: number): boolean;
  /** Adds the field name to a stream error's path. */
  prefix(e: unknown, name: string): unknown;
}

/** The condition under which field k is sent, or null when it always is. */
function gate(cf: CompiledField, k: number): string | null {
  if (cf.exists !== null) return `f${k}.exists(s, version)`;
  if (cf.version > 0) return `${cf.version} <= version`;
  return null;
}

function guarded(cf: CompiledField, k: number, code: string): string {
  const g = gate(cf, k);
  return g === null ? code : `if (${g}) { ${code} }`;
}

function loadCode(cf: CompiledField, k: number): string {
  const key = JSON.stringify(cf.name);
  const single = cf.count === null && !cf.nullable;
  if (cf.plainInt) return `s[${key}] = r.getBeInt(${cf.size}, ${cf.signed});`;
  if (single && cf.kind === 'buffer' && cf.size >= 0) {
    // Into the local buffer when it has the right size: devices keep references to their buffers.
    return `{ const b = r.getBuffer(${cf.size}); const l = s[${key}]; if (l instanceof Uint8Array && l.length === ${cf.size}) l.set(b); else s[${key}] = b.slice(); }`;
  }
  if (single && cf.kind === 'struct') {
    return `{ const l = s[${key}]; const t = typeof l === 'object' && l !== null ? l : {}; H.loadState(r, f${k}.sub, t, ${cf.sub?.version}, peer); s[${key}] = t; }`;
  }
  if (single && cf.kind === 'custom') return `s[${key}] = f${k}.read(r);`;
  return `H.loadField(r, f${k}, s, vmsd, peer);`;
}

function saveCode(cf: CompiledField, k: number): string {
  const key = JSON.stringify(cf.name);
  const single = cf.count === null && !cf.nullable;
  // A value of the wrong type goes to the general code, which throws the SaveError that names it.
  if (cf.plainInt && cf.size === 8) return `{ const v = s[${key}]; if (typeof v === 'bigint') w.putBeInt(8, v); else H.saveField(w, f${k}, s, vmsd); }`;
  if (cf.plainInt) return `w.putBeInt(${cf.size}, s[${key}]);`;
  if (single && cf.kind === 'buffer' && cf.size >= 0) {
    return `{ const v = s[${key}]; if (v instanceof Uint8Array && v.length >= ${cf.size}) w.putBuffer(v.length === ${cf.size} ? v : v.subarray(0, ${cf.size})); else H.saveField(w, f${k}, s, vmsd); }`;
  }
  if (single && cf.kind === 'struct') {
    return `{ const v = s[${key}]; if (typeof v === 'object' && v !== null) H.saveState(w, f${k}.sub, v); else H.saveField(w, f${k}, s, vmsd); }`;
  }
  if (single && cf.kind === 'custom') return `f${k}.write(w, s[${key}]);`;
  return `H.saveField(w, f${k}, s, vmsd);`;
}

/** Binds f0, f1, ... to the compiled fields, so the loop reads them as closure constants. */
function bindings(fields: readonly CompiledField[]): string {
  return fields.map((_, k) => `const f${k} = F[${k}];`).join('\n');
}

/** The field loop without code generation: the same steps, field by field. */
function plainLoad(vmsd: AnyVmsd, fields: readonly CompiledField[], helpers: LoopHelpers): FieldLoader {
  return (r, s, version, peer) => {
    let k = 0;
    try {
      for (; k < fields.length; k++) {
        const cf = fields[k];
        if (!helpers.included(cf, s, version)) continue;
        if (cf.plainInt) s[cf.name] = r.getBeInt(cf.size as 1 | 2 | 4 | 8, cf.signed);
        else helpers.loadField(r, cf, s, vmsd, peer);
      }
    } catch (e) {
      throw helpers.prefix(e, fields[k].name);
    }
  };
}

/** The save loop without code generation. */
function plainSave(vmsd: AnyVmsd, fields: readonly CompiledField[], helpers: LoopHelpers): FieldSaver {
  return (w, s, version) => {
    for (const cf of fields) if (helpers.included(cf, s, version)) helpers.saveField(w, cf, s, vmsd);
  };
}

/** False where the page's policy forbids new Function, or with VMSTATE_NO_CODEGEN=1 (to compare the two). */
const canGenerate = (() => {
  if (globalThis.process?.env?.VMSTATE_NO_CODEGEN === '1') return false;
  try {
    return new Function('return true')() === true;
  } catch {
    return false;
  }
})();

/** The load loop for a description's fields: generated code, or the plain loop where that is not allowed. */
export function specializeLoad(vmsd: AnyVmsd, fields: readonly CompiledField[], helpers: LoopHelpers): FieldLoader {
  if (!canGenerate) return plainLoad(vmsd, fields, helpers);
  // `k` names the field being read, for the error path.
  const body = fields.map((cf, k) => `k = ${k}; ${guarded(cf, k, loadCode(cf, k))}`).join('\n');
  const source = `"use strict";
${bindings(fields)}
return function load(r, s, version, peer) {
  let k = 0;
  try {
${body}
  } catch (e) {
    throw H.prefix(e, F[k].name);
  }
};`;
  return new Function('F', 'H', 'vmsd', source)(fields, helpers, vmsd) as FieldLoader;
}

/** The save loop for a description's fields (without its VMDESCRIPTION): generated, or the plain loop. */
export function specializeSave(vmsd: AnyVmsd, fields: readonly CompiledField[], helpers: LoopHelpers): FieldSaver {
  if (!canGenerate) return plainSave(vmsd, fields, helpers);
  const body = fields.map((cf, k) => guarded(cf, k, saveCode(cf, k))).join('\n');
  const source = `"use strict";
${bindings(fields)}
return function save(w, s, version) {
${body}
};`;
  return new Function('F', 'H', 'vmsd', source)(fields, helpers, vmsd) as FieldSaver;
}
