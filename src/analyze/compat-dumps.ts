/**
 * `vmstate compat --dumps OLD.json NEW.json`: can what a QEMU whose `-dump-vmstate` is OLD sends be loaded
 * by the QEMU whose dump is NEW? The comparison QEMU's scripts/vmstate-static-checker.py makes, class by
 * class, with what it misses:
 *
 *   - versions: OLD's version above NEW's, and below NEW's minimum, whether or not a Description follows;
 *   - fields as NEW loads OLD's version: NEW's fields newer than OLD's version are not expected, and each
 *     nested description and subsection is read at its own version, as vmstate_load_state does;
 *   - every field to the end on both sides (the checker stops where the source's run out);
 *   - `unused` padding and a buffer split into fields of the same bytes line up (compat.ts);
 *   - subsections OLD may send that NEW does not know: a risk (their needed() decides, and a dump cannot
 *     run it); fields behind a test function (field_exists) are compared as if sent, and noted;
 *   - classes one build has and the other has not are listed apart: they break nothing unless the
 *     machine has such a device (the checker counts them as errors);
 *   - CPUs and RAM are not in a dump: said so, with the way to check them (compat on two streams).
 */
import { compareStreams, compareStruct, DUMP_FIELD, finishReport, UNCOUNTED_FIELD, type CompatFinding, type CompatKind, type CompatReport, type DumpSideField, type StreamProfile } from './compat.js';
import type { DumpDescription, DumpEntry, DumpField, VmstateDump } from './dump-vmstate.js';
import type { VmdescField, VmdescStruct } from './vmdesc.js';

/** compareDumps' answer. */
export interface DumpCompatReport {
  readonly oldMachine: string | null;
  readonly newMachine: string | null;
  /** Differences in classes both dumps have, in class-name order (offsets are 0: no stream). */
  readonly findings: readonly CompatFinding[];
  /** Classes in OLD only, and in NEW only: no break unless the machine has one. */
  readonly onlyInOld: readonly string[];
  readonly onlyInNew: readonly string[];
  /** Classes compared. */
  readonly compared: number;
  /** What a dump cannot tell. */
  readonly notCovered: string;
}

/** Compares OLD (the source's build) with NEW (the destination's). */
export function compareDumps(old: VmstateDump, neu: VmstateDump): DumpCompatReport {
  const findings: CompatFinding[] = [];
  const names = [...old.classes.keys()].sort();
  // QEMU writes an array's element count ("num") only from 8.x on: with one dump lacking them, array
  // lengths are not compared at all (every array would read as one element there).
  const counts = hasCounts(old) && hasCounts(neu);
  let compared = 0;
  for (const name of names) {
    const a = old.classes.get(name);
    const b = neu.classes.get(name);
    if (a === undefined || b === undefined) continue;
    compared++;
    const at = { section: name, offset: 0 };
    if (a.version_id > b.version_id) {
      findings.push({ kind: 'version-too-new', severity: 'fail', ...at, message: `${name} (${a.Name}): version ${a.version_id}, above the destination's ${b.version_id}` });
      continue;
    }
    if (a.version_id < b.minimum_version_id) {
      findings.push({ kind: 'version-too-old', severity: 'fail', ...at, message: `${name} (${a.Name}): version ${a.version_id}, below the destination's minimum ${b.minimum_version_id}` });
      continue;
    }
    const conditional: string[] = [];
    const theirsConditional: string[] = [];
    const mine = asStruct(a.Description, a.version_id, '', { conditional, counts });
    const theirs = asStruct(b.Description, a.version_id, '', { conditional: theirsConditional, counts });
    const here: CompatFinding[] = [];
    compareStruct(mine, theirs, '', at, here);
    // A field one side sends only when a test function says so is how QEMU keeps old machine types
    // compatible (a compat property turns it off): added or missing, it may not be on the wire at all.
    for (const f of here) {
      if (f.kind === 'subsection-unknown') {
        // A dump lists every subsection its build knows: unknown there, it fails whenever it is sent.
        findings.push({ ...f, message: `${f.field}: the old build may send this subsection, which the new one does not know: the load fails whenever it is sent (its needed() decides, which a dump cannot run)` });
        continue;
      }
      const behindTest = (f.kind === 'field-added' && theirsConditional.includes(f.field ?? '')) || (f.kind === 'field-missing' && conditional.includes(f.field ?? ''));
      findings.push(behindTest && f.severity === 'fail' ? { ...f, severity: 'risk', message: `${f.message} (it is sent only when a test function says so, as for a machine type's compat property)` } : f);
    }
    if (conditional.length > 0) {
      findings.push({
        kind: 'conditional-field',
        severity: 'note',
        ...at,
        message: `${[...new Set(conditional)].join(', ')}: sent only when a test function says so; compared as if sent`,
      });
    }
  }
  return {
    oldMachine: old.machine,
    newMachine: neu.machine,
    findings,
    onlyInOld: names.filter((n) => !neu.classes.has(n)),
    onlyInNew: [...neu.classes.keys()].filter((n) => !old.classes.has(n)).sort(),
    compared,
    notCovered:
      'CPUs and RAM are not in -dump-vmstate (their descriptions are not a class\'s dc->vmsd): compare two streams for them (vmstate compat SOURCE DEST)' +
      (counts ? '' : '; array lengths: one dump has no element counts (QEMU 7.2 writes none), so they are not compared'),
  };
}

