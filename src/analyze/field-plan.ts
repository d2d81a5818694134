/**
 * A vmdesc struct prepared for decoding, built once per description and shared by every decode of it
 * (the value tree and the JSON text alike). It fixes what analyze-migration.py decides per field: how the
 * field is read, which fields share a key (array elements gather into one list), and whether the element
 * indices line up. A compressed array (`array_len`) stays one entry standing for `count` elements, so a
 * 32768-element register file is one object here, not 32768.
 */
import type { VmdescField, VmdescStruct } from './vmdesc.js';
import { intCodec } from '../vmstate/index.js';

/** How a field's bytes are read. */
export type FieldKind = 'int' | 'bool' | 'bytes' | 'struct';

/** One description entry: a field, or every element of a compressed array. */
export interface PlannedField {
  readonly name: string;
  readonly desc: VmdescField;
  readonly kind: FieldKind;
  /** Ints: QEMU reads the value as signed. */
  readonly signed: boolean;
  /** Ints: analyze-migration.py prints the value as signed (it reads "uint8 equal", "uint16 equal" and "int64 equal" so). */
  readonly shownSigned: boolean;
  /** Struct fields: the plan of each element's struct. */
  readonly struct: StructPlan | null;
  /** True for array elements, which render as one JSON list per name. */
  readonly indexed: boolean;
  /** Index of the first element this entry stands for (0 for a compressed array). */
  readonly firstIndex: number;
  /** Elements this entry stands for: its array_len, or 1. */
  readonly count: number;
  /** Element count of the key's list before this entry (its first element's position in the list). */
  readonly listPosition: number;
  /** -1, or the number of elements already read that this entry's first index fails to follow. */
  readonly indexError: number;
}

/** Consecutive entries that share one key: a single field, or the elements of one array. */
export interface FieldGroup {
  readonly name: string;
  readonly indexed: boolean;
  readonly fields: readonly PlannedField[];
}

/** A struct's fields in stream order, grouped by key, and its subsections. */
export interface StructPlan {
  readonly groups: readonly FieldGroup[];
  /** True when no two groups share a key, so no key is overwritten (Python dict semantics need no care). */
  readonly distinctNames: boolean;
  readonly subsections: readonly StructPlan[];
  /** The description's vmsd_name ('' without one): what an error names when this subsection is missing. */
  readonly vmsdName: string;
  /**
   * Bytes a body of this plan always takes, or -1 when that depends on the stream (a subsection, at any
   * depth) or a body is an error (an element index out of place). Readers can then take or skip a whole
   * array of such structs at once.
   */
  readonly fixedSize: number;
}

/** Codecs the script reads as signed although QEMU's values are unsigned. */
const SCRIPT_SIGNED: ReadonlySet<string> = new Set(['uint8 equal', 'uint16 equal', 'int64 equal']);

/** Whether analyze-migration.py prints an integer codec's values as signed. */
export function scriptShowsSigned(type: string, signed: boolean): boolean {
  return signed || SCRIPT_SIGNED.has(type);
}

const plans = new WeakMap<VmdescStruct, StructPlan>();

/** True if a group of `plan` has the key `name`. */
export function hasKey(plan: StructPlan, name: string): boolean {
  const groups = plan.groups;
  for (let i = 0; i < groups.length; i++) if (groups[i].name === name) return true;
  return false;
}

const NO_SUBSECTIONS: readonly StructPlan[] = [];

/** Plans with more groups than this look for a repeated key through a Set, smaller ones pair by pair. */
const PAIRWISE_KEY_CHECK_MAX = 16;

/** True when no two groups share a key. Most plans are small, and building plans is part of every CLI run. */
function distinctKeys(groups: readonly FieldGroup[]): boolean {
  if (groups.length > PAIRWISE_KEY_CHECK_MAX) return new Set(groups.map((g) => g.name)).size === groups.length;
  for (let a = 1; a < groups.length; a++) {
    for (let b = 0; b < a; b++) if (groups[a].name === groups[b].name) return false;
  }
  return true;
}

/** The plan of `desc`, built on first use. */
export function structPlan(desc: VmdescStruct): StructPlan {
  let plan = plans.get(desc);
  if (plan === undefined) {
    plan = buildPlan(desc);
    plans.set(desc, plan);
  }
  return plan;
}

function buildPlan(desc: VmdescStruct): StructPlan {
  const groups: { name: string; indexed: boolean; fields: PlannedField[] }[] = [];
  // Elements read so far per key, as the script counts them to check each index (made for arrays only).
  let listLengths: Map<string, number> | null = null;
  let fixedSize = desc.subsections === undefined || desc.subsections.length === 0 ? 0 : -1;
  // Indexed loops: plans are built in every CLI run, where for-of's iterator calls cost more than the work.
  for (let i = 0; i < desc.fields.length; i++) {
    const f = desc.fields[i];
    const compressed = f.array_len !== undefined;
    const count = compressed ? (f.array_len as number) : 1;
    // A compressed array of no elements reads nothing and adds no key.
    if (count === 0) continue;
    const indexed = compressed || f.index !== undefined;
    const firstIndex = compressed ? 0 : (f.index ?? 0);
    const have = indexed ? (listLengths?.get(f.name) ?? 0) : 0;
    const indexError = indexed && have !== firstIndex ? have : -1;
    if (indexed) (listLengths ??= new Map()).set(f.name, have + count);
    const int = intCodec(f.type);
    const kind: FieldKind = f.type === 'struct' ? 'struct' : int ? 'int' : f.type === 'bool' && f.size === 1 ? 'bool' : 'bytes';
    const planned: PlannedField = {
      name: f.name,
      desc: f,
      kind,
      signed: int?.signed ?? false,
      shownSigned: int !== undefined && scriptShowsSigned(f.type, int.signed),
      struct: kind === 'struct' ? structPlan(f.struct as VmdescStruct) : null,
      indexed,
      firstIndex,
      count,
      listPosition: have,
      indexError,
    };
    const elementSize = planned.struct === null ? f.size : planned.struct.fixedSize;
    fixedSize = fixedSize < 0 || elementSize < 0 || indexError >= 0 ? -1 : fixedSize + count * elementSize;
    const last = groups[groups.length - 1];
    if (indexed && last !== undefined && last.indexed && last.name === f.name) {
      last.fields.push(planned);
      continue;
    }
    groups.push({ name: f.name, indexed, fields: [planned] });
  }
  return {
    groups,
    distinctNames: distinctKeys(groups),
    subsections: desc.subsections === undefined || desc.subsections.length === 0 ? NO_SUBSECTIONS : desc.subsections.map(structPlan),
    vmsdName: desc.vmsd_name ?? '',
    fixedSize,
  };
}
