// Streams made in tests: RAM only (one block, pc.ram), with the records a test wants in its PART and
// END sections, and optionally something before RAM's START or after it and a VMDESCRIPTION trailer.
import { ByteWriter, RamEncoder, writeEof, writeFooter, writeHeader, writeSectionHeader, writeVmdesc } from '../../src/index.js';

export interface RamStreamOptions {
  /** 4 KiB pages in pc.ram. */
  readonly pages: number;
  readonly part?: (enc: RamEncoder) => void;
  readonly end?: (enc: RamEncoder) => void;
  /** Records between the header and RAM's START. */
  readonly before?: (w: ByteWriter) => void;
  /** Records between RAM's START and its PART. */
  readonly afterStart?: (w: ByteWriter) => void;
  /** The trailer's JSON, when there is one. */
  readonly trailer?: string;
}

/** The stream's bytes: header, [before], RAM START (the block list), [afterStart], PART, END, EOF, [trailer]. */
export function ramOnlyStream(o: RamStreamOptions): Uint8Array {
  const w = new ByteWriter();
  const enc = new RamEncoder({ pageSize: 4096 }, w);
  const section = (kind: 'start' | 'part' | 'end', body: () => void) => {
    writeSectionHeader(w, kind === 'start' ? { kind, offset: 0, sectionId: 2, idstr: 'ram', instanceId: 0, version: 4 } : { kind, offset: 0, sectionId: 2 });
    body();
    enc.eos();
    writeFooter(w, 2);
  };
  writeHeader(w);
  o.before?.(w);
  section('start', () => enc.writeBlockList(o.pages * 4096, [{ name: 'pc.ram', usedLength: o.pages * 4096 }]));
  o.afterStart?.(w);
  section('part', () => o.part?.(enc));
  section('end', () => o.end?.(enc));
  writeEof(w);
  if (o.trailer !== undefined) writeVmdesc(w, new TextEncoder().encode(o.trailer));
  return w.peek().slice();
}
