/**
 * A stream's device phase rewritten: the bytes from its first device (FULL) section to the end of its
 * VMDESCRIPTION, which is what QEMU sends at the switch-over, after the last RAM. The proxy holds this
 * part of a live stream and sends it on changed:
 *
 *   set        `--set` edits, as `vmstate rewrite` applies them (bodies re-encoded from their values)
 *   map        instance ids renumbered, in the section headers and in the VMDESCRIPTION
 *   reorder    chosen sections moved before others, on purpose (a misorder for tests and teaching)
 *   fixOrder   the sections re-ordered so that the order rules of a QEMU release hold, moving as little
 *              as the rules ask (stream order is kept wherever no rule says otherwise)
 *
 * The VMDESCRIPTION is rewritten to match what goes out (its devices in the new order, with the new
 * instance ids); with nothing to change, the output is the input byte for byte.
 */
import { PlanError, shiftStreamError, StreamFormatError, UsageError } from '../errors.js';
import {
  checkOrder,
  findVmdescTrailer,
  planOrder,
  qemuOrderRules,
  writeHeader,
  writeVmdesc,
  type EntryInfo,
  type OrderViolation,
  type PlanEdge,
  type QemuRelease,
} from '../savevm/index.js';
import { ByteWriter, ChunkedSource, formatQemuJson } from '../stream/index.js';
import type { FieldEdit } from './edit.js';
import { rewriteStream } from './rewrite.js';
import { listRecords, type RecordRow, type SectionRow } from './section-table.js';
import { parseVmdesc, type Vmdesc, type VmdescDevice } from './vmdesc.js';

/** `--map IDSTR#N=IDSTR#M`: the section IDSTR with instance N goes out as instance M. */
export interface InstanceMapping {
  readonly spec: string;
  readonly idstr: string;
  readonly from: number;
  readonly to: number;
}

/** `--reorder 'A<B'`: every section A names goes out just before the first section B names. */
export interface ReorderRequest {
  readonly spec: string;
  readonly first: string;
  readonly then: string;
}

/** What to change in a device phase; every member is optional. */
export interface DevicePhaseEdits {
  readonly set?: readonly FieldEdit[];
  readonly map?: readonly InstanceMapping[];
  readonly reorder?: readonly ReorderRequest[];
  /** Re-order so that this release's order rules hold (after `reorder`). */
  readonly fixOrder?: boolean;
  /** The release whose rules `fixOrder` and the check use. */
  readonly rules: QemuRelease;
}

/** One device section as it went out. */
export interface PhaseSection {
  readonly idstr: string;
  readonly instanceId: number;
  readonly sectionId: number;
  readonly vmsdName?: string;
}

/** What a device phase held, what went out, and what the order rules say of each. */
export interface DevicePhaseResult {
  /** The device phase to send, from its first record to the end of the VMDESCRIPTION. */
  readonly bytes: Uint8Array;
  /** The parsed VMDESCRIPTION as it came in. */
  readonly vmdesc: Vmdesc;
  readonly received: readonly PhaseSection[];
  readonly sent: readonly PhaseSection[];
  /** Violations of the release's rules in the order received, and in the order sent. */
  readonly receivedViolations: readonly OrderViolation[];
  readonly sentViolations: readonly OrderViolation[];
  /** Sections that changed place, instance ids that changed, field edits applied. */
  readonly moved: number;
  readonly renumbered: number;
  readonly edited: number;
}

/** True if `edits` ask for any change to the stream (the rules alone, for a check, change nothing). */
export function asksForChanges(edits: DevicePhaseEdits): boolean {
  return (edits.set?.length ?? 0) + (edits.map?.length ?? 0) + (edits.reorder?.length ?? 0) > 0 || edits.fixOrder === true;
}

/** Parses `IDSTR#N=IDSTR#M` (the same IDSTR on both sides). */
export function parseInstanceMapping(spec: string): InstanceMapping {
  const m = /^(.+)#(\d+)=(.+)#(\d+)$/.exec(spec);
  if (!m) throw new UsageError(`--map ${spec}: expected IDSTR#N=IDSTR#M`, { spec });
  if (m[1] !== m[3]) throw new UsageError(`--map ${spec}: an instance keeps its idstr (${m[1]} is not ${m[3]})`, { spec });
  return { spec, idstr: m[1], from: Number(m[2]), to: Number(m[4]) };
}

/** Parses `A<B`: sections A load before sections B. */
export function parseReorder(spec: string): ReorderRequest {
  const parts = spec.split('<');
  if (parts.length !== 2 || parts[0] === '' || parts[1] === '') throw new UsageError(`--reorder ${spec}: expected IDSTR<IDSTR`, { spec });
  return { spec, first: parts[0], then: parts[1] };
}

/**
 * True if `pattern` names the section: its whole idstr, the part after its last `/` (QEMU appends the
 * VMSD's name to a device's path), or its VMSD name; `NAME#N` also asks for instance N.
 */