/**
 * A dump description as a VMDESCRIPTION struct, holding the fields a load at `version` reads: a field
 * newer than it is neither sent nor expected. Nested descriptions and subsections go at their own version.
 */
/** How a dump's descriptions are read: where conditional fields are noted, and whether counts count. */
interface Reading {
  readonly conditional: string[];
  readonly counts: boolean;
  /**
   * Against a stream: fields named as a VMDESCRIPTION names them (a name that repeats gets `[k]`, its
   * k-th time), and conditional ones marked, since the stream has only the alternative that was sent.
   */
  readonly streamNames?: boolean;
}

function asStruct(d: DumpDescription, version: number, path: string, how: Reading): VmdescStruct {
  const fields: DumpSideField[] = [];
  const all = d.Fields ?? [];
  const seen = new Map<string, number>();
  for (const f of all) {
    const k = seen.get(f.field) ?? 0;
    seen.set(f.field, k + 1);
    if (f.version_id > version) continue;
    const repeated = how.streamNames && all.filter((x) => x.field === f.field).length > 1;
    const own = repeated ? { ...f, field: `${f.field}[${k}]` } : f;
    const name = path ? `${path}.${own.field}` : own.field;
    if (f.field_exists) how.conditional.push(name);
    const field: DumpSideField = { ...asField(own, name, how), ...(f.field === 'unused' ? { type: 'unused_buffer' } : {}) };
    fields.push(how.streamNames && f.field_exists ? { ...field, conditional: true } : field);
  }
  return {
    vmsd_name: d.name,
    version: d.version_id,
    fields,
    subsections: (d.Subsections ?? []).map((s) => asStruct(s, s.version_id, `${path ? `${path}/` : ''}${s.name}`, how)),
  };
}

function asField(f: DumpField, path: string, how: Reading): DumpSideField {
  // A dump gives sizes, not types: `unused` padding is known by its name (VMSTATE_UNUSED's).
  const type = f.Description ? 'struct' : f.field === 'unused' ? 'unused_buffer' : how.counts ? DUMP_FIELD : UNCOUNTED_FIELD;
  const array = how.counts && f.num !== undefined && f.num > 1 ? { array_len: f.num } : {};
  const unknown = how.counts && f.num !== undefined ? {} : { countUnknown: true as const, ...(f.Description && how.streamNames ? { maybeEmpty: true as const } : {}) };
  const struct = f.Description ? { struct: asStruct(f.Description, f.Description.version_id, path, how) } : {};
  return { name: f.field, type, size: f.size, ...array, ...unknown, ...struct };
}

/** True if the dump gives any array's element count. */
function hasCounts(dump: VmstateDump): boolean {
  const walk = (d: DumpDescription): boolean =>
    (d.Fields ?? []).some((f) => f.num !== undefined || (f.Description !== undefined && walk(f.Description))) || (d.Subsections ?? []).some(walk);
  return [...dump.classes.values()].some((e) => walk(e.Description));
}

/** The report as text: breaks and risks, notes, the classes one build lacks, and what a dump cannot tell. */
export function formatDumpCompat(r: DumpCompatReport): string {
  const out: string[] = [];
  if (r.oldMachine !== r.newMachine) out.push(`machine types: ${r.oldMachine ?? '?'} (old), ${r.newMachine ?? '?'} (new)`);
  for (const f of r.findings) out.push(`${f.severity.padEnd(5)} ${f.kind.padEnd(18)} ${f.section}${f.field ? ` ${f.field}` : ''}: ${f.message}`);
  if (r.onlyInOld.length > 0) out.push(`only in old (no break unless the machine has one): ${r.onlyInOld.join(', ')}`);
  if (r.onlyInNew.length > 0) out.push(`only in new: ${r.onlyInNew.join(', ')}`);
  out.push(`not covered: ${r.notCovered}`);
  const breaks = r.findings.filter((f) => f.severity === 'fail').length;
  const risks = r.findings.filter((f) => f.severity === 'risk').length;
  out.push(`${r.compared} classes compared: ${breaks} break(s), ${risks} risk(s)`);
  return out.join('\n') + '\n';
}

