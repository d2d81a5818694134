/**
 * Where in a stream did the destination QEMU stop, and why? `explainError` reads the destination's error
 * text (its stderr, one or more lines, as qemu_loadvm_state and vmstate_load_state print them in QEMU 7.2
 * to 10.x) and finds the place in SOURCE each recognised line names: the section (by idstr and instance,
 * by section id, or by the description's name), the field and its byte offset, or the configuration or
 * RAM block. With the destination's own stream, compat's findings for that place say what differs.
 *
 * The texts recognised, in QEMU's words (the %-parts are what is read out of them):
 *   Unknown savevm section or instance '%s' %u         savevm: unsupported version %d for '%s' v%d
 *   error while loading state for instance 0x%x of device '%s'     error while loading state section id %d(%s)
 *   Missing section footer for %s                      Mismatched section id in footer for %s - ...
 *   Unknown savevm section type %d                     Machine type received is '%s' and local is '%s'
 *   Received TARGET_PAGE_BITS is %d but local is %d    Failed to load %s:%s
 *   Invalid value %d expecting positive value <= %d    %s: incoming version_id %d is too new|old ...
 *   %x != %x (an _EQUAL field)                         Unknown ramblock "%s", cannot accept migration
 *   Length mismatch: %s: 0x%x in != 0x%x               load of migration failed: %s
 */
import { compareStreams, wireSize, type CompatFinding, type CompatReport, type StreamProfile } from './compat.js';
import type { SectionRow } from './section-table.js';
import type { VmdescStruct } from './vmdesc.js';

/** One line of the error text and what it says, or null where it is not recognised. */
export interface ExplainedLine {
  readonly text: string;
  readonly meaning: string | null;
}

/** Where the destination stopped, as far as the text tells. */
export interface StopPlace {
  /** `configuration`, `ram`, or a section's idstr. */
  readonly section: string;
  readonly instance?: number;
  readonly sectionId?: number;
  /** Byte offset in SOURCE of the section (or configuration record). */
  readonly offset: number;
  /** The field the destination failed on, and its byte offset in SOURCE when the description places it. */
  readonly field?: string;
  readonly fieldOffset?: number;
}

/** explainError's answer. */
export interface Explanation {
  /** True when at least one line was recognised. */
  readonly recognised: boolean;
  readonly lines: readonly ExplainedLine[];
  /** The place, or null when no recognised line names one. */
  readonly stoppedAt: StopPlace | null;
  /** With DEST: compat's whole report, and its findings at the place. */
  readonly compat: CompatReport | null;
  readonly findingsThere: readonly CompatFinding[];
}

/** What one line tells. */
interface Clue {
  readonly meaning: string;
  readonly idstr?: string;
  readonly instance?: number;
  readonly sectionId?: number;
  /** A VMStateDescription's name (vmstate_load_state's messages name those, not sections). */
  readonly vmsd?: string;
  readonly field?: string;
  readonly configuration?: true;
  readonly ramBlock?: string;
}

type Rule = readonly [RegExp, (m: RegExpExecArray) => Clue];