export function sectionMatches(pattern: string, s: PhaseSection | Piece): boolean {
  const hash = pattern.lastIndexOf('#');
  const name = hash >= 0 && /^\d+$/.test(pattern.slice(hash + 1)) ? pattern.slice(0, hash) : pattern;
  if (name !== pattern && Number(pattern.slice(hash + 1)) !== s.instanceId) return false;
  return s.idstr === name || s.idstr.slice(s.idstr.lastIndexOf('/') + 1) === name || s.vmsdName === name;
}

/** A FULL section of the phase with its bytes (header, body, footer) and its VMDESCRIPTION entry. */
interface Piece {
  readonly idstr: string;
  instanceId: number;
  readonly sectionId: number;
  readonly vmsdName?: string;
  bytes: Uint8Array;
  /** Its entry's index in the VMDESCRIPTION's devices. */
  readonly entry: number | undefined;
}

/**
 * Rewrites a device phase. `phase` runs from a record boundary (the first device section) to the end of
 * the stream, VMDESCRIPTION included; `offset` is where it stands in the whole stream, for errors.
 */
export async function rewriteDevicePhase(phase: Uint8Array, offset: number, edits: DevicePhaseEdits): Promise<DevicePhaseResult> {
  const trailer = findVmdescTrailer(phase, 0, phase.length);
  if (trailer < 0) throw new StreamFormatError('the device phase does not end with EOF and a VMDESCRIPTION', { offset: offset + phase.length, path: 'vmdesc' });
  const vmdesc = parseVmdesc(phase.subarray(trailer + 5), offset + trailer);
  // The phase is walked as a stream of its own: the 8-byte header, then its records.
  const header = new ByteWriter(16);
  writeHeader(header);
  const shift = offset - header.length;
  const own = new Uint8Array(header.length + phase.length);
  own.set(header.peek());
  own.set(phase, header.length);
  const atOffset = <T>(run: () => Promise<T>) =>
    run().catch((e: unknown) => {
      throw shiftStreamError(e, shift);
    });

  // --set first, as `rewrite` does it: the output equals the input when no edit applies.
  let stream: Uint8Array = own;
  if (edits.set && edits.set.length > 0) {
    const edited = new ByteWriter(own.length);
    await atOffset(() => rewriteStream(ChunkedSource.fromBytes(own), vmdesc, (chunk) => edited.putBuffer(chunk), edits.set));
    stream = edited.take();
  }
  const rows = await atOffset(() => listRecords(ChunkedSource.fromBytes(stream), vmdesc));

  // Each section takes the first entry of its idstr and instance not taken yet.
  const entries = new Map<string, number[]>();
  vmdesc.devices.forEach((d, k) => {
    const key = `${d.name}\u0000${d.instance_id}`;
    entries.set(key, [...(entries.get(key) ?? []), k]);
  });
  const pieces: Piece[] = [];
  const slots: (Piece | RecordRow)[] = [];
  let trailerRow: RecordRow | undefined;
  for (const row of rows) {
    if (row.type === 'vmdesc') {
      trailerRow = row;
      continue;
    }
    if (row.type !== 'full') {
      slots.push(row);
      continue;
    }
    const s = row as SectionRow;
    const at = entries.get(`${s.idstr}\u0000${s.instanceId}`)?.shift();
    const vmsdName = at === undefined ? undefined : vmdesc.devices[at].vmsd_name;
    const piece: Piece = { idstr: s.idstr, instanceId: s.instanceId, sectionId: s.sectionId, vmsdName, entry: at, bytes: stream.subarray(s.offset, s.offset + s.size) };
    pieces.push(piece);
    slots.push(piece);
  }
  const received: PhaseSection[] = pieces.map(phaseSection);
  const qemu = qemuOrderRules(edits.rules);
  const violations = (ps: readonly PhaseSection[]) => checkOrder(ps.map((p) => entryOf(p, qemu.priorityOf)), qemu.rules);

  const renumbered = renumber(pieces, edits.map ?? []);
  let order = pieces.map((_, i) => i);
  for (const r of edits.reorder ?? []) order = reorder(order, pieces, r);
  if (edits.fixOrder) order = fixOrder(order, pieces, edits.rules);
  const moved = order.filter((p, i) => p !== i).length;

  // Device sections take the places device sections had; commands and other records stay where they were.
  const out = new ByteWriter(stream.length + 4096);
  let next = 0;
  for (const slot of slots) {
    if ('bytes' in slot) out.putBuffer(pieces[order[next++]].bytes);
    else out.putBuffer(stream.subarray(slot.offset, slot.offset + slot.size));
  }
  const sent = order.map((i) => phaseSection(pieces[i]));
  // The trailer was found above, so the walk read it.
  const t = trailerRow as RecordRow;
  if (moved === 0 && renumbered === 0) out.putBuffer(stream.subarray(t.offset, t.offset + t.size));
  else writeVmdesc(out, rewrittenVmdesc(vmdesc, order.map((i) => pieces[i])));
  return {
    bytes: out.take(),
    vmdesc,
    received,
    sent,
    receivedViolations: violations(received),
    sentViolations: violations(sent),
    moved,
    renumbered,
    edited: edits.set?.length ?? 0,
  };
}

