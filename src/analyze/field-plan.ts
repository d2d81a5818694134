/**
 * A vmdesc struct prepared for reading under one script's rules, built once per description and shared
 * by every read of it: how each field is read, which fields share a key (array elements gather into one
 * list), whether the element indices line up, and how many bytes a body takes. A compressed array
 * (`array_len`) stays one entry standing for `count` elements, so a 32768-element register file is one
 * object here, not 32768.
 */
import type { AnalyzeScript, LeafRule } from './script-7.2.js';
import type { VmdescField, VmdescStruct } from './vmdesc.js';

/** One description entry: a field, or every element of a compressed array. */
export interface PlannedField {
  readonly name: string;
  readonly desc: VmdescField;
  /** How a leaf's bytes are read and shown; null for a struct field. */
  readonly leaf: LeafRule | null;
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
  /**
   * True when no key can repeat here or in any nested struct, as long as each subsection comes under
   * its description's name: no two groups share a key, and no subsection name is a group's key or
   * another subsection's.
   */
  readonly distinctKeys: boolean;
  readonly subsections: readonly StructPlan[];
  /** The description's vmsd_name ('' without one): what an error names when this subsection is missing. */
  readonly vmsdName: string;
  /**
   * Bytes a body of this plan always takes, or -1 when that depends on the stream (a subsection, at any
   * depth) or a body is an error (an element index out of place). Readers can then take or skip a whole
   * array of such structs at once.
   */
  readonly fixedSize: number;
  /** The most bytes a body of this plan can take (a subsection's name may be up to 255 bytes). */
  readonly maxSize: number;
}

/** Bytes a subsection adds before its body: marker, name length, a name of up to 255 bytes, version. */
const SUBSECTION_HEADER_MAX = 1 + 1 + 255 + 4;

const plansByScript = new WeakMap<AnalyzeScript, WeakMap<VmdescStruct, StructPlan>>();

/** True if a group of `plan` has the key `name`. */
export function hasKey(plan: StructPlan, name: string): boolean {
  const groups = plan.groups;
  for (let i = 0; i < groups.length; i++) if (groups[i].name === name) return true;
  return false;
}

const NO_SUBSECTIONS: readonly StructPlan[] = [];

/** Lists with more names than this look for a repeat through a Set, shorter ones pair by pair. */
const PAIRWISE_KEY_CHECK_MAX = 16;

/** True when no two of `names` are equal. Most lists are short, and plans are built in every CLI run. */
function distinct(names: readonly string[]): boolean {
  if (names.length > PAIRWISE_KEY_CHECK_MAX) return new Set(names).size === names.length;
  for (let a = 1; a < names.length; a++) {
    for (let b = 0; b < a; b++) if (names[a] === names[b]) return false;
  }
  return true;
}

/** How many elements each field name stands for in all (a compressed array counts its length). */
function elementsPerName(fields: readonly VmdescField[]): Map<string, number> {
  const out = new Map<string, number>();
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i];
    out.set(f.name, (out.get(f.name) ?? 0) + (f.array_len ?? 1));
  }
  return out;
}

/** The plan of `desc` under `script`, built on first use. */
export function structPlan(desc: VmdescStruct, script: AnalyzeScript): StructPlan {
  let plans = plansByScript.get(script);
  if (plans === undefined) plansByScript.set(script, (plans = new WeakMap()));
  let plan = plans.get(desc);
  if (plan === undefined) {
    plan = buildPlan(desc, script);
    plans.set(desc, plan);
  }
  return plan;
}

function buildPlan(desc: VmdescStruct, script: AnalyzeScript): StructPlan {
  const groups: { name: string; indexed: boolean; fields: PlannedField[] }[] = [];
  // Elements read so far per key, as the script counts them to check each index (made for arrays only).
  let listLengths: Map<string, number> | null = null;
  const hasSubsections = desc.subsections !== undefined && desc.subsections.length > 0;
  let fixedSize = hasSubsections ? -1 : 0;
  let maxSize = 0;
  let nestedDistinct = true;
  const byName = script.lists === 'name';
  // Lists by name: a name's fields make a list when they hold two elements or more in all.
  const elements = byName ? elementsPerName(desc.fields) : null;
  // Indexed loops: plans are built in every CLI run, where for-of's iterator calls cost more than the work.
  for (let i = 0; i < desc.fields.length; i++) {
    const f = desc.fields[i];
    const compressed = f.array_len !== undefined;
    const count = compressed ? (f.array_len as number) : 1;
    // A compressed array of no elements reads nothing and adds no key.
    if (count === 0) continue;
    const indexed = elements !== null ? (elements.get(f.name) as number) > 1 : compressed || f.index !== undefined;
    const have = indexed ? (listLengths?.get(f.name) ?? 0) : 0;
    // Lists by index: each element claims its index, which must follow the elements already read.
    const firstIndex = byName ? have : compressed ? 0 : (f.index ?? 0);
    const indexError = indexed && have !== firstIndex ? have : -1;
    if (indexed) (listLengths ??= new Map()).set(f.name, have + count);
    const struct = f.type === 'struct' ? structPlan(f.struct as VmdescStruct, script) : null;
    const planned: PlannedField = {
      name: f.name,
      desc: f,
      leaf: struct === null ? script.leaf(f.type, f.size) : null,
      struct,
      indexed,
      firstIndex,
      count,
      listPosition: have,
      indexError,
    };
    if (struct !== null && !struct.distinctKeys) nestedDistinct = false;
    const elementSize = struct === null ? f.size : struct.fixedSize;
    fixedSize = fixedSize < 0 || elementSize < 0 || indexError >= 0 ? -1 : fixedSize + count * elementSize;
    maxSize += count * (struct === null ? f.size : struct.maxSize);
    const last = groups[groups.length - 1];
    if (indexed && last !== undefined && last.indexed && last.name === f.name) {
      last.fields.push(planned);
      continue;
    }
    groups.push({ name: f.name, indexed, fields: [planned] });
  }
  let subsections = NO_SUBSECTIONS;
  const keys = groups.map((g) => g.name);
  if (hasSubsections) {
    subsections = (desc.subsections as readonly VmdescStruct[]).map((s) => structPlan(s, script));
    for (const sub of subsections) {
      keys.push(sub.vmsdName);
      maxSize += SUBSECTION_HEADER_MAX + sub.maxSize;
      if (!sub.distinctKeys) nestedDistinct = false;
    }
  }
  return {
    groups,
    distinctKeys: nestedDistinct && distinct(keys),
    subsections,
    vmsdName: desc.vmsd_name ?? '',
    fixedSize,
    maxSize,
  };
}
