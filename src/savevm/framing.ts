/**
 * The framing records of a QEMU v3 migration stream (migration/savevm.c, QEMU 7.2):
 *
 *   stream     := header configuration? record* EOF vmdesc?
 *   header     := be32 0x5145564d ("QEVM")  be32 3
 *   config     := u8 0x07  be32 len  name[len]  (u8 0x05 str8 name be32 version body)*
 *   record     := command | section footer?
 *   command    := u8 0x08  be16 cmd  be16 len  payload[len]
 *   section    := u8 0x01|0x04  be32 id  str8 idstr  be32 instance  be32 version  body     (START, FULL)
 *               | u8 0x02|0x03  be32 id  body                                               (PART, END)
 *   footer     := u8 0x7e  be32 id
 *   EOF        := u8 0x00
 *   vmdesc     := u8 0x06  be32 len  json[len]
 *
 * Section bodies are not framed here: their length is known only to whoever understands them.
 */
import { StreamFormatError } from '../errors.js';
import type { ByteReader, ByteWriter, QemuJsonWriter } from '../stream/index.js';
import {
  COMMAND_LENGTHS,
  CONFIG_SUBSECTION,
  FILE_MAGIC,
  FILE_VERSION,
  MigCommand,
  RecordType,
  SECTION_KIND_BY_TYPE,
  SECTION_TYPE_BY_KIND,
  type SectionKind,
} from './constants.js';

/** Largest VMDESCRIPTION JSON accepted (QEMU's are well under 1 MiB even for big machines). */
export const MAX_VMDESC_BYTES = 256 << 20;

/** One subsection of the configuration record, decoded. */
export type ConfigSubsection =
  | { readonly name: typeof CONFIG_SUBSECTION.targetPageBits; readonly version: number; targetPageBits: number }
  | { readonly name: typeof CONFIG_SUBSECTION.capabilities; readonly version: number; capabilities: string[] }
  | { readonly name: typeof CONFIG_SUBSECTION.uuid; readonly version: number; uuid: Uint8Array };

/** The configuration record: the machine type name and the subsections that were sent. */
export interface ConfigurationRecord {
  machineName: string;
  subsections: ConfigSubsection[];
}

/** START or FULL header: announces a section id with its idstr, instance and version. */
export interface FullSectionHeader {
  readonly kind: 'start' | 'full';
  readonly offset: number;
  readonly sectionId: number;
  readonly idstr: string;
  readonly instanceId: number;
  readonly version: number;
}

/** PART or END header: refers to a section id announced by an earlier START. */
export interface ShortSectionHeader {
  readonly kind: 'part' | 'end';
  readonly offset: number;
  readonly sectionId: number;
}

export type SectionHeader = FullSectionHeader | ShortSectionHeader;

/** A COMMAND record (MIG_CMD_*), payload kept as bytes. */
export interface CommandRecord {
  readonly command: number;
  readonly payload: Uint8Array;
}

/** What one top-level read returned. */
export type TopRecord =
  | { readonly type: 'section'; readonly header: SectionHeader }
  | { readonly type: 'command'; readonly offset: number; readonly command: CommandRecord }
  | { readonly type: 'configuration'; readonly offset: number; readonly configuration: ConfigurationRecord }
  | { readonly type: 'eof'; readonly offset: number };

const at = (r: ByteReader, offset = r.offset) => ({ offset, path: '' });

/** Reads and checks the 8-byte file header. */
export function readHeader(r: ByteReader): void {
  const magic = r.getBe32();
  if (magic !== FILE_MAGIC) {
    throw new StreamFormatError(`bad magic 0x${hex32(magic)}, expected 0x${hex32(FILE_MAGIC)} ("QEVM")`, at(r, r.offset - 4));
  }
  const version = r.getBe32();
  if (version !== FILE_VERSION) {
    throw new StreamFormatError(`stream version ${version} is not supported, expected ${FILE_VERSION}`, at(r, r.offset - 4));
  }
}

export function writeHeader(w: ByteWriter): void {
  w.putBe32(FILE_MAGIC);
  w.putBe32(FILE_VERSION);
}