/**
 * `vmstate compat SOURCE DEST.json`: SOURCE's stream against the destination's -dump-vmstate (and its
 * stream too, when given: the dump adds what a stream cannot tell). Each device section is matched to the
 * dump's class of the same VMStateDescription name; the dump knows every subsection and every version
 * the destination takes, where its stream shows only those it sent:
 *   - a version above the destination's, or below its minimum, fails;
 *   - a subsection the destination does not know fails (sent, it is refused);
 *   - without DEST's stream, fields are compared with the dump's, read at SOURCE's version.
 * Sections that are no device class's (cpu, ram, slirp, timer, ...) are not in a dump: noted, and only
 * DEST's stream can check them.
 */
export function compareStreamToDump(source: StreamProfile, dump: VmstateDump, dest?: StreamProfile): CompatReport {
  const base = dest ? compareStreams(source, dest) : null;
  const findings: CompatFinding[] = [...(base?.findings ?? [])];
  const sourceMachine = source.identity.machineType?.value;
  if (!dest && dump.machine !== null && sourceMachine !== undefined && dump.machine !== sourceMachine) {
    findings.push({ kind: 'machine-type', severity: 'fail', section: 'configuration', offset: 8, message: `Machine type received is '${sourceMachine}' and local is '${dump.machine}'` });
  }
  const byVmsd = new Map<string, DumpEntry>();
  for (const entry of dump.classes.values()) if (!byVmsd.has(entry.Name)) byVmsd.set(entry.Name, entry);
  const counts = hasCounts(dump);
  const notInDump: string[] = [];
  for (const row of source.sections) {
    if (row.type !== 'full') continue;
    const device = source.vmdesc.devices.find((d) => d.name === row.idstr && d.instance_id === row.instanceId);
    const entry = device?.vmsd_name === undefined ? undefined : byVmsd.get(device.vmsd_name);
    const at = { section: row.idstr, instance: row.instanceId, offset: row.offset };
    if (device === undefined || entry === undefined) {
      notInDump.push(row.idstr);
      continue;
    }
    const has = (kind: CompatKind) => findings.some((f) => f.kind === kind && f.section === row.idstr && f.instance === row.instanceId);
    if (row.version > entry.version_id) {
      if (!has('version-too-new')) findings.push({ kind: 'version-too-new', severity: 'fail', ...at, message: `${row.idstr}: version ${row.version} is newer than the destination's ${entry.version_id}` });
      continue;
    }
    if (row.version < entry.minimum_version_id) {
      findings.push({ kind: 'version-too-old', severity: 'fail', ...at, message: `${row.idstr}: version ${row.version} is older than the oldest the destination loads (${entry.minimum_version_id})` });
      continue;
    }
    if (!dest) {
      compareStruct(collapseArrays(device), asStruct(entry.Description, row.version, '', { conditional: [], counts, streamNames: true }), '', at, findings);
    }
    // What the destination knows, not only what it sent: a subsection it lacks fails for sure.
    for (let k = 0; k < findings.length; k++) {
      const f = findings[k];
      if (f.kind !== 'subsection-unknown' || f.section !== row.idstr || f.instance !== row.instanceId) continue;
      const name = f.field?.split('/').at(-1);
      if (!knowsSubsection(entry.Description, name)) findings[k] = { ...f, severity: 'fail', message: `the stream sends subsection ${name}, which the destination does not know (its -dump-vmstate has no such subsection)` };
      else findings.splice(k--, 1);
    }
  }
  if (notInDump.length > 0 && !dest) {
    findings.push({
      kind: 'not-in-source',
      severity: 'note',
      section: 'dump',
      offset: source.sections.at(-1)?.offset ?? 0,
      message: `${notInDump.length} section(s) are no device class's, so not in the dump (${[...new Set(notInDump)].slice(0, 8).join(', ')}${notInDump.length > 8 ? ', ...' : ''}): give the destination's stream too to check them`,
    });
  }
  return finishReport(source, findings, base?.orderRules ?? null);
}

/** True if `d` or a description below it has the subsection `name`. */
function knowsSubsection(d: DumpDescription, name: string | undefined): boolean {
  return (d.Subsections ?? []).some((s) => s.name === name || knowsSubsection(s, name)) || (d.Fields ?? []).some((f) => f.Description !== undefined && knowsSubsection(f.Description, name));
}

/**
 * A VMDESCRIPTION struct with arrays written element by element (fields of one name, `index` 0, 1, ...;
 * QEMU 10.0 leaves the last index out) folded into one field of that many elements, as a dump has them.
 */
function collapseArrays(s: VmdescStruct): VmdescStruct {
  const fields: VmdescField[] = [];
  for (let i = 0; i < s.fields.length; i++) {
    const f = s.fields[i];
    let n = 1;
    if (f.index === 0) while (i + n < s.fields.length && s.fields[i + n].name === f.name) n++;
    const struct = f.struct ? { struct: collapseArrays(f.struct) } : {};
    fields.push(n > 1 ? { ...f, ...struct, index: undefined, array_len: n } : { ...f, ...struct });
    i += n - 1;
  }
  return { ...s, fields, subsections: s.subsections?.map(collapseArrays) };
}
