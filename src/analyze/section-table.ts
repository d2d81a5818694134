/** A table of a stream's records: where each starts, what it is, how many bytes it takes. */
import { decodeCommand, describeCommand, type DecodedCommand, type SectionContext } from '../savevm/index.js';
import type { ChunkedSource } from '../stream/index.js';
import { decodeStream, type DecodedStreamHandler } from './decode-stream.js';
import type { Vmdesc } from './vmdesc.js';

/** One section: its header, body and footer. */
export interface SectionRow {
  /** Byte offset of the section's type byte. */
  readonly offset: number;
  readonly type: 'start' | 'part' | 'end' | 'full';
  readonly sectionId: number;
  readonly idstr: string;
  readonly instanceId: number;
  readonly version: number;
  /** Bytes from the type byte to the end of the footer. */
  readonly size: number;
  /** True for a record inside the stream a PACKAGED command wraps. */
  readonly packaged?: true;
}

/** A record that is not a section: the configuration, a command, EOF, the VMDESCRIPTION trailer. */
export interface OtherRecordRow {
  readonly offset: number;
  readonly type: 'configuration' | 'command' | 'eof' | 'vmdesc';
  /** The configuration's machine type, or the command with what its payload says (see describeCommand). */
  readonly name?: string;
  /** A command's payload, decoded. */
  readonly command?: DecodedCommand;
  /** Bytes from the type byte to the end of the record. */
  readonly size: number;
  /** True for a record inside the stream a PACKAGED command wraps. */
  readonly packaged?: true;
}

export type RecordRow = SectionRow | OtherRecordRow;

/**
 * Lists every record in stream order, from the first after the header to the last. Rows go into `rows` as
 * they are read, so a caller that catches an error can still show the records before it.
 */
export async function listRecords(src: ChunkedSource, vmdesc: Vmdesc | null, rows: RecordRow[] = []): Promise<RecordRow[]> {
  let packageEnd = -1;
  const add = (row: RecordRow) => rows.push(row.offset < packageEnd ? { ...row, packaged: true } : row);
  await decodeStream(src, vmdesc, {
    configuration: (c, offset, end) => add({ offset, type: 'configuration', name: c.machineName, size: end - offset }),
    command: (c, offset, end) => add({ offset, type: 'command', name: describeCommand(c), command: decodeCommand(c), size: end - offset }),
    packaged: (_from, to) => (packageEnd = to),
    sectionDone: (ctx, end) => add(sectionRow(ctx.header.offset, ctx, end)),
    eof: (offset) => add({ offset, type: 'eof', size: 1 }),
    vmdesc: (json, offset) => add({ offset, type: 'vmdesc', size: 5 + json.length }),
  });
  return rows;
}

/**
 * Lists every section in stream order, as listRecords does every record. `alongside` is called as well,
 * for all but sectionDone, to learn more in the same read (e.g. an identityWatcher's handler).
 */
export async function listSections(src: ChunkedSource, vmdesc: Vmdesc | null, rows: SectionRow[] = [], alongside: DecodedStreamHandler = {}): Promise<SectionRow[]> {
  await decodeStream(src, vmdesc, { ...alongside, sectionDone: (ctx, end) => rows.push(sectionRow(ctx.header.offset, ctx, end)) });
  return rows;
}

function sectionRow(offset: number, ctx: SectionContext, end: number): SectionRow {
  return { offset, type: ctx.header.kind, sectionId: ctx.sectionId, idstr: ctx.idstr, instanceId: ctx.instanceId, version: ctx.version, size: end - offset };
}

/**
 * The table as aligned text, one line per record under a header line; a record that is not a section shows
 * its name as its idstr, and a record inside a PACKAGED stream is indented under it.
 */
export function formatSectionTable(rows: readonly RecordRow[]): string {
  const head = ['offset', 'type', 'id', 'idstr', 'instance', 'version', 'size'];
  const cells = rows.map((r) => {
    const indent = r.packaged ? '  ' : '';
    return 'sectionId' in r
      ? [String(r.offset), r.type, String(r.sectionId), indent + r.idstr, String(r.instanceId), String(r.version), String(r.size)]
      : [String(r.offset), r.type, '', indent + (r.name ?? ''), '', '', String(r.size)];
  });
  // A loop, not Math.max(...cells): a stream can hold more records than a call has room for arguments.
  const widths = head.map((h) => h.length);
  for (const c of cells) for (let i = 0; i < widths.length; i++) widths[i] = Math.max(widths[i], c[i].length);
  const line = (c: string[]) =>
    c
      .map((v, i) => (i === 3 ? v.padEnd(widths[i]) : v.padStart(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(head), ...cells.map(line)].join('\n') + '\n';
}
