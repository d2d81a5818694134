/**
 * Walks a migration stream record by record, in stream order, handing each section body to a decoder the
 * caller supplies. Framing is checked here (magic, version, section ids, footers, EOF, trailer); what a
 * body means is the caller's business. Works over any ChunkedSource, so memory stays bounded.
 *
 * A PACKAGED command wraps a stream inside this one (postcopy's LISTEN, the devices, RUN): the bytes it
 * announces are walked as records like the rest, and must hold whole records, no configuration, no EOF
 * and no package of their own (QEMU's destination reads them as a stream of their own, from a buffer).
 */
import { StreamFormatError, prefixStreamError } from '../errors.js';
import type { ByteReader, ChunkedSource } from '../stream/index.js';
import {
  footerFollows,
  decodeCommand,
  readFooter,
  readHeader,
  readTopRecord,
  readVmdesc,
  type CommandRecord,
  type ConfigurationRecord,
  type SectionHeader,
} from './framing.js';

/**
 * Decodes one section body in steps. Before each step the walker buffers `need` bytes (or the rest of
 * the stream, if shorter): the most the step may read. `step` consumes whole units only and returns true
 * when the body is complete, false to be called again (with `need` bytes from where it stopped).
 */
export interface SectionBodyDecoder {
  /** The most the next step may read; Infinity for the rest of the stream (up to the source's window). */
  readonly need: number;
  /**
   * Set by a step that returns false where the stream jumps ahead (mapped-ram): the absolute offset it
   * goes on at, and who wants the bytes jumped over (else a file source seeks).
   */
  readonly skip?: { readonly to: number; readonly bytes?: (chunk: Uint8Array) => void } | null;
  step(r: ByteReader): boolean;
}

/** What the walker knows about the section a body belongs to. */
export interface SectionContext {
  readonly header: SectionHeader;
  readonly sectionId: number;
  readonly idstr: string;
  readonly instanceId: number;
  /** The version announced by the section's START or FULL header. */
  readonly version: number;
  /** `idstr (section id)`, the name errors and analyze output use. */
  readonly label: string;
}

/** Callbacks for each record; only `section` is required. */
export interface StreamVisitor {
  /** `end` is the offset just past the record. */
  configuration?(c: ConfigurationRecord, offset: number, end: number): void;
  /** `end` is the offset just past the record. */
  command?(c: CommandRecord, offset: number, end: number): void;
  /** After a PACKAGED command: the nested stream takes the bytes from `from` to `to`; its records follow. */
  packaged?(from: number, to: number): void;
  section(ctx: SectionContext): SectionBodyDecoder;
  /** Called after a section's body and footer. `end` is the offset just past them. */
  sectionDone?(ctx: SectionContext, end: number, footer: boolean): void;
  eof?(offset: number): void;
  vmdesc?(json: Uint8Array, offset: number): void;
}

/** Options for walkStream. */
export interface WalkOptions {
  /**
   * Asked once the trailer is read: true ends the walk there rather than checking that nothing follows
   * it, for a connection that stays open after the stream (a return path waits for the destination's
   * answer). Defaults to false.
   */
  readonly untilTrailer?: () => boolean;
}

