/**
 * Will a stream load into another QEMU? `compareStreams` sets what a source QEMU sent (SOURCE) against a
 * stream the destination QEMU wrote with the same devices (DEST): its sections, versions and VMDESCRIPTION
 * are what the destination has and expects. QEMU's destination (qemu_loadvm_state) reads in stream order
 * and stops at the first thing it cannot take, so the findings are in SOURCE's order and the verdict names
 * the first that fails the load:
 *
 *   configuration   machine type, target page size, capabilities (each checked by the destination)
 *   sections        a SOURCE section (idstr, instance) the destination has not ("Unknown savevm section")
 *                   a version above the destination's ("unsupported version")
 *   fields          per device of the same version: fields missing, added (trailing ones too), resized,
 *                   retyped, array lengths, reordered; `unused` padding of the same size matches anything;
 *                   subsections sent that the destination never sent (it may not know them)
 *   RAM             blocks the destination has not, or of another size (fw_cfg blobs may be resized)
 *   order           SOURCE's section order against the destination release's rules: it loads, but wrong
 *
 * Severity: `fail` stops the load, `wrong` loads a machine that misbehaves, `risk` may fail (the
 * destination's stream cannot tell), `note` changes nothing.
 */
import { checkOrder, qemuOrderRules, qemuReleaseFor, QEMU_RELEASES, type EntryInfo, type QemuRelease } from '../savevm/index.js';
import type { ChunkedSource } from '../stream/index.js';
import { openStreamFile, requireVmdesc } from './file.js';
import { identityWatcher, type StreamIdentity } from './identify.js';
import { listSections, type SectionRow } from './section-table.js';
import type { Vmdesc, VmdescField, VmdescStruct } from './vmdesc.js';

/** What compat reads of one stream, in one pass. */
export interface StreamProfile {
  readonly identity: StreamIdentity;
  readonly sections: readonly SectionRow[];
  readonly vmdesc: Vmdesc;
}

/** Reads a whole stream for compareStreams. */
export async function profileStream(src: ChunkedSource, vmdesc: Vmdesc): Promise<StreamProfile> {
  const watcher = identityWatcher(vmdesc);
  const sections = await listSections(src, vmdesc, [], watcher.handler);
  return { identity: watcher.identity(null), sections, vmdesc };
}

/** profileStream over a stream file, described by its own VMDESCRIPTION. */
export async function profileStreamFile(path: string): Promise<StreamProfile> {
  const file = openStreamFile(path);
  try {
    return await profileStream(file.source(), requireVmdesc(file).vmdesc);
  } finally {
    file.close();
  }
}

/** How bad a finding is (see the top of this file). */
export type CompatSeverity = 'fail' | 'wrong' | 'risk' | 'note';

/** What a finding is about. */
export type CompatKind =
  | 'machine-type'
  | 'page-size'
  | 'capabilities'
  | 'unknown-section'
  | 'version-too-new'
  | 'version-too-old'
  | 'version-older'
  | 'conditional-field'
  | 'not-in-source'
  | 'field-missing'
  | 'field-added'
  | 'field-resized'
  | 'field-retyped'
  | 'array-length'
  | 'fields-reordered'
  | 'field-renamed'
  | 'unused-padding'
  | 'subsection-unknown'
  | 'ram-block-missing'
  | 'ram-block-size'
  | 'order';

/** One difference, located in SOURCE. */
export interface CompatFinding {
  readonly kind: CompatKind;
  readonly severity: CompatSeverity;
  /** `configuration`, `ram`, or a section's idstr. */
  readonly section: string;
  readonly instance?: number;
  /** The field's path inside the section, for field findings. */
  readonly field?: string;
  /** Byte offset in SOURCE of the record the finding is about. */
  readonly offset: number;
  readonly message: string;
}

