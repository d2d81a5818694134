/**
 * `vmstate plan FILE.json`: the save order of a set of entries, with the reason for each position.
 *
 * FILE.json:
 *   { "entries": [ { "idstr": "0000:00:03.0/pcie-root-port", "instance": 0, "vmsd": "pcie-root-port",
 *                    "priority": "PCI_BUS", "tags": { ... } }, ... ],
 *     "dependencies": [ { "supplier": SELECTOR, "consumer": SELECTOR, "reason": "..." }, ... ],
 *     "edgesWin": false }
 * An entry's priority is a MigPriority name or number; without one, QEMU 7.2's priority for its vmsd.
 * A SELECTOR matches entries by any of "idstr" (with "instance"), "vmsd", "priority", "tags" (all given
 * keys must match).
 */
import { readFileSync } from 'node:fs';
import { IoError, UsageError } from '../errors.js';
import { planOrder, QEMU_PRIORITY_BY_VMSD, resolveDependencies, type Dependency, type EntryInfo } from '../savevm/index.js';
import { MigPriority, priorityName } from '../vmstate/index.js';
import { parseArgs, type Output } from './args.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function isObj(v: Json | undefined): v is { [k: string]: Json } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function priorityOf(v: Json | undefined, vmsd: string | undefined, where: string): number {
  if (v === undefined) return QEMU_PRIORITY_BY_VMSD.get(vmsd ?? '') ?? MigPriority.DEFAULT;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v;
  if (typeof v === 'string' && v in MigPriority) return MigPriority[v as keyof typeof MigPriority];
  throw new UsageError(`${where}: priority ${JSON.stringify(v)} is not one of ${Object.keys(MigPriority).join(', ')} or a number`);
}

function selector(v: Json | undefined, where: string): (e: EntryInfo) => boolean {
  if (!isObj(v) || Object.keys(v).length === 0) throw new UsageError(`${where}: a selector is an object with idstr, instance, vmsd, priority or tags`);
  const known = ['idstr', 'instance', 'vmsd', 'priority', 'tags'];
  for (const k of Object.keys(v)) if (!known.includes(k)) throw new UsageError(`${where}: unknown selector key "${k}"`);
  const prio = v.priority === undefined ? undefined : priorityOf(v.priority, undefined, where);
  const tags = isObj(v.tags) ? v.tags : {};
  return (e) =>
    (v.idstr === undefined || e.idstr === v.idstr) &&
    (v.instance === undefined ? v.idstr === undefined || e.instanceId === 0 : e.instanceId === v.instance) &&
    (v.vmsd === undefined || e.vmsdName === v.vmsd) &&
    (prio === undefined || e.priority === prio) &&
    Object.entries(tags).every(([k, t]) => JSON.stringify(e.tags[k]) === JSON.stringify(t));
}

/** Parses a plan file into entries and dependencies. */
function parsePlanFile(text: string, path: string): { entries: EntryInfo[]; deps: Dependency[]; edgesWin: boolean } {
  let doc: Json;
  try {
    doc = JSON.parse(text) as Json;
  } catch (e) {
    throw new UsageError(`${path}: not JSON (${(e as Error).message})`);
  }
  if (!isObj(doc) || !Array.isArray(doc.entries)) throw new UsageError(`${path}: expected an object with an "entries" list`);
  const entries: EntryInfo[] = doc.entries.map((e, i) => {
    const where = `${path}: entries[${i}]`;
    if (!isObj(e) || typeof e.idstr !== 'string') throw new UsageError(`${where}: needs an "idstr" string`);
    const vmsd = typeof e.vmsd === 'string' ? e.vmsd : undefined;
    const instanceId = e.instance === undefined ? 0 : e.instance;
    if (typeof instanceId !== 'number' || !Number.isInteger(instanceId) || instanceId < 0) throw new UsageError(`${where}: "instance" must be a non-negative integer`);
    return { idstr: e.idstr, instanceId, vmsdName: vmsd, priority: priorityOf(e.priority, vmsd, where), tags: isObj(e.tags) ? e.tags : {} };
  });
  const seen = new Set<string>();
  for (const e of entries) {
    const key = `${e.idstr}#${e.instanceId}`;
    if (seen.has(key)) throw new UsageError(`${path}: ${key} is listed twice`);
    seen.add(key);
  }
  const depsJson = doc.dependencies ?? [];
  if (!Array.isArray(depsJson)) throw new UsageError(`${path}: "dependencies" must be a list`);
  const deps: Dependency[] = depsJson.map((d, i) => {
    const where = `${path}: dependencies[${i}]`;
    if (!isObj(d)) throw new UsageError(`${where}: expected an object`);
    return { supplier: selector(d.supplier, `${where}.supplier`), consumer: selector(d.consumer, `${where}.consumer`), reason: typeof d.reason === 'string' ? d.reason : 'declared dependency' };
  });
  return { entries, deps, edgesWin: doc.edgesWin === true };
}

export function planCommand(argv: readonly string[], out: Output): number {
  const args = parseArgs(argv, ['json', 'edges-win'], []);
  if (args.positional.length !== 1) throw new UsageError('plan takes FILE.json (see vmstate help)');
  const path = args.positional[0];
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new IoError(`${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`, { path }, e);
  }
  const { entries, deps, edgesWin } = parsePlanFile(text, path);
  const nodes = entries.map((e) => ({ ...e, label: `${e.idstr}#${e.instanceId}` }));
  const result = planOrder(nodes, resolveDependencies(entries, deps), { edgesWin: edgesWin || args.flags.has('edges-win') });
  const rows = Array.from(result.order, (i, pos) => ({ position: pos, idstr: entries[i].idstr, instance: entries[i].instanceId, vmsd: entries[i].vmsdName ?? null, priority: priorityName(entries[i].priority), reasons: result.explain(i) }));
  if (args.flags.has('json')) {
    out.stdout(JSON.stringify({ order: rows, overrides: result.overrides.map((o) => ({ supplier: nodes[o.supplier].label, consumer: nodes[o.consumer].label, reason: o.reason })) }, null, 2) + '\n');
    return 0;
  }
  const width = String(rows.length - 1).length;
  for (const r of rows) {
    out.stdout(`${String(r.position).padStart(width)}  ${r.idstr}#${r.instance}${r.vmsd ? ` [${r.vmsd}]` : ''}\n`);
    for (const why of r.reasons) out.stdout(`${' '.repeat(width)}    ${why}\n`);
  }
  return 0;
}
