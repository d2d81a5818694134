/** Dependencies between entries: selectors that pick entries, resolved to plan edges. */
import { PlanError } from '../errors.js';
import type { EntryRef } from '../vmstate/index.js';
import type { PlanEdge } from './plan.js';

/** What selectors see of an entry. */
export interface EntryInfo {
  readonly idstr: string;
  readonly instanceId: number;
  readonly priority: number;
  /** The top-level description's name, if the entry has one. */
  readonly vmsdName?: string;
  /** Free-form facts for selectors (bus ranges, device kinds...). */
  readonly tags: Readonly<Record<string, unknown>>;
}

/** Picks entries: an idstr (and instance, 0 when omitted), or any predicate. */
export type EntrySelector = EntryRef | ((e: EntryInfo) => boolean);

/** `supplier` entries must be saved (and loaded) before `consumer` entries. */
export interface Dependency {
  readonly supplier: EntrySelector;
  readonly consumer: EntrySelector;
  readonly reason: string;
}

/** Index of entries by `idstr#instance`, so named dependencies resolve in constant time. */
function indexByName(entries: readonly EntryInfo[]): Map<string, number> {
  const m = new Map<string, number>();
  entries.forEach((e, i) => m.set(`${e.idstr}#${e.instanceId}`, i));
  return m;
}

/** The entries a selector picks, as indices. */
export function selectIndices(entries: readonly EntryInfo[], sel: EntrySelector, byName?: ReadonlyMap<string, number>): number[] {
  const out: number[] = [];
  if (typeof sel === 'function') {
    entries.forEach((e, i) => sel(e) && out.push(i));
  } else if (byName) {
    const i = byName.get(`${sel.idstr}#${sel.instanceId ?? 0}`);
    if (i !== undefined) out.push(i);
  } else {
    const inst = sel.instanceId ?? 0;
    entries.forEach((e, i) => e.idstr === sel.idstr && e.instanceId === inst && out.push(i));
  }
  return out;
}

/** Resolves dependencies to edges. A dependency naming an entry by idstr that does not exist is an error. */
export function resolveDependencies(entries: readonly EntryInfo[], deps: readonly Dependency[]): PlanEdge[] {
  const edges: PlanEdge[] = [];
  const byName = indexByName(entries);
  for (const d of deps) {
    const sup = selectIndices(entries, d.supplier, byName);
    const con = selectIndices(entries, d.consumer, byName);
    for (const [sel, found] of [
      [d.supplier, sup],
      [d.consumer, con],
    ] as const) {
      if (typeof sel !== 'function' && found.length === 0) {
        throw new PlanError(`dependency names ${sel.idstr}#${sel.instanceId ?? 0}, which is not registered`, { reason: d.reason });
      }
    }
    for (const s of sup) for (const c of con) if (s !== c) edges.push({ supplier: s, consumer: c, reason: d.reason });
  }
  return edges;
}