/** compareStreams' answer. */
export interface CompatReport {
  readonly verdict: 'will load' | 'will load wrong' | 'will fail';
  /** The first finding that fails the load (where the destination stops), or null. */
  readonly failsAt: CompatFinding | null;
  /** Whose order rules were used: the destination's release, as its stream tells, else the oldest known. */
  readonly orderRules: QemuRelease;
  /** False when no destination stream told its release (the oldest known release's rules were used). */
  readonly orderRulesKnown: boolean;
  readonly findings: readonly CompatFinding[];
}

/** Where the configuration record is: first after the 8-byte header (QEMU writes it nowhere else). */
const CONFIGURATION_OFFSET = 8;

/** Blocks QEMU may resize on load (fw_cfg blobs: ACPI tables and the like). */
const RESIZABLE_BLOCK = /^\/rom@etc\//;

/** Compares SOURCE against DEST (both whole streams, DEST written by the destination QEMU). */
export function compareStreams(source: StreamProfile, dest: StreamProfile): CompatReport {
  const findings: CompatFinding[] = [];
  compareConfiguration(source.identity, dest.identity, CONFIGURATION_OFFSET, findings);

  const destSections = new Map<string, SectionRow>();
  for (const row of dest.sections) if (row.type === 'full' || row.type === 'start') destSections.set(key(row.idstr, row.instanceId), row);
  const destDevices = new Map(dest.vmdesc.devices.map((d) => [key(d.name, d.instance_id), d]));
  const seen = new Set<string>();
  for (const row of source.sections) {
    if (row.type !== 'full' && row.type !== 'start') continue;
    const k = key(row.idstr, row.instanceId);
    seen.add(k);
    const at = { section: row.idstr, instance: row.instanceId, offset: row.offset };
    const there = destSections.get(k);
    if (there === undefined) {
      findings.push({ kind: 'unknown-section', severity: 'fail', ...at, message: `Unknown savevm section or instance '${row.idstr}' ${row.instanceId}: the destination has no such section` });
      continue;
    }
    if (row.version > there.version) {
      findings.push({ kind: 'version-too-new', severity: 'fail', ...at, message: `${row.idstr}: version ${row.version} is newer than the destination's ${there.version}` });
      continue;
    }
    if (row.version < there.version) {
      findings.push({
        kind: 'version-older',
        severity: 'note',
        ...at,
        message: `${row.idstr}: version ${row.version}, the destination's is ${there.version}: it loads older versions down to its minimum (not in a stream; a -dump-vmstate has it), fields not compared`,
      });
      continue;
    }
    if (row.idstr === 'ram') {
      compareRam(source.identity, dest.identity, at, findings);
      continue;
    }
    const mine = source.vmdesc.devices.find((d) => d.name === row.idstr && d.instance_id === row.instanceId);
    const theirs = destDevices.get(k);
    if (mine && theirs) compareStruct(mine, theirs, '', at, findings);
  }
  for (const row of dest.sections) {
    if ((row.type !== 'full' && row.type !== 'start') || seen.has(key(row.idstr, row.instanceId))) continue;
    findings.push({
      kind: 'not-in-source',
      severity: 'note',
      section: row.idstr,
      instance: row.instanceId,
      offset: source.sections.at(-1)?.offset ?? 0,
      message: `${row.idstr} ${row.instanceId}: the destination has it, the source does not send it (it keeps its reset state)`,
    });
  }
  return finishReport(source, findings, qemuReleaseFor(dest.identity.atLeast ?? QEMU_RELEASES[0]));
}

/**
 * Adds the order findings by `release`'s rules (null: the destination's release is unknown, and the
 * oldest known release's rules are used), sorts the findings into stream order, and gives the verdict.
 */
export function finishReport(source: StreamProfile, findings: CompatFinding[], release: QemuRelease | null): CompatReport {
  const orderRules = release ?? QEMU_RELEASES[0];
  if (!findings.some((f) => f.kind === 'order')) compareOrder(source, orderRules, findings);
  findings.sort((a, b) => a.offset - b.offset);
  const failsAt = findings.find((f) => f.severity === 'fail') ?? null;
  const verdict = failsAt ? 'will fail' : findings.some((f) => f.severity === 'wrong') ? 'will load wrong' : 'will load';
  return { verdict, failsAt, orderRules, orderRulesKnown: release !== null, findings };
}

