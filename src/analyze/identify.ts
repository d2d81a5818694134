/**
 * What a stream tells of the QEMU that wrote it, each conclusion with the marker it rests on
 * (../shared/spec/qemu-versions.md lists the markers by release):
 *
 *   >= 8.0    a FULL section in the setup phase, before any PART or END (early setup state, virtio-mem's)
 *   >= 8.1    RAM flag MULTIFD_FLUSH (0x200)
 *   >= 8.2    the VMDESCRIPTION describes the configuration section
 *   >= 9.0    the capability mapped-ram in the configuration
 *   >= 9.1.3  a field of type "nullptr", or an array whose last element has no index (10.0, 9.1.3, 9.2.1)
 *   >= 9.1.3  the command SWITCHOVER_START (QEMU 10.0 sends it for machine types from 10.0 on)
 *   >= X.Y    a versioned machine type such as pc-q35-X.Y, virt-X.Y or pseries-X.Y
 *   <= 9.0    RAM flag COMPRESS (0x100), or a `block` section (block migration)
 *
 * and the machine type, the architecture, the page size, the capabilities the configuration names, the
 * commands met, and the RAM blocks.
 */
import { compareVersions, CONFIG_SUBSECTION, describeCommand, machineTypeVersion, MigCommand } from '../savevm/index.js';
import type { ChunkedSource } from '../stream/index.js';
import { StreamFormatError, StreamTruncatedError } from '../errors.js';
import { decodeStream, type DecodedStreamHandler } from './decode-stream.js';
import type { Vmdesc, VmdescStruct } from './vmdesc.js';

/** One conclusion about the QEMU version: `>= 8.2` or `<= 9.0`, and why. */
export interface VersionMarker {
  readonly bound: '>=' | '<=';
  readonly version: string;
  readonly marker: string;
  /** Where the marker is in the stream, when it is at one place. */
  readonly offset?: number;
}

/** A value and what it was told by. */
export interface Told<T> {
  readonly value: T;
  readonly marker: string;
}

/** What identifyStream found. */
export interface StreamIdentity {
  /** The newest of the lower bounds and the oldest of the upper bounds, null where there is none. */
  readonly atLeast: string | null;
  readonly atMost: string | null;
  readonly markers: readonly VersionMarker[];
  readonly machineType: Told<string> | null;
  readonly architecture: Told<string> | null;
  readonly pageSize: Told<number> | null;
  /** The capabilities the configuration names (only those QEMU checks on both sides are sent). */
  readonly capabilities: readonly string[];
  readonly commands: readonly { readonly name: string; readonly offset: number }[];
  readonly ramBlocks: readonly { readonly name: string; readonly size: number }[];
  /** What could not be read, when the stream stops being readable before its end. */
  readonly note: string | null;
}

/** Reads the stream through and gathers the markers. `vmdesc` lets device sections be read past. */
export async function identifyStream(src: ChunkedSource, vmdesc: Vmdesc | null): Promise<StreamIdentity> {
  const watcher = identityWatcher(vmdesc);
  let note: string | null = null;
  try {
    await decodeStream(src, vmdesc, watcher.handler);
  } catch (e) {
    // A stream cut short, or device sections no description covers: report what came before.
    if (!(e instanceof StreamFormatError || e instanceof StreamTruncatedError)) throw e;
    note = `the stream could be read only up to byte offset ${src.offset}: ${e.message}`;
  }
  return watcher.identity(note);
}

/** Gathers the markers while another reader decodes the stream, so it is read once for both. */
export interface IdentityWatcher {
  /** What decodeStream calls; uses configuration, command, sectionStart and ram. */
  readonly handler: DecodedStreamHandler;
  /** What the records seen so far tell; `note` says what could not be read. */
  identity(note: string | null): StreamIdentity;
}