/** Reads one top-level record head: a section header, command, configuration or EOF. */
export function readTopRecord(r: ByteReader): TopRecord {
  const offset = r.offset;
  const type = r.getByte();
  switch (type) {
    case RecordType.SECTION_START:
    case RecordType.SECTION_FULL: {
      const sectionId = r.getBe32();
      const idstr = r.getCountedString();
      const instanceId = r.getBe32();
      const version = r.getBe32();
      const kind = SECTION_KIND_BY_TYPE[type] as 'start' | 'full';
      return { type: 'section', header: { kind, offset, sectionId, idstr, instanceId, version } };
    }
    case RecordType.SECTION_PART:
    case RecordType.SECTION_END: {
      const sectionId = r.getBe32();
      const kind = SECTION_KIND_BY_TYPE[type] as 'part' | 'end';
      return { type: 'section', header: { kind, offset, sectionId } };
    }
    case RecordType.COMMAND:
      return { type: 'command', offset, command: readCommandBody(r, offset) };
    case RecordType.CONFIGURATION:
      return { type: 'configuration', offset, configuration: readConfigurationBody(r) };
    case RecordType.EOF:
      return { type: 'eof', offset };
    default:
      throw new StreamFormatError(`unknown record type 0x${type.toString(16).padStart(2, '0')}`, at(r, offset));
  }
}

export function writeSectionHeader(w: ByteWriter, h: SectionHeader): void {
  w.putByte(SECTION_TYPE_BY_KIND[h.kind]);
  w.putBe32(h.sectionId);
  if (h.kind === 'start' || h.kind === 'full') {
    w.putCountedString(h.idstr);
    w.putBe32(h.instanceId);
    w.putBe32(h.version);
  }
}

/** True if the next byte is a section footer. */
export function footerFollows(r: ByteReader): boolean {
  return r.peekByte() === RecordType.SECTION_FOOTER;
}

/** Reads a footer and checks it closes `sectionId`. */
export function readFooter(r: ByteReader, sectionId: number): void {
  const offset = r.offset;
  const type = r.getByte();
  if (type !== RecordType.SECTION_FOOTER) {
    throw new StreamFormatError(`expected section footer 0x7e, found 0x${type.toString(16).padStart(2, '0')}`, at(r, offset));
  }
  const id = r.getBe32();
  if (id !== sectionId) {
    throw new StreamFormatError(`section footer closes section ${id}, expected ${sectionId}`, at(r, offset));
  }
}

export function writeFooter(w: ByteWriter, sectionId: number): void {
  w.putByte(RecordType.SECTION_FOOTER);
  w.putBe32(sectionId);
}

export function writeEof(w: ByteWriter): void {
  w.putByte(RecordType.EOF);
}

function readCommandBody(r: ByteReader, offset: number): CommandRecord {
  const command = r.getBe16();
  const length = r.getBe16();
  const known = COMMAND_LENGTHS[command];
  // A number vmstate does not know still says how long it is: it is read, and callers decide.
  if (known && known.length >= 0 && known.length !== length) {
    throw new StreamFormatError(`command ${known.name} has length ${length}, expected ${known.length}`, at(r, offset));
  }
  return { command, payload: r.getBuffer(length).slice() };
}

/** A command's payload, decoded: what each MIG_CMD_* carries, and its number. */
export type DecodedCommand =
  | { readonly number: 2; readonly name: 'PING'; readonly value: number }
  /** The OR of every RAM block's page size, and the target page size; both absent when only dirty-bitmaps advised. */
  | { readonly number: 3; readonly name: 'POSTCOPY_ADVISE'; readonly pageSizes?: number; readonly targetPageSize?: number }
  /** Byte ranges of `block` the destination drops (pages dirtied since they were sent). */
  | { readonly number: 6; readonly name: 'POSTCOPY_RAM_DISCARD'; readonly block: string; readonly ranges: readonly { readonly start: number; readonly length: number }[] }
  /** The stream wrapped inside this one takes the `length` bytes after the command. */
  | { readonly number: 7; readonly name: 'PACKAGED'; readonly length: number }
  | { readonly number: 10; readonly name: 'RECV_BITMAP'; readonly block: string }
  | { readonly number: 1 | 4 | 5 | 8 | 9 | 11; readonly name: 'OPEN_RETURN_PATH' | 'POSTCOPY_LISTEN' | 'POSTCOPY_RUN' | 'ENABLE_COLO' | 'POSTCOPY_RESUME' | 'SWITCHOVER_START' }
  /** A number vmstate does not know: its payload is only a length. */
  | { readonly number: number; readonly name: null; readonly length: number };