function key(idstr: string, instance: number): string {
  return `${idstr}\u0000${instance}`;
}

/** What the destination checks in the configuration record (QEMU's vmstate_configuration). */
function compareConfiguration(src: StreamIdentity, dst: StreamIdentity, offset: number, out: CompatFinding[]): void {
  const at = { section: 'configuration', offset };
  const sm = src.machineType?.value;
  const dm = dst.machineType?.value;
  if (sm !== undefined && dm !== undefined && sm !== dm) {
    out.push({ kind: 'machine-type', severity: 'fail', ...at, message: `Machine type received is '${sm}' and local is '${dm}'` });
  }
  const sp = src.pageSize?.value;
  const dp = dst.pageSize?.value;
  if (sp !== undefined && dp !== undefined && sp !== dp) {
    out.push({ kind: 'page-size', severity: 'fail', ...at, message: `target page size ${sp} in the stream, ${dp} at the destination` });
  }
  const only = (a: readonly string[], b: readonly string[]) => a.filter((c) => !b.includes(c));
  const extra = only(src.capabilities, dst.capabilities);
  const missing = only(dst.capabilities, src.capabilities);
  if (extra.length > 0 || missing.length > 0) {
    const parts = [...extra.map((c) => `${c} on in the stream only`), ...missing.map((c) => `${c} on at the destination only`)];
    out.push({ kind: 'capabilities', severity: 'fail', ...at, message: `capabilities differ: ${parts.join(', ')}` });
  }
}

function compareRam(src: StreamIdentity, dst: StreamIdentity, at: { section: string; instance: number; offset: number }, out: CompatFinding[]): void {
  const theirs = new Map(dst.ramBlocks.map((b) => [b.name, b.size]));
  for (const b of src.ramBlocks) {
    const size = theirs.get(b.name);
    if (size === undefined) {
      out.push({ kind: 'ram-block-missing', severity: 'fail', ...at, field: b.name, message: `Unknown ramblock "${b.name}", cannot accept migration` });
    } else if (size !== b.size) {
      const resizable = RESIZABLE_BLOCK.test(b.name);
      out.push({
        kind: 'ram-block-size',
        severity: resizable ? 'note' : 'fail',
        ...at,
        field: b.name,
        message: `RAM block ${b.name}: 0x${b.size.toString(16)} bytes in the stream, 0x${size.toString(16)} at the destination${resizable ? ' (a fw_cfg blob: the destination resizes it)' : ''}`,
      });
    }
  }
}

/** Where a finding is: the section (or device class), its instance, and the byte offset in SOURCE. */
export interface FindingPlace {
  readonly section: string;
  readonly instance?: number;
  readonly offset: number;
}

/**
 * Compares two descriptions of one section body, field by field, as the bytes go: the first place they
 * part is where the destination starts reading the wrong bytes. Also used on -dump-vmstate descriptions
 * (compat-dumps.ts).
 */