/** A watcher for a stream described by `vmdesc`. */
export function identityWatcher(vmdesc: Vmdesc | null): IdentityWatcher {
  const markers: VersionMarker[] = [];
  const atLeast = (version: string, marker: string, offset?: number) => markers.push({ bound: '>=', version, marker, offset });
  const atMost = (version: string, marker: string, offset?: number) => markers.push({ bound: '<=', version, marker, offset });
  let machineType: Told<string> | null = null;
  let pageSize: Told<number> | null = vmdesc ? { value: vmdesc.page_size, marker: 'the VMDESCRIPTION page_size' } : null;
  let capabilities: string[] = [];
  const commands: { name: string; offset: number }[] = [];
  const ramBlocks: { name: string; size: number }[] = [];
  // The setup phase (START sections, and from 8.0 early setup state as FULL ones) ends at the first PART or END.
  let iterating = false;
  let early: { idstr: string; offset: number } | null = null;
  const once = new Set<string>();

  if (vmdesc !== null) describedMarkers(vmdesc, atLeast);
  const handler: DecodedStreamHandler = {
    configuration(c, offset) {
      machineType = { value: c.machineName, marker: `the configuration record at byte offset ${offset}` };
      const versioned = machineTypeVersion(c.machineName);
      if (versioned !== null) atLeast(versioned, `machine type ${c.machineName}`, offset);
      for (const s of c.subsections) {
        if (s.name === CONFIG_SUBSECTION.targetPageBits) pageSize = { value: 2 ** s.targetPageBits, marker: `configuration/target-page-bits ${s.targetPageBits}` };
        if (s.name === CONFIG_SUBSECTION.capabilities) capabilities = [...s.capabilities];
      }
      if (capabilities.includes('mapped-ram')) atLeast('9.0', 'the capability mapped-ram (configuration/capabilities)', offset);
    },
    command(c, offset) {
      commands.push({ name: describeCommand(c), offset });
      if (c.command === MigCommand.SWITCHOVER_START && !once.has('switchover')) {
        once.add('switchover');
        atLeast('9.1.3', 'the command SWITCHOVER_START (QEMU 10.0 sends it for machine types >= 10.0)', offset);
      }
    },
    sectionStart(ctx) {
      const h = ctx.header;
      if (h.kind === 'part' || h.kind === 'end') iterating = true;
      if (h.kind === 'full' && !iterating && early === null) early = { idstr: ctx.idstr, offset: h.offset };
      if ((h.kind === 'start' || h.kind === 'full') && ctx.idstr === 'block' && !once.has('block')) {
        once.add('block');
        atMost('9.0', 'a block section (block migration)', h.offset);
      }
    },
    ram: {
      blockList(_total, blocks) {
        for (const b of blocks) ramBlocks.push({ name: b.name, size: b.usedLength });
      },
      multifdFlush() {
        if (!once.has('flush')) atLeast('8.1', 'RAM flag MULTIFD_FLUSH (0x200)');
        once.add('flush');
      },
      compressedPage() {
        if (!once.has('compress')) atMost('9.0', 'RAM flag COMPRESS (0x100)');
        once.add('compress');
      },
    },
  };
  const identity = (note: string | null): StreamIdentity => {
    const e = early as { idstr: string; offset: number } | null;
    const all: VersionMarker[] = e === null ? [...markers] : [...markers, { bound: '>=', version: '8.0', marker: `a FULL section (${e.idstr}) in the setup phase, before any PART or END`, offset: e.offset }];
    const mt = machineType as Told<string> | null;
    return {
      atLeast: newest(all.filter((m) => m.bound === '>=').map((m) => m.version)),
      atMost: oldest(all.filter((m) => m.bound === '<=').map((m) => m.version)),
      markers: all,
      machineType: mt,
      architecture: mt === null ? null : architectureOf(mt.value),
      pageSize,
      capabilities,
      commands,
      ramBlocks,
      note,
    };
  };
  return { handler, identity };
}