/** Decodes a command's payload (readCommandBody has checked the fixed lengths). A block name that does not fit reads as "?". */
export function decodeCommand(c: CommandRecord): DecodedCommand {
  const p = c.payload;
  const known = COMMAND_LENGTHS[c.command];
  if (!known) return { number: c.command, name: null, length: p.length };
  const view = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const be64 = (at: number) => view.getUint32(at) * 2 ** 32 + view.getUint32(at + 4);
  // A name: u8 length, then its bytes.
  const name = (at: number) => (p.length > at && p.length >= at + 1 + p[at] ? new TextDecoder().decode(p.subarray(at + 1, at + 1 + p[at])) : '?');
  switch (c.command) {
    case MigCommand.PING:
      return { number: 2, name: 'PING', value: view.getUint32(0) };
    case MigCommand.POSTCOPY_ADVISE:
      return p.length >= 16 ? { number: 3, name: 'POSTCOPY_ADVISE', pageSizes: be64(0), targetPageSize: be64(8) } : { number: 3, name: 'POSTCOPY_ADVISE' };
    case MigCommand.POSTCOPY_RAM_DISCARD: {
      // u8 version, the block's name, u8 0, then be64 start / be64 length pairs.
      const ranges: { start: number; length: number }[] = [];
      for (let at = p.length >= 2 ? 3 + p[1] : p.length; at + 16 <= p.length; at += 16) ranges.push({ start: be64(at), length: be64(at + 8) });
      return { number: 6, name: 'POSTCOPY_RAM_DISCARD', block: name(1), ranges };
    }
    case MigCommand.PACKAGED:
      return { number: 7, name: 'PACKAGED', length: view.getUint32(0) };
    case MigCommand.RECV_BITMAP:
      return { number: 10, name: 'RECV_BITMAP', block: name(0) };
    default:
      // Commands without a payload.
      return { number: c.command, name: known.name } as DecodedCommand;
  }
}

/**
 * A command by name with what its payload says: PING's value, POSTCOPY_ADVISE's page sizes,
 * POSTCOPY_RAM_DISCARD's block and ranges, PACKAGED's length (the nested stream follows it), RECV_BITMAP's
 * block; `command N` for a number vmstate does not know.
 */
export function describeCommand(c: CommandRecord): string {
  const d = decodeCommand(c);
  const hex = (n: number) => `0x${n.toString(16)}`;
  switch (d.name) {
    case null:
      return `command ${d.number}`;
    case 'PING':
      return `PING ${d.value}`;
    case 'POSTCOPY_ADVISE':
      return d.pageSizes === undefined ? d.name : `POSTCOPY_ADVISE page sizes ${hex(d.pageSizes)}, target page ${hex(d.targetPageSize ?? 0)}`;
    case 'POSTCOPY_RAM_DISCARD':
      return `POSTCOPY_RAM_DISCARD ${d.block} ${d.ranges.length} range(s)`;
    case 'PACKAGED':
      return `PACKAGED ${d.length} bytes`;
    case 'RECV_BITMAP':
      return `RECV_BITMAP ${d.block}`;
    default:
      return d.name;
  }
}

export function writeCommand(w: ByteWriter, c: CommandRecord): void {
  w.putByte(RecordType.COMMAND);
  w.putBe16(c.command);
  w.putBe16(c.payload.length);
  w.putBuffer(c.payload);
}

/** Writes the command PING with `value` (QEMU's qemu_savevm_send_ping). */
export function writePing(w: ByteWriter, value: number): void {
  const payload = new Uint8Array(4);
  new DataView(payload.buffer).setUint32(0, value);
  writeCommand(w, { command: MigCommand.PING, payload });
}

function readConfigurationBody(r: ByteReader): ConfigurationRecord {
  const nameLen = r.getBe32();
  if (nameLen > 255) throw new StreamFormatError(`configuration: machine name length ${nameLen} exceeds 255`, at(r, r.offset - 4));
  const machineName = r.getString(nameLen);
  const subsections: ConfigSubsection[] = [];
  // Subsections follow while the next byte is the subsection marker and the name is the configuration's.
  while (r.peekByte() === RecordType.SUBSECTION && r.remaining >= 2) {
    const offset = r.offset;
    r.getByte();
    const name = r.getCountedString();
    const version = r.getBe32();
    const path = name;
    switch (name) {
      case CONFIG_SUBSECTION.targetPageBits:
        subsections.push({ name, version, targetPageBits: r.getBe32() });
        break;
      case CONFIG_SUBSECTION.capabilities: {
        const count = r.getBe32();
        if (count > 64) throw new StreamFormatError(`capability count ${count} exceeds 64`, { offset: r.offset - 4, path });
        const capabilities: string[] = [];
        for (let i = 0; i < count; i++) capabilities.push(r.getCountedString());
        subsections.push({ name, version, capabilities });
        break;
      }
      case CONFIG_SUBSECTION.uuid:
        subsections.push({ name, version, uuid: r.getBuffer(16).slice() });
        break;
      default:
        throw new StreamFormatError(`unknown configuration subsection "${name}"`, { offset, path: 'configuration' });
    }
  }
  return { machineName, subsections };
}

/**
 * Writes the configuration record. With `desc`, also writes its description into the open JSON object as
 * QEMU 8.2 and later do (the VMState description "configuration", version 1): the members "vmsd_name",
 * "version", "fields" and "subsections", each subsection as it was written.
 */