export function compareStruct(src: VmdescStruct, dst: VmdescStruct, path: string, at: FindingPlace, out: CompatFinding[]): void {
  const a = src.fields;
  const b = dst.fields;
  const name = (f: VmdescField) => (path ? `${path}.${f.name}` : f.name);
  const push = (kind: CompatKind, severity: CompatSeverity, field: string, message: string) => out.push({ kind, severity, ...at, field, message });
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const f = a[i];
    const g = b[j];
    // A destination field behind a test function that the stream does not have was not sent: its test
    // said no (a dump lists both of QEMU's alternatives, the stream only the one sent). So with a varray
    // of structs sent empty.
    if (mayBeAbsent(g) && f.name !== g.name && !a.slice(i).some((x) => x.name === g.name)) {
      j++;
      continue;
    }
    const sameName = f.name === g.name;
    if (sameName && (wireSize(f) === wireSize(g) || !fixedSize(f) || !fixedSize(g))) {
      compareField(f, g, name(f), at, out);
      i++;
      j++;
      continue;
    }
    if ((f.type === 'unused_buffer' || g.type === 'unused_buffer') && wireSize(f) === wireSize(g)) {
      push('unused-padding', 'note', name(f), `${name(f)} (${f.type}) is unused padding of the same size at the destination (${name(g)}): the bytes line up`);
      i++;
      j++;
      continue;
    }
    // Padding where the other side has an array of unknown length (a dump without counts): whole elements
    // fit. Or a buffer split into fields, or fields folded into padding: the same bytes, cut differently.
    // Where both could be, the one after which the next names agree wins.
    const fits = (pad: VmdescField, x: VmdescField) => isPadding(pad) && x.type === UNCOUNTED_FIELD && x.size > 0 && pad.size % x.size === 0;
    const fitted: [number, number] | null = fits(f, g) || fits(g, f) ? [i + 1, j + 1] : null;
    const realigned = isPadding(f) || isPadding(g) ? realign(a, i, b, j) : null;
    const agrees = (c: [number, number] | null) => c !== null && a[c[0]]?.name === b[c[1]]?.name;
    if (fitted !== null && (agrees(fitted) || !agrees(realigned))) {
      push('unused-padding', 'note', name(f), `${name(f)} (${wireSize(f)}) is ${name(g)} (${wireSize(g)}) at the destination: padding for whole elements of an array whose length the dump does not give`);
      i++;
      j++;
      continue;
    }
    const span = realigned;
    if (span !== null) {
      const mine = a.slice(i, span[0]);
      const theirs = b.slice(j, span[1]);
      const padded = [...mine, ...theirs].some(isPadding);
      const list = (fs: readonly VmdescField[]) => fs.map((x) => `${name(x)} (${wireSize(x)})`).join(' + ');
      push('unused-padding', padded ? 'note' : 'risk', name(f), `${list(mine)} in the stream are ${list(theirs)} at the destination: the same ${mine.reduce((n, x) => n + wireSize(x), 0)} bytes`);
      [i, j] = span;
      continue;
    }
    if (sameName) {
      compareField(f, g, name(f), at, out);
      i++;
      j++;
      continue;
    }
    const laterInDest = b.findIndex((x, k) => k > j && x.name === f.name);
    const laterInSource = a.findIndex((x, k) => k > i && x.name === g.name);
    if (laterInDest >= 0 && laterInSource >= 0) {
      push('fields-reordered', 'fail', name(f), `fields in another order: the stream sends ${name(f)} where the destination expects ${name(g)}`);
      return;
    }
    if (laterInDest >= 0) {
      for (; j < laterInDest; j++) push('field-added', 'fail', name(b[j]), `the destination expects ${name(b[j])} (${describe(b[j])}) before ${name(f)}; the stream does not send it`);
      continue;
    }
    if (laterInSource >= 0) {
      for (; i < laterInSource; i++) push('field-missing', 'fail', name(a[i]), `the stream sends ${name(a[i])} (${describe(a[i])}), which the destination does not expect`);
      continue;
    }
    if ((f.type === g.type || isDumpField(f) || isDumpField(g)) && wireSize(f) === wireSize(g)) {
      push('field-renamed', 'note', name(f), `${name(f)} is called ${name(g)} at the destination (same type and size)`);
    } else {
      push('field-retyped', 'fail', name(f), `the stream sends ${name(f)} (${describe(f)}) where the destination expects ${name(g)} (${describe(g)})`);
    }
    i++;
    j++;
  }
  // The trailing ones too (vmstate-static-checker.py stops where the source's fields end).
  for (; i < a.length; i++) push('field-missing', 'fail', name(a[i]), `the stream sends ${name(a[i])} (${describe(a[i])}) after the destination's last field`);
  for (; j < b.length; j++) {
    if (!mayBeAbsent(b[j])) push('field-added', 'fail', name(b[j]), `the destination expects ${name(b[j])} (${describe(b[j])}) after the stream's last field`);
  }
  compareSubsections(src, dst, path, at, out);
}