/** Markers the description itself carries. */
function describedMarkers(vmdesc: Vmdesc, atLeast: (version: string, marker: string) => void): void {
  if ('configuration' in vmdesc) atLeast('8.2', 'the VMDESCRIPTION describes the configuration section');
  let nullptr = false;
  let lastIndexOff: string | null = null;
  const visit = (s: VmdescStruct): void => {
    const fields = s.fields;
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i];
      if (f.type === 'nullptr') nullptr = true;
      // An uncompressed array, every element indexed but the last.
      const prev = fields[i - 1];
      if (lastIndexOff === null && f.index === undefined && prev?.name === f.name && prev.index !== undefined && fields[i + 1]?.name !== f.name) lastIndexOff = f.name;
      if (f.struct) visit(f.struct);
    }
    for (const sub of s.subsections ?? []) visit(sub);
  };
  for (const d of vmdesc.devices) visit(d);
  if (nullptr) atLeast('9.1.3', 'a field of type "nullptr" in the VMDESCRIPTION');
  if (lastIndexOff !== null) atLeast('9.1.3', `the last element of the array "${lastIndexOff}" has no index in the VMDESCRIPTION`);
}

/** The architecture a machine type belongs to, as far as its name tells. */
function architectureOf(machineType: string): Told<string> | null {
  const rules: [RegExp, string][] = [
    [/^(pc|pc-q35|pc-i440fx|q35|microvm|isapc|xenfv|xenpv)(-|$)/, 'x86_64 or i386'],
    [/^virt-\d+\.\d+$/, 'arm or aarch64'],
    [/^(sbsa-ref|raspi|versatile|vexpress|xlnx|imx|sabrelite|mps2|musca)/, 'arm or aarch64'],
    [/^pseries(-|$)/, 'ppc64'],
    [/^s390-ccw-virtio(-|$)/, 's390x'],
    [/^(sifive|spike|shakti)/, 'riscv'],
  ];
  for (const [re, arch] of rules) if (re.test(machineType)) return { value: arch, marker: `machine type ${machineType}` };
  return null;
}

function newest(vs: readonly string[]): string | null {
  return vs.length === 0 ? null : vs.reduce((a, b) => (compareVersions(a, b) >= 0 ? a : b));
}

function oldest(vs: readonly string[]): string | null {
  return vs.length === 0 ? null : vs.reduce((a, b) => (compareVersions(a, b) <= 0 ? a : b));
}

/** The identity as text, one conclusion a line with what it rests on. */
export function formatIdentity(id: StreamIdentity): string {
  const lines: string[] = [];
  const range = id.atLeast === null && id.atMost === null ? 'no marker of a version' : [id.atLeast && `>= ${id.atLeast}`, id.atMost && `<= ${id.atMost}`].filter(Boolean).join(' and ');
  lines.push(`QEMU          ${range}`);
  for (const m of id.markers) lines.push(`  ${m.bound} ${m.version.padEnd(8)}${m.marker}${m.offset !== undefined ? ` (byte offset ${m.offset})` : ''}`);
  const told = <T>(label: string, t: Told<T> | null) => lines.push(`${label.padEnd(14)}${t === null ? 'unknown' : `${String(t.value)}   (${t.marker})`}`);
  told('machine type', id.machineType);
  told('architecture', id.architecture);
  told('page size', id.pageSize);
  lines.push(`${'capabilities'.padEnd(14)}${id.capabilities.length === 0 ? 'none named in the configuration' : id.capabilities.join(', ')}`);
  lines.push(`${'commands'.padEnd(14)}${id.commands.length === 0 ? 'none' : id.commands.map((c) => `${c.name} (byte offset ${c.offset})`).join(', ')}`);
  lines.push(id.ramBlocks.length === 0 ? `${'RAM blocks'.padEnd(14)}none` : 'RAM blocks');
  for (const b of id.ramBlocks) lines.push(`  ${b.name.padEnd(40)} 0x${b.size.toString(16)}`);
  if (id.note !== null) lines.push(`note          ${id.note}`);
  return lines.join('\n') + '\n';
}
