/** A table of a stream's sections: where each starts, what it is, how many bytes it takes. */
import type { ChunkedSource } from '../stream/index.js';
import { decodeStream } from './decode-stream.js';
import type { Vmdesc } from './vmdesc.js';

/** One row of the section table. */
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
}

/**
 * Lists every section in stream order. Rows go into `rows` as they are read, so a caller that catches an
 * error can still show the sections before it.
 */
export async function listSections(src: ChunkedSource, vmdesc: Vmdesc | null, rows: SectionRow[] = []): Promise<SectionRow[]> {
  await decodeStream(src, vmdesc, {
    sectionDone(ctx, end) {
      const h = ctx.header;
      rows.push({
        offset: h.offset,
        type: h.kind,
        sectionId: ctx.sectionId,
        idstr: ctx.idstr,
        instanceId: ctx.instanceId,
        version: ctx.version,
        size: end - h.offset,
      });
    },
  });
  return rows;
}

/** The table as aligned text, one line per section under a header line. */
export function formatSectionTable(rows: readonly SectionRow[]): string {
  const head = ['offset', 'type', 'id', 'idstr', 'instance', 'version', 'size'];
  const cells = rows.map((r) => [String(r.offset), r.type, String(r.sectionId), r.idstr, String(r.instanceId), String(r.version), String(r.size)]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) =>
    c
      .map((v, i) => (i === 3 ? v.padEnd(widths[i]) : v.padStart(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(head), ...cells.map(line)].join('\n') + '\n';
}