function compareField(f: VmdescField, g: VmdescField, path: string, at: FindingPlace, out: CompatFinding[]): void {
  const push = (kind: CompatKind, severity: CompatSeverity, message: string) => out.push({ kind, severity, ...at, field: path, message });
  const lineUp = fixedSize(f) && fixedSize(g) && f.size === g.size && f.type !== 'struct' && g.type !== 'struct';
  // A struct's bytes are its fields': compared one by one below, whatever the sizes say.
  const structs = f.struct !== undefined && g.struct !== undefined;
  // A dump's field has no type, and without counts no array length: only what it has is compared.
  const typeless = isDumpField(f) || isDumpField(g);
  const uncounted = f.type === UNCOUNTED_FIELD || g.type === UNCOUNTED_FIELD;
  // A dump gives a fixed array's count only; a varray's (counted in the stream) it leaves out.
  const unknownCount = uncounted || (g as DumpSideField).countUnknown === true || (f as DumpSideField).countUnknown === true;
  if (!unknownCount && (f.array_len ?? 1) !== (g.array_len ?? 1)) push('array-length', 'fail', `${path} has ${f.array_len ?? 1} elements in the stream, ${g.array_len ?? 1} at the destination`);
  else if (f.type !== g.type && !typeless && !structs) push('field-retyped', lineUp ? 'note' : 'fail', `${path} is ${f.type} in the stream, ${g.type} at the destination${lineUp ? ' (the same size: the bytes line up)' : ''}`);
  else if (structs) compareStruct(f.struct, g.struct, path, at, out);
  else if (f.size !== g.size && !fixedSize(f)) push('field-resized', 'note', `${path} (${f.type}) wrote ${f.size} bytes in the stream, ${g.size} at the destination: its size follows the state, not the layout`);
  else if (f.size !== g.size) push('field-resized', 'fail', `${path} is ${f.size} bytes in the stream, ${g.size} at the destination`);
}

/** Types whose size is the layout's, not the state's (what VMState's own integer and buffer codecs write). */
/**
 * A -dump-vmstate field has a size but no type (compat-dumps.ts): `field`, or UNCOUNTED_FIELD when the
 * dump gives no element counts, so that the field may be an array of that many bytes each.
 */
export const DUMP_FIELD = 'field';
export const UNCOUNTED_FIELD = 'field, element count unknown';
const FIXED_TYPE = /^(u?int(8|16|32|64)( equal| le)?|bool|float64|buffer|unused_buffer|struct|field|field, element count unknown)$/;

/** A field read from a dump (compat-dumps.ts), with what a dump says or leaves out. */
export interface DumpSideField extends VmdescField {
  /** Sent only when a test function says so. */
  readonly conditional?: true;
  /** The dump gives no element count (a varray's, or any in a dump of QEMU 7.2). */
  readonly countUnknown?: true;
  /**
   * An array of structs without a count: a varray, which a stream that sent none of it leaves out of its
   * VMDESCRIPTION (fixed structs are always written).
   */
  readonly maybeEmpty?: true;
}

/** A destination field a stream may lawfully lack: behind a test function, or a varray sent empty. */
function mayBeAbsent(f: VmdescField): boolean {
  const d = f as DumpSideField;
  return d.conditional === true || d.maybeEmpty === true;
}

function isDumpField(f: VmdescField): boolean {
  return f.type === DUMP_FIELD || f.type === UNCOUNTED_FIELD;
}

function fixedSize(f: VmdescField): boolean {
  return FIXED_TYPE.test(f.type);
}

function isPadding(f: VmdescField): boolean {
  return f.type === 'unused_buffer' || f.type === 'buffer';
}

/**
 * From a[i] and b[j], the shortest runs of fixed-size, non-struct fields on each side that take the same
 * number of bytes (at most 64 fields): where the two layouts line up again, or null.
 */