/** Walks a whole stream. Throws typed stream errors naming the offset and section. */
export async function walkStream(src: ChunkedSource, visitor: StreamVisitor, options: WalkOptions = {}): Promise<void> {
  await src.read(readHeader);
  const started = new Map<number, SectionContext>();
  let footers: boolean | undefined;
  let first = true;
  /** Where the package being walked ends, or null outside one. */
  let packageEnd: number | null = null;
  // Called after each record: a package must end between records.
  const leavePackage = (recordOffset: number) => {
    if (packageEnd === null || src.offset < packageEnd) return;
    if (src.offset > packageEnd) {
      throw new StreamFormatError(`the record at byte offset ${recordOffset} runs past the end of its PACKAGED stream (byte offset ${packageEnd})`, { offset: packageEnd, path: '' });
    }
    packageEnd = null;
  };
  for (;; first = false) {
    const rec = await src.read(readTopRecord);
    const recordOffset = rec.type === 'section' ? rec.header.offset : rec.offset;
    if (packageEnd !== null && (rec.type === 'eof' || rec.type === 'configuration')) {
      throw new StreamFormatError(`${rec.type === 'eof' ? 'EOF' : 'a configuration record'} inside a PACKAGED stream`, { offset: recordOffset, path: '' });
    }
    if (rec.type === 'eof') {
      visitor.eof?.(rec.offset);
      break;
    }
    if (rec.type === 'configuration') {
      // QEMU reads it right after the header, and nowhere else.
      if (!first) throw new StreamFormatError(`a configuration record after the first record`, { offset: rec.offset, path: '' });
      visitor.configuration?.(rec.configuration, rec.offset, src.offset);
      continue;
    }
    if (rec.type === 'command') {
      visitor.command?.(rec.command, rec.offset, src.offset);
      const command = decodeCommand(rec.command);
      if (command.name === 'PACKAGED') {
        if (packageEnd !== null) throw new StreamFormatError(`a PACKAGED command inside a PACKAGED stream`, { offset: rec.offset, path: '' });
        packageEnd = src.offset + command.length;
        visitor.packaged?.(src.offset, packageEnd);
      }
      leavePackage(rec.offset);
      continue;
    }
    const h = rec.header;
    let ctx: SectionContext;
    if (h.kind === 'start' || h.kind === 'full') {
      ctx = { header: h, sectionId: h.sectionId, idstr: h.idstr, instanceId: h.instanceId, version: h.version, label: `${h.idstr} (${h.sectionId})` };
      started.set(h.sectionId, ctx);
    } else {
      const first = started.get(h.sectionId);
      if (!first || first.header.kind !== 'start') {
        throw new StreamFormatError(`section ${h.kind.toUpperCase()} for section id ${h.sectionId}, which no START announced`, {
          offset: h.offset,
          path: '',
        });
      }
      ctx = { ...first, header: h };
    }
    const decoder = visitor.section(ctx);
    let done = false;
    while (!done) {
      const from = src.offset;
      const need = decoder.need;
      done = await src.step(need, (r) => {
        try {
          return decoder.step(r);
        } catch (e) {
          throw prefixStreamError(e, ctx.label);
        }
      });
      const skip = done ? null : decoder.skip;
      if (skip) {
        await src.skipTo(skip.to, skip.bytes);
        continue;
      }
      // A decoder that neither reads nor asks for more would be called for ever.
      if (!done && src.offset === from && decoder.need <= need) {
        throw new StreamFormatError(`section body makes no progress with ${need} bytes`, { offset: from, path: ctx.label });
      }
    }
    const hasFooter = await src.read((r) => {
      r.need(1); // something always follows a section, at least EOF
      const present = footerFollows(r);
      if (footers === undefined) footers = present;
      if (present) {
        try {
          readFooter(r, ctx.sectionId);
        } catch (e) {
          throw prefixStreamError(e, ctx.label);
        }
      }
      return present;
    });
    if (footers && !hasFooter) {
      throw new StreamFormatError(`missing section footer`, { offset: src.offset, path: ctx.label });
    }
    visitor.sectionDone?.(ctx, src.offset, hasFooter);
    leavePackage(recordOffset);
  }
  // Optional trailer, then nothing more.
  if (!(await src.isAtEnd())) {
    const offset = src.offset;
    const json = await src.read((r) => readVmdesc(r).slice());
    visitor.vmdesc?.(json, offset);
    if (!options.untilTrailer?.() && !(await src.isAtEnd())) {
      throw new StreamFormatError(`unexpected bytes after the VMDESCRIPTION trailer`, { offset: src.offset, path: '' });
    }
  }
}
