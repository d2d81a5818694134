/**
 * The VMDESCRIPTION trailer: JSON that QEMU writes after EOF describing every FULL section's fields
 * (migration/vmstate.c vmstate_save_state_v, QEMU 7.2). Device bodies are not self-describing, so this is
 * what lets a tool decode them. It is untrusted input: its shape is checked before anything relies on it.
 */
import { StreamFormatError } from '../errors.js';

/** One field object (one element, or element 0 of a compressed array). */
export interface VmdescField {
  readonly name: string;
  readonly type: string;
  readonly size: number;
  readonly array_len?: number;
  readonly index?: number;
  readonly struct?: VmdescStruct;
}

/** A nested description: a struct field's `struct`, or a subsection. */
export interface VmdescStruct {
  readonly vmsd_name?: string;
  readonly version?: number;
  readonly fields: readonly VmdescField[];
  readonly subsections?: readonly VmdescStruct[];
}

/** A device entry: one FULL section. */
export interface VmdescDevice extends VmdescStruct {
  readonly name: string;
  readonly instance_id: number;
}

/** The whole trailer. */
export interface Vmdesc {
  readonly page_size: number;
  readonly devices: readonly VmdescDevice[];
}

/** Deepest nesting of structs and subsections accepted. */
const MAX_DEPTH = 64;
/** Largest array_len accepted (a 1 GiB buffer of bytes described element by element would be absurd). */
const MAX_ARRAY_LEN = 1 << 24;

/** Parses and checks the trailer's JSON bytes. `offset` is where the JSON starts in the stream. */
export function parseVmdesc(json: Uint8Array, offset: number): Vmdesc {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(json));
  } catch (e) {
    throw new StreamFormatError(`VMDESCRIPTION is not valid JSON: ${(e as Error).message}`, { offset, path: 'vmdesc' });
  }
  const bad = (what: string) => new StreamFormatError(`VMDESCRIPTION ${what}`, { offset, path: 'vmdesc' });
  if (!isObject(value)) throw bad('is not a JSON object');
  if (!isCount(value.page_size)) throw bad('has no integer page_size');
  if (!Array.isArray(value.devices)) throw bad('has no devices list');
  const devices: unknown[] = value.devices;
  for (let i = 0; i < devices.length; i++) {
    const d = devices[i];
    if (!isObject(d) || typeof d.name !== 'string' || !isCount(d.instance_id)) throw bad(`devices[${i}] needs a name and an instance_id`);
    checkStruct(d, () => `devices[${i}] (${d.name})`, 0, bad);
  }
  return value as unknown as Vmdesc;
}

/**
 * Checks one struct. `where` names it for a message; it is a function because the check runs on every
 * field of every device at each start-up, while a message is needed at most once. For the same reason a
 * field's own name for a message is made only when there is one to give (or a nested struct to check).
 */
function checkStruct(s: Record<string, unknown>, where: () => string, depth: number, bad: (w: string) => Error): void {
  if (depth > MAX_DEPTH) throw bad(`${where()} nests deeper than ${MAX_DEPTH}`);
  if (!Array.isArray(s.fields)) throw bad(`${where()} has no fields list`);
  const fields: unknown[] = s.fields;
  const fw = (i: number): string => `${where()}.fields[${i}]`;
  const sw = (i: number): string => `${where()}.subsections[${i}]`;
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i];
    if (!isObject(f) || typeof f.name !== 'string' || typeof f.type !== 'string' || !isCount(f.size)) {
      throw bad(`${fw(i)} needs name, type and a non-negative integer size`);
    }
    if (f.array_len !== undefined && (!isCount(f.array_len) || f.array_len > MAX_ARRAY_LEN)) {
      throw bad(`${fw(i)} (${f.name}) has array_len ${String(f.array_len)}, not an integer up to ${MAX_ARRAY_LEN}`);
    }
    if (f.index !== undefined && !isCount(f.index)) throw bad(`${fw(i)} (${f.name}) has a bad index`);
    if (f.type === 'struct') {
      if (!isObject(f.struct)) throw bad(`${fw(i)} (${f.name}) is a struct without a "struct" description`);
      checkNested(f.struct, fw, i, ` (${f.name})`, depth + 1, bad);
    }
  }
  if (s.subsections !== undefined) {
    if (!Array.isArray(s.subsections)) throw bad(`${where()} has a subsections value that is not a list`);
    const subsections: unknown[] = s.subsections;
    for (let i = 0; i < subsections.length; i++) {
      const sub = subsections[i];
      if (!isObject(sub)) throw bad(`${where()}.subsections[${i}] is not an object`);
      checkNested(sub, sw, i, '', depth + 1, bad);
    }
  }
}

/**
 * checkStruct on element `i` of a list, named `name(i) + suffix`. The name's closure is made here, so the
 * loops above allocate nothing per element.
 */
function checkNested(s: Record<string, unknown>, name: (i: number) => string, i: number, suffix: string, depth: number, bad: (w: string) => Error): void {
  checkStruct(s, () => name(i) + suffix, depth, bad);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}