function realign(a: readonly VmdescField[], i: number, b: readonly VmdescField[], j: number): [number, number] | null {
  const flat = (f: VmdescField | undefined) => f !== undefined && fixedSize(f) && f.type !== 'struct';
  if (!flat(a[i]) || !flat(b[j])) return null;
  let sa = wireSize(a[i]);
  let sb = wireSize(b[j]);
  let ii = i + 1;
  let jj = j + 1;
  for (let steps = 0; sa !== sb && steps < 64; steps++) {
    if (sa < sb) {
      if (!flat(a[ii])) return null;
      sa += wireSize(a[ii++]);
    } else {
      if (!flat(b[jj])) return null;
      sb += wireSize(b[jj++]);
    }
  }
  return sa === sb ? [ii, jj] : null;
}

function compareSubsections(src: VmdescStruct, dst: VmdescStruct, path: string, at: FindingPlace, out: CompatFinding[]): void {
  const theirs = new Map((dst.subsections ?? []).map((s) => [s.vmsd_name, s]));
  for (const s of src.subsections ?? []) {
    const name = s.vmsd_name ?? '?';
    const where = path ? `${path}/${name}` : name;
    const match = theirs.get(s.vmsd_name);
    if (match === undefined) {
      out.push({
        kind: 'subsection-unknown',
        severity: 'risk',
        ...at,
        field: where,
        message: `the stream sends subsection ${name}, which the destination's stream does not have: if the destination does not know it, the load fails`,
      });
    } else {
      compareStruct(s, match, where, at, out);
    }
  }
}

/** Bytes one field takes on the wire (all its elements). */
export function wireSize(f: VmdescField): number {
  return f.size * (f.array_len ?? 1);
}

function describe(f: VmdescField): string {
  return f.array_len === undefined ? `${f.type}, ${f.size} bytes` : `${f.array_len} x ${f.type}, ${f.size} bytes each`;
}

/** SOURCE's device sections in order, checked by the destination release's rules. */
function compareOrder(source: StreamProfile, release: QemuRelease, out: CompatFinding[]): void {
  const qemu = qemuOrderRules(release);
  const vmsdOf = new Map(source.vmdesc.devices.map((d) => [key(d.name, d.instance_id), d.vmsd_name]));
  const rows = source.sections.filter((r) => r.type === 'full');
  const placed: EntryInfo[] = rows.map((row) => {
    const vmsdName = vmsdOf.get(key(row.idstr, row.instanceId));
    return { idstr: row.idstr, instanceId: row.instanceId, vmsdName, priority: qemu.priorityOf(vmsdName), tags: {} };
  });
  for (const v of checkOrder(placed, qemu.rules)) {
    const consumer = rows[v.consumer];
    const supplier = rows[v.supplier];
    out.push({
      kind: 'order',
      severity: 'wrong',
      section: consumer.idstr,
      instance: consumer.instanceId,
      offset: consumer.offset,
      message: `${consumer.idstr} loads before ${supplier.idstr}, which QEMU ${release} needs first (${v.rule.name}: ${v.rule.reason})`,
    });
  }
}

/** The report as text: one line per finding, then the verdict. */
export function formatCompat(report: CompatReport): string {
  const lines = report.findings.map((f) => {
    const where = f.instance === undefined ? f.section : `${f.section} ${f.instance}`;
    return `${f.severity.padEnd(5)} ${f.kind.padEnd(18)} ${where} @${f.offset}${f.field ? ` ${f.field}` : ''}: ${f.message}`;
  });
  const at = report.failsAt;
  const verdict =
    at === null
      ? report.verdict
      : `will fail at ${at.instance === undefined ? at.section : `${at.section} (instance ${at.instance})`}, byte offset ${at.offset}: ${at.message}`;
  return [...lines, `order checked by the rules of QEMU ${report.orderRules} (${report.orderRulesKnown ? "the destination's release, as its stream tells" : 'no destination stream tells its release: the oldest known'})`, `verdict: ${verdict}`, ''].join('\n');
}
