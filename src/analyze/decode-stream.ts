/**
 * Decodes a whole stream in stream order: the configuration, RAM records through a RamSink, and every
 * device section through its VMDESCRIPTION entry, handing each piece to a handler as soon as it is read.
 */
import { StreamFormatError } from '../errors.js';
import { RamDecoder, type RamLayout, type RamSink } from '../ram/index.js';
import {
  CONFIG_SUBSECTION,
  walkStream,
  type CommandRecord,
  type ConfigurationRecord,
  type SectionBodyDecoder,
  type SectionContext,
} from '../savevm/index.js';
import type { ByteReader, ChunkedSource } from '../stream/index.js';
import { decodeStruct } from './decode-device.js';
import type { StructValue } from './values.js';
import type { Vmdesc, VmdescDevice } from './vmdesc.js';

/** Receives the decoded stream piece by piece; every member is optional. */
export interface DecodedStreamHandler {
  configuration?(c: ConfigurationRecord, offset: number): void;
  command?(c: CommandRecord, offset: number): void;
  /** Before a section's body is read (its header has been). */
  sectionStart?(ctx: SectionContext): void;
  /** RAM records of every `ram` section, in order. */
  readonly ram?: RamSink;
  /** A device section's decoded body. The handler may change it (rewrite does) before sectionDone. */
  device?(ctx: SectionContext, body: StructValue, description: VmdescDevice): void;
  /**
   * Reads a device section's body itself, in place of decodeStruct and `device` (analyze's JSON path does,
   * to skip the value tree). When the bytes run out it is called again from the body's start, so it must
   * undo what it did before it throws.
   */
  readDevice?(ctx: SectionContext, r: ByteReader, description: VmdescDevice): void;
  sectionDone?(ctx: SectionContext, end: number, footer: boolean): void;
  eof?(offset: number): void;
  vmdesc?(json: Uint8Array, offset: number): void;
}

/** The RAM record layout a configuration record implies: its target page size and x-ignore-shared. */
export function ramLayoutOf(c: ConfigurationRecord, base: RamLayout): RamLayout {
  let layout = base;
  for (const s of c.subsections) {
    if (s.name === CONFIG_SUBSECTION.targetPageBits) layout = { ...layout, pageSize: 2 ** s.targetPageBits };
    if (s.name === CONFIG_SUBSECTION.capabilities && s.capabilities.includes('x-ignore-shared')) layout = { ...layout, ignoreShared: true };
  }
  return layout;
}

/** The RAM section's idstr and instance (the old-style handler in migration/ram.c). */
export const RAM_IDSTR = 'ram';

/**
 * Walks the stream, decoding each section. `vmdesc` describes the device sections; without it only a
 * stream with no device sections can be decoded. Device lookup is by (idstr, instance id), the last
 * description of a pair winning, as in analyze-migration.py.
 */
export async function decodeStream(src: ChunkedSource, vmdesc: Vmdesc | null, handler: DecodedStreamHandler): Promise<void> {
  const devices = new Map<string, VmdescDevice>();
  for (const d of vmdesc?.devices ?? []) devices.set(`${d.name}\u0000${d.instance_id}`, d);
  let layout: RamLayout = { pageSize: vmdesc?.page_size ?? 4096 };
  const ramDecoders = new Map<number, RamDecoder>();
  const ramSink: RamSink = handler.ram ?? {};

  await walkStream(src, {
    configuration(c, offset) {
      layout = ramLayoutOf(c, layout);
      handler.configuration?.(c, offset);
    },
    command: handler.command?.bind(handler),
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
        throw new StreamFormatError(`iterative section "${ctx.idstr}" is not supported (only "ram" is)`, { offset: ctx.header.offset, path: ctx.label });
      }
      const desc = devices.get(`${ctx.idstr}\u0000${ctx.instanceId}`);
      if (!desc) {
        const why = vmdesc ? 'the VMDESCRIPTION trailer does not describe it' : 'the stream has no VMDESCRIPTION trailer';
        throw new StreamFormatError(`cannot decode section: ${why}`, { offset: ctx.header.offset, path: ctx.label });
      }
      return {
        step(r) {
          if (handler.readDevice) {
            handler.readDevice(ctx, r, desc);
          } else {
            const body = decodeStruct(r, desc);
            handler.device?.(ctx, body, desc);
          }
          return true;
        },
      };
    },
    sectionDone: handler.sectionDone?.bind(handler),
    eof: handler.eof?.bind(handler),
    vmdesc: handler.vmdesc?.bind(handler),
  });
}