/** QEMU's load errors, most specific first (see the top of this file). */
const RULES: readonly Rule[] = [
  [
    /Unknown savevm section or instance '([^']*)' (\d+)/,
    (m) => ({ idstr: m[1], instance: Number(m[2]), meaning: `the destination has no section ${m[1]} instance ${m[2]}: a device it has not, or one it numbers otherwise` }),
  ],
  [
    /savevm: unsupported version (\d+) for '([^']*)' v(\d+)/,
    (m) => ({ idstr: m[2], meaning: `${m[2]} comes in version ${m[1]}, the destination's is ${m[3]}: it cannot load a newer version` }),
  ],
  [/error while loading state for instance 0x([0-9a-fA-F]+) of device '([^']*)'/, (m) => ({ idstr: m[2], instance: parseInt(m[1], 16), meaning: `loading ${m[2]} failed` })],
  [/error while loading state section id (\d+)\(([^)]*)\)/, (m) => ({ sectionId: Number(m[1]), idstr: m[2], meaning: `loading ${m[2]} (section id ${m[1]}) failed` })],
  [
    /Missing section footer for (\S+)/,
    (m) => ({ idstr: m[1], meaning: `the destination read another number of bytes for ${m[1]} than the source wrote: their field layouts differ` }),
  ],
  [
    /Mismatched section id in footer for (\S+)/,
    (m) => ({ idstr: m[1], meaning: `the destination read another number of bytes for ${m[1]} than the source wrote: their field layouts differ` }),
  ],
  [
    /Unknown savevm section type (\d+)/,
    (m) => ({ meaning: `a byte ${m[1]} where a record should start: the section before it was read with another length than it was written` }),
  ],
  [
    /Machine type received is '([^']*)' and local is '([^']*)'/,
    (m) => ({ configuration: true, meaning: `the stream is for machine type ${m[1]}, the destination runs ${m[2]}` }),
  ],
  [/Received TARGET_PAGE_BITS is (\d+) but local is (\d+)/, (m) => ({ configuration: true, meaning: `pages of 2^${m[1]} bytes in the stream, 2^${m[2]} at the destination` })],
  [/Failed to load ([^\s:]+):(\S+)/, (m) => ({ vmsd: m[1], field: m[2], meaning: `the field ${m[2]} of ${m[1]} failed to load` })],
  [
    /Invalid value (-?\d+) expecting positive value <= (\d+)/,
    (m) => ({ meaning: `a count of ${m[1]} in the stream, above the ${m[2]} the destination can hold` }),
  ],
  [
    /(\S+): incoming version_id (\d+) is too new for local version_id (\d+)/,
    (m) => ({ vmsd: m[1], meaning: `${m[1]} comes in version ${m[2]}, the destination's is ${m[3]}` }),
  ],
  [
    /(\S+): incoming version_id (\d+) is too old for local minimum version_id\s+(\d+)/,
    (m) => ({ vmsd: m[1], meaning: `${m[1]} comes in version ${m[2]}, below the oldest the destination loads (${m[3]})` }),
  ],
  [/Unknown ramblock "([^"]*)"/, (m) => ({ ramBlock: m[1], meaning: `the destination has no RAM block ${m[1]}` })],
  [/Length mismatch: ([^:]+): 0x([0-9a-fA-F]+) in != 0x([0-9a-fA-F]+)/, (m) => ({ ramBlock: m[1], meaning: `RAM block ${m[1]} is 0x${m[2]} bytes in the stream, 0x${m[3]} at the destination` })],
  [/^(?:[\w-]+: )?(0x[0-9a-fA-F]+|-?\d+) != (0x[0-9a-fA-F]+|-?\d+)$/, (m) => ({ meaning: `a field that must equal the destination's value holds ${m[1]} in the stream, ${m[2]} there` })],
  [/load of migration failed: (.*)/, (m) => ({ meaning: `the load failed (${m[1]}); the lines before this say where` })],
];

/** Byte length of a FULL or START section's header: type, section id, idstr, instance, version. */
function headerLength(idstr: string): number {
  return 1 + 4 + 1 + new TextEncoder().encode(idstr).length + 4 + 4;
}

/** Reads the error text against SOURCE (and DEST, when given). */
export function explainError(source: StreamProfile, errorText: string, dest?: StreamProfile): Explanation {
  const lines: ExplainedLine[] = [];
  const clues: Clue[] = [];
  for (const raw of errorText.split(/\\n|\n/)) {
    // QEMU prefixes its name ("qemu-system-x86_64: "); a line may also be quoted from a log.
    const text = raw.trim().replace(/^qemu-system-[\w-]+: /, '');
    if (text === '') continue;
    const rule = RULES.find(([re]) => re.test(text));
    const clue = rule ? rule[1](rule[0].exec(text) as RegExpExecArray) : null;
    if (clue) clues.push(clue);
    lines.push({ text, meaning: clue?.meaning ?? null });
  }
  const stoppedAt = place(source, clues);
  const compat = dest ? compareStreams(source, dest) : null;
  const findingsThere = compat && stoppedAt ? compat.findings.filter((f) => f.section === stoppedAt.section && (stoppedAt.instance === undefined || f.instance === undefined || f.instance === stoppedAt.instance)) : [];
  return { recognised: clues.length > 0, lines, stoppedAt, compat, findingsThere };
}

