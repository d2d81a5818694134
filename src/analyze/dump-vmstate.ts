/**
 * QEMU's `-dump-vmstate FILE` JSON (migration/savevm.c dump_vmstate_json_to_file, the same in 7.2 and
 * 10.x): one entry per device class that has a VMStateDescription in dc->vmsd, keyed by the class name,
 *
 *   { "vmschkmachine": { "Name": MACHINE },
 *     CLASS: { "Name": VMSD, "version_id": N, "minimum_version_id": N, "Description": DESC }, ... }
 *   DESC  = { "name", "version_id", "minimum_version_id", "Fields"?: [FIELD], "Subsections"?: [DESC] }
 *   FIELD = { "field", "version_id", "field_exists", "size", "num"?, "Description"?: DESC }
 *
 * `version_id` of a field is the section version it appeared in; `field_exists` says a test function
 * decides whether it is sent; `size` is one element's, `num` the element count of an array. CPUs (their
 * description is not the class's dc->vmsd) and RAM are not in it. Untrusted input: checked as it is read.
 */
import { StreamFormatError } from '../errors.js';

/** One field as the dump describes it. */
export interface DumpField {
  readonly field: string;
  readonly version_id: number;
  readonly field_exists: boolean;
  readonly size: number;
  readonly num?: number;
  readonly Description?: DumpDescription;
}

/** A VMStateDescription as the dump describes it. */
export interface DumpDescription {
  readonly name: string;
  readonly version_id: number;
  readonly minimum_version_id: number;
  readonly Fields?: readonly DumpField[];
  readonly Subsections?: readonly DumpDescription[];
}

/** One device class. */
export interface DumpEntry {
  readonly Name: string;
  readonly version_id: number;
  readonly minimum_version_id: number;
  readonly Description: DumpDescription;
}

/** A whole dump: the machine it was made for, and its classes by name. */
export interface VmstateDump {
  readonly machine: string | null;
  readonly classes: ReadonlyMap<string, DumpEntry>;
}

const MAX_DEPTH = 64;

/** Parses and checks a dump's JSON text; `where` names it in errors (a file name). */
export function parseVmstateDump(text: string, where: string): VmstateDump {
  const bad = (what: string) => new StreamFormatError(`${where}: not a -dump-vmstate file: ${what}`, { offset: 0, path: where });
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw bad((e as Error).message);
  }
  if (!isObject(value)) throw bad('not a JSON object');
  const classes = new Map<string, DumpEntry>();
  let machine: string | null = null;
  for (const [name, entry] of Object.entries(value)) {
    if (name === 'vmschkmachine') {
      machine = isObject(entry) && typeof entry.Name === 'string' ? entry.Name : null;
      continue;
    }
    if (!isObject(entry) || typeof entry.Name !== 'string' || !isCount(entry.version_id) || !isCount(entry.minimum_version_id)) {
      throw bad(`"${name}" needs Name, version_id and minimum_version_id`);
    }
    checkDescription(entry.Description, name, 0, bad);
    classes.set(name, entry as unknown as DumpEntry);
  }
  return { machine, classes };
}

function checkDescription(d: unknown, where: string, depth: number, bad: (w: string) => Error): void {
  if (depth > MAX_DEPTH) throw bad(`${where} nests deeper than ${MAX_DEPTH}`);
  if (!isObject(d) || typeof d.name !== 'string' || !isCount(d.version_id) || !isCount(d.minimum_version_id)) throw bad(`${where}: a Description needs name, version_id and minimum_version_id`);
  if (d.Fields !== undefined) {
    if (!Array.isArray(d.Fields)) throw bad(`${where}: Fields is not a list`);
    for (const f of d.Fields as unknown[]) {
      if (!isObject(f) || typeof f.field !== 'string' || !isCount(f.version_id) || typeof f.field_exists !== 'boolean' || !isCount(f.size)) {
        throw bad(`${where}: a field needs field, version_id, field_exists and size`);
      }
      if (f.num !== undefined && !isCount(f.num)) throw bad(`${where}.${f.field}: num is not a count`);
      if (f.Description !== undefined) checkDescription(f.Description, `${where}.${f.field}`, depth + 1, bad);
    }
  }
  if (d.Subsections !== undefined) {
    if (!Array.isArray(d.Subsections)) throw bad(`${where}: Subsections is not a list`);
    for (const s of d.Subsections as unknown[]) checkDescription(s, `${where}/subsection`, depth + 1, bad);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0;
}