function phaseSection(p: Piece): PhaseSection {
  return { idstr: p.idstr, instanceId: p.instanceId, sectionId: p.sectionId, vmsdName: p.vmsdName };
}

function entryOf(p: PhaseSection, priorityOf: (vmsd: string | undefined) => number): EntryInfo {
  return { idstr: p.idstr, instanceId: p.instanceId, vmsdName: p.vmsdName, priority: priorityOf(p.vmsdName), tags: {} };
}

/** Applies the mappings (each to the instance ids as received) to the pieces' headers; returns how many sections changed. */
function renumber(pieces: Piece[], maps: readonly InstanceMapping[]): number {
  const hits = maps.map((m) => {
    const hit = pieces.filter((p) => p.idstr === m.idstr && p.instanceId === m.from);
    if (hit.length === 0) throw new UsageError(`--map ${m.spec}: the stream has no section "${m.idstr}" with instance ${m.from}`, { spec: m.spec });
    return hit;
  });
  let count = 0;
  maps.forEach((m, k) => {
    if (m.from === m.to) return;
    for (const p of hits[k]) {
      // A FULL header: type byte, be32 section id, counted idstr, be32 instance id, be32 version.
      p.bytes = p.bytes.slice();
      new DataView(p.bytes.buffer).setUint32(1 + 4 + 1 + p.bytes[5], m.to);
      p.instanceId = m.to;
      count++;
    }
  });
  return count;
}

/** Moves every section `r.first` names that stands after the first one `r.then` names to just before it. */
function reorder(order: readonly number[], pieces: readonly Piece[], r: ReorderRequest): number[] {
  const firsts = order.filter((i) => sectionMatches(r.first, pieces[i]));
  const thenAt = order.findIndex((i) => sectionMatches(r.then, pieces[i]));
  if (firsts.length === 0) throw new UsageError(`--reorder ${r.spec}: no device section is "${r.first}"`, { spec: r.spec });
  if (thenAt < 0) throw new UsageError(`--reorder ${r.spec}: no device section is "${r.then}"`, { spec: r.spec });
  const late = new Set(firsts.filter((i) => order.indexOf(i) > thenAt));
  const rest = order.filter((i) => !late.has(i));
  const at = rest.indexOf(order[thenAt]);
  return [...rest.slice(0, at), ...order.filter((i) => late.has(i)), ...rest.slice(at)];
}

/**
 * The order with `release`'s rules honoured: each rule an edge from every supplier to every consumer,
 * sorted with the current order as the tie-break, so that only what a rule asks for moves.
 */
function fixOrder(order: readonly number[], pieces: readonly Piece[], release: QemuRelease): number[] {
  const qemu = qemuOrderRules(release);
  const entries = order.map((i) => entryOf(pieces[i], qemu.priorityOf));
  const edges: PlanEdge[] = [];
  for (const rule of qemu.rules) {
    const suppliers = entries.flatMap((e, i) => (rule.supplier(e, entries) ? [i] : []));
    const consumers = entries.flatMap((e, i) => (rule.consumer(e, entries) ? [i] : []));
    for (const s of suppliers) for (const c of consumers) if (s !== c) edges.push({ supplier: s, consumer: c, reason: rule.reason });
  }
  const nodes = entries.map((e) => ({ label: `${e.idstr}#${e.instanceId}`, priority: 0 }));
  try {
    return Array.from(planOrder(nodes, edges).order, (k) => order[k]);
  } catch (e) {
    if (e instanceof PlanError) throw new UsageError(`--fix-order: the rules of QEMU ${release} cannot all hold for these sections: ${e.message}`, { release });
    throw e;
  }
}

/**
 * The VMDESCRIPTION for the sections as sent: the entries of sent sections, in their new order and with
 * their new instance ids, take the places such entries had; any other entry stays where it was.
 */
function rewrittenVmdesc(vmdesc: Vmdesc, sent: readonly Piece[]): Uint8Array {
  const devices: VmdescDevice[] = [...vmdesc.devices];
  const described = sent.filter((p) => p.entry !== undefined);
  const places = described.map((p) => p.entry as number).sort((a, b) => a - b);
  described.forEach((p, k) => (devices[places[k]] = { ...vmdesc.devices[p.entry as number], instance_id: p.instanceId }));
  return new TextEncoder().encode(formatQemuJson({ ...vmdesc, devices }));
}