export function writeConfiguration(w: ByteWriter, c: ConfigurationRecord, desc?: QemuJsonWriter): void {
  w.putByte(RecordType.CONFIGURATION);
  const name = new TextEncoder().encode(c.machineName);
  w.putBe32(name.length);
  w.putBuffer(name);
  if (desc) {
    desc.str('vmsd_name', 'configuration');
    desc.int('version', CONFIGURATION_VERSION);
    desc.startArray('fields');
    describeField(desc, 'len', 'uint32', 4);
    describeField(desc, 'name', 'buffer', name.length);
    desc.endArray();
    if (c.subsections.length > 0) desc.startArray('subsections');
  }
  for (const s of c.subsections) {
    w.putByte(RecordType.SUBSECTION);
    w.putCountedString(s.name);
    w.putBe32(s.version);
    desc?.startObject();
    desc?.str('vmsd_name', s.name);
    desc?.int('version', s.version);
    desc?.startArray('fields');
    switch (s.name) {
      case CONFIG_SUBSECTION.targetPageBits:
        w.putBe32(s.targetPageBits);
        if (desc) describeField(desc, 'target_page_bits', 'uint32', 4);
        break;
      case CONFIG_SUBSECTION.capabilities: {
        w.putBe32(s.capabilities.length);
        for (const cap of s.capabilities) w.putCountedString(cap);
        if (desc) {
          describeField(desc, 'caps_count', 'uint32', 4);
          // Compressed: described by its first element, each a length byte and the name.
          if (s.capabilities.length > 0) describeField(desc, 'capabilities', 'capability', 1 + new TextEncoder().encode(s.capabilities[0]).length, s.capabilities.length);
        }
        break;
      }
      case CONFIG_SUBSECTION.uuid:
        w.putBuffer(s.uuid);
        if (desc) describeField(desc, 'uuid.data', 'uint8', 1, 16);
        break;
    }
    desc?.endArray();
    desc?.endObject();
  }
  if (desc && c.subsections.length > 0) desc.endArray();
}

/** QEMU's vmstate_configuration version_id, as its description names it. */
const CONFIGURATION_VERSION = 1;

/** One field object of a description; `count` > 1 makes it a compressed array. */
function describeField(desc: QemuJsonWriter, name: string, type: string, size: number, count = 1): void {
  desc.startObject();
  desc.str('name', name);
  if (count > 1) desc.int('array_len', count);
  desc.str('type', type);
  desc.int('size', size);
  desc.endObject();
}

/** Reads the VMDESCRIPTION trailer (after EOF); returns the JSON bytes. */
export function readVmdesc(r: ByteReader): Uint8Array {
  const offset = r.offset;
  const type = r.getByte();
  if (type !== RecordType.VMDESCRIPTION) {
    throw new StreamFormatError(`expected VMDESCRIPTION 0x06 after EOF, found 0x${type.toString(16).padStart(2, '0')}`, at(r, offset));
  }
  const length = r.getBe32();
  if (length > MAX_VMDESC_BYTES) {
    throw new StreamFormatError(`VMDESCRIPTION length ${length} exceeds ${MAX_VMDESC_BYTES}`, at(r, offset + 1));
  }
  return r.getBuffer(length);
}

export function writeVmdesc(w: ByteWriter, json: Uint8Array): void {
  w.putByte(RecordType.VMDESCRIPTION);
  w.putBe32(json.length);
  w.putBuffer(json);
}

/**
 * Finds the VMDESCRIPTION trailer in the last bytes of a stream: the last offset p with byte 0x06, a be32
 * length that ends exactly at the end of the stream, '{' after it and the EOF byte before it. Safer than
 * analyze-migration.py's "last NUL, then first brace", which a length byte of 0x7b fools.
 * `tail` holds the stream's last bytes, `tailOffset` the offset of tail[0]. Returns the offset of the
 * 0x06 byte, or -1.
 */
export function findVmdescTrailer(tail: Uint8Array, tailOffset: number, streamLength: number): number {
  if (tail.length < 7) return -1;
  const view = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
  // Only a 0x06 byte can start it and JSON text holds none, so the search jumps from one to the next.
  const marker = RecordType.VMDESCRIPTION;
  for (let i = tail.lastIndexOf(marker, tail.length - 6); i >= 1; i = tail.lastIndexOf(marker, i - 1)) {
    if (tail[i - 1] !== RecordType.EOF || tail[i + 5] !== 0x7b) continue;
    const p = tailOffset + i;
    if (p + 5 + view.getUint32(i + 1) === streamLength) return p;
  }
  return -1;
}

function hex32(v: number): string {
  return v.toString(16).padStart(8, '0');
}

export type { SectionKind };