/** The place the clues name together: the most precise section, and a field in it. */
function place(source: StreamProfile, clues: readonly Clue[]): StopPlace | null {
  if (clues.some((c) => c.configuration)) return { section: 'configuration', offset: 8 };
  const ramBlock = clues.find((c) => c.ramBlock)?.ramBlock;
  const starts = source.sections.filter((r) => r.type === 'full' || r.type === 'start');
  if (ramBlock !== undefined) {
    const ram = starts.find((r) => r.idstr === 'ram');
    return { section: 'ram', offset: ram?.offset ?? 0, field: ramBlock };
  }
  let row: SectionRow | undefined;
  for (const c of clues) {
    if (c.sectionId !== undefined) row ??= starts.find((r) => r.sectionId === c.sectionId);
    if (c.idstr !== undefined) row ??= starts.find((r) => r.idstr === c.idstr && (c.instance === undefined || r.instanceId === c.instance));
  }
  const failed = clues.find((c) => c.field !== undefined);
  if (row === undefined && failed?.vmsd !== undefined) {
    const device = source.vmdesc.devices.find((d) => d.vmsd_name === failed.vmsd || d.name === failed.vmsd);
    row = device && starts.find((r) => r.idstr === device.name && r.instanceId === device.instance_id);
  }
  if (row === undefined) return null;
  const at: StopPlace = { section: row.idstr, instance: row.instanceId, sectionId: row.sectionId, offset: row.offset };
  if (failed?.field === undefined) return at;
  const device = source.vmdesc.devices.find((d) => d.name === row.idstr && d.instance_id === row.instanceId);
  const found = device ? findField(device, failed.field, row.offset + headerLength(row.idstr)) : null;
  return { ...at, field: found?.path ?? failed.field, fieldOffset: found?.offset };
}

/**
 * The field named `name` (as QEMU names it: the last part of its path) in `s`'s fields, searched in wire
 * order through structs, with its byte offset from `base`. Only fields before any subsection are placed.
 */
function findField(s: VmdescStruct, name: string, base: number, prefix = ''): { path: string; offset: number } | null {
  let offset = base;
  for (const f of s.fields) {
    const path = prefix ? `${prefix}.${f.name}` : f.name;
    if (f.name === name || f.name.endsWith(`.${name}`)) return { path, offset };
    if (f.struct) {
      const inner = findField(f.struct, name, offset, path);
      if (inner) return inner;
    }
    offset += wireSize(f);
  }
  return null;
}

/** The explanation as text: where it stopped, each line's meaning, and compat's findings there. */
export function formatExplanation(e: Explanation): string {
  const out: string[] = [];
  const s = e.stoppedAt;
  if (s) {
    const where = s.instance === undefined ? s.section : `${s.section} (instance ${s.instance}${s.sectionId === undefined ? '' : `, section id ${s.sectionId}`})`;
    const field = s.field === undefined ? '' : `, field ${s.field}${s.fieldOffset === undefined ? '' : ` at byte offset ${s.fieldOffset}`}`;
    out.push(`stopped at ${where}, byte offset ${s.offset}${field}`);
  } else {
    out.push(e.recognised ? 'the error names no place in the stream' : 'the error text is not recognised');
  }
  for (const l of e.lines) out.push(`  ${l.text}\n    ${l.meaning ?? '(not recognised)'}`);
  if (e.compat) {
    if (s) {
      out.push(e.findingsThere.length > 0 ? `what differs there (vmstate compat):` : `compat finds no difference there`);
      for (const f of e.findingsThere) out.push(`  ${f.severity} ${f.kind}${f.field ? ` ${f.field}` : ''}: ${f.message}`);
    } else {
      out.push(`compat's verdict: ${e.compat.verdict}${e.compat.failsAt ? ` at ${e.compat.failsAt.section}: ${e.compat.failsAt.message}` : ''}`);
    }
  } else if (!e.recognised || !s) {
    out.push('give the destination\'s own stream with --dest to compare the two');
  }
  return out.join('\n') + '\n';
}
