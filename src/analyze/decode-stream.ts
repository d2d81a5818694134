/**
 * A whole stream, section by section, in stream order: the configuration, RAM records through a RamSink,
 * and every device section with the plan of its VMDESCRIPTION entry, each handed to a handler as soon as
 * it is read. A device body is read by the handler; before it starts, the source holds every byte the
 * plan says the body can take, so a read never runs out half-way unless the stream does.
 */
import { StreamFormatError } from '../errors.js';
import { RamDecoder, type RamLayout, type RamSink } from '../ram/index.js';
import {
  CONFIG_SUBSECTION,
  decodeCommand,
  walkStream,
  type CommandRecord,
  type ConfigurationRecord,
  type SectionBodyDecoder,
  type SectionContext,
} from '../savevm/index.js';
import type { ByteReader, ChunkedSource } from '../stream/index.js';
import { structPlan, type StructPlan } from './field-plan.js';
import { framedIterative, isFramedIterative } from './iterative-sections.js';
import { skipStruct } from './read-body.js';
import type { AnalyzeScript } from './script-7.2.js';
import { DEFAULT_SCRIPT } from './scripts.js';
import type { Vmdesc, VmdescDevice } from './vmdesc.js';

/** Receives the decoded stream piece by piece; every member is optional. */
export interface DecodedStreamHandler {
  /** `end` is the offset just past the record. */
  configuration?(c: ConfigurationRecord, offset: number, end: number): void;
  /** `end` is the offset just past the record. */
  command?(c: CommandRecord, offset: number, end: number): void;
  /** After a PACKAGED command: the stream it wraps takes the bytes from `from` to `to`; its records follow. */
  packaged?(from: number, to: number): void;
  /** Before a section's body is read (its header has been). */
  sectionStart?(ctx: SectionContext): void;
  /** RAM records of every `ram` section, in order. */
  readonly ram?: RamSink;
  /** The bodies of the other iterative sections (block, dirty-bitmap, spapr/htab, s390-storage_attributes), as bytes. */
  iterativeBytes?(ctx: SectionContext, chunk: Uint8Array): void;
  /**
   * Reads a device section's body, which `plan` describes, from `r` (every byte of it, and only those).
   * Without this member the body is skipped.
   */
  device?(ctx: SectionContext, r: ByteReader, plan: StructPlan): void;
  sectionDone?(ctx: SectionContext, end: number, footer: boolean): void;
  eof?(offset: number): void;
  vmdesc?(json: Uint8Array, offset: number): void;
}

/** The RAM record layout a configuration record implies: its target page size, x-ignore-shared and mapped-ram. */
export function ramLayoutOf(c: ConfigurationRecord, base: RamLayout): RamLayout {
  let layout = base;
  for (const s of c.subsections) {
    if (s.name === CONFIG_SUBSECTION.targetPageBits) layout = { ...layout, pageSize: 2 ** s.targetPageBits };
    if (s.name === CONFIG_SUBSECTION.capabilities && s.capabilities.includes('x-ignore-shared')) layout = { ...layout, ignoreShared: true };
    if (s.name === CONFIG_SUBSECTION.capabilities && s.capabilities.includes('mapped-ram')) layout = { ...layout, mappedRam: true };
  }
  return layout;
}

/** The page sizes above the smallest (the host's) in POSTCOPY_ADVISE's summary: those of blocks on huge pages. */
function hugePageSizes(summary: number): number[] {
  const sizes: number[] = [];
  for (let size = 1; size <= summary && size < 2 ** 53; size *= 2) if (Math.floor(summary / size) % 2 === 1) sizes.push(size);
  return sizes.slice(1);
}

/** The RAM section's idstr and instance (the old-style handler in migration/ram.c). */
export const RAM_IDSTR = 'ram';

/**
 * Walks the stream, decoding each section. `vmdesc` describes the device sections; without it only a
 * stream with no device sections can be decoded. Device lookup is by (idstr, instance id), the last
 * description of a pair winning, as in analyze-migration.py; `script` gives the rules bodies are planned by.
 */
export async function decodeStream(src: ChunkedSource, vmdesc: Vmdesc | null, handler: DecodedStreamHandler, script: AnalyzeScript = DEFAULT_SCRIPT): Promise<void> {
  const devices = new Map<string, VmdescDevice>();
  for (const d of vmdesc?.devices ?? []) devices.set(`${d.name}\u0000${d.instance_id}`, d);
  let layout: RamLayout = { pageSize: vmdesc?.page_size ?? 4096 };
  const ramDecoders = new Map<number, RamDecoder>();
  const ramSink: RamSink = handler.ram ?? {};

  await walkStream(src, {
    configuration(c, offset, end) {
      layout = ramLayoutOf(c, layout);
      handler.configuration?.(c, offset, end);
    },
    command(c, offset, end) {
      const d = decodeCommand(c);
      if (d.name === 'POSTCOPY_ADVISE' && d.pageSizes !== undefined) layout = { ...layout, hugePageSizes: hugePageSizes(d.pageSizes) };
      handler.command?.(c, offset, end);
    },
    section(ctx): SectionBodyDecoder {
      handler.sectionStart?.(ctx);
      if (ctx.idstr === RAM_IDSTR && ctx.instanceId === 0) {
        if (ctx.version !== 4) {
          throw new StreamFormatError(`ram section version ${ctx.version} is not supported, expected 4`, { offset: ctx.header.offset, path: ctx.label });
        }
        let dec = ramDecoders.get(ctx.sectionId);
        if (!dec) {
          try {
            dec = new RamDecoder(layout, ramSink);
          } catch (e) {
            throw new StreamFormatError((e as Error).message, { offset: ctx.header.offset, path: ctx.label });
          }
          ramDecoders.set(ctx.sectionId, dec);
        }
        return dec;
      }
      if (ctx.header.kind !== 'full') {
        const framed = framedIterative(ctx.idstr, ctx.version, handler.iterativeBytes && ((chunk) => handler.iterativeBytes?.(ctx, chunk)));
        if (framed !== null) return framed;
        const known = isFramedIterative(ctx.idstr) ? ` at version ${ctx.version}` : '';
        throw new StreamFormatError(`iterative section "${ctx.idstr}"${known} is not supported`, { offset: ctx.header.offset, path: ctx.label });
      }
      const desc = devices.get(`${ctx.idstr}\u0000${ctx.instanceId}`);
      if (!desc) {
        const why = vmdesc ? 'the VMDESCRIPTION trailer does not describe it' : 'the stream has no VMDESCRIPTION trailer';
        throw new StreamFormatError(`cannot decode section: ${why}`, { offset: ctx.header.offset, path: ctx.label });
      }
      const plan = structPlan(desc, script);
      return {
        need: plan.maxSize,
        step(r) {
          if (handler.device) handler.device(ctx, r, plan);
          else skipStruct(r, plan);
          return true;
        },
      };
    },
    packaged: handler.packaged?.bind(handler),
    sectionDone: handler.sectionDone?.bind(handler),
    eof: handler.eof?.bind(handler),
    vmdesc: handler.vmdesc?.bind(handler),
  });
}
