/**
 * Re-encodes a stream from its decoded values: framing records from their fields, RAM from its records,
 * devices from their value trees (with `--set` edits applied); the trailer is copied. With no
 * edits the output equals the input byte for byte, which is how the decoders are proven complete.
 */
import { UsageError } from '../errors.js';
import { RamEncoder, type RamLayout } from '../ram/index.js';
import {
  writeCommand,
  writeConfiguration,
  writeEof,
  writeFooter,
  writeHeader,
  writeSectionHeader,
  writeVmdesc,
} from '../savevm/index.js';
import { ByteWriter, type ChunkedSource } from '../stream/index.js';
import { decodeStream, ramLayoutOf } from './decode-stream.js';
import { encodeStruct, readValueTree } from './value-tree.js';
import { applyEdit, type FieldEdit } from './edit.js';
import type { Vmdesc } from './vmdesc.js';

/** Where the re-encoded bytes go; each chunk may be reused after the call returns. */
export type ByteSink = (chunk: Uint8Array) => void;

/** What a rewrite did. */
export interface RewriteResult {
  readonly bytesWritten: number;
  readonly editsApplied: number;
}

const FLUSH_AT = 4 << 20;

/** Decodes `src` and writes it again to `sink`, applying `edits` to device sections. */
export async function rewriteStream(src: ChunkedSource, vmdesc: Vmdesc, sink: ByteSink, edits: readonly FieldEdit[] = []): Promise<RewriteResult> {
  const w = new ByteWriter(FLUSH_AT * 2);
  let written = 0;
  const flush = (force = false) => {
    if (w.length === 0 || (!force && w.length < FLUSH_AT)) return;
    sink(w.peek());
    written += w.length;
    w.reset();
  };
  let layout: RamLayout = { pageSize: vmdesc.page_size };
  const ram = new RamEncoder({ get pageSize() { return layout.pageSize; }, get ignoreShared() { return layout.ignoreShared; } }, w);
  const applied = new Set<FieldEdit>();
  writeHeader(w);
  await decodeStream(src, vmdesc, {
    configuration(c) {
      layout = ramLayoutOf(c, layout);
      writeConfiguration(w, c);
    },
    command(c) {
      writeCommand(w, c);
    },
    sectionStart(ctx) {
      writeSectionHeader(w, ctx.header);
    },
    // The encoder is a sink of the decoder: every record goes out again as it came in.
    ram: {
      memSize: (total) => ram.memSize(total),
      block: (info) => ram.block(info),
      mappedRegion: (info, region) => ram.mappedRegion(info, region),
      skipped: (chunk) => {
        ram.skipped(chunk);
        flush();
      },
      zeroPage: (b, o, fill, named) => ram.zeroPage(b, o, fill, named),
      page: (b, o, data, named) => {
        ram.page(b, o, data, named);
        flush();
      },
      xbzrlePage: (b, o, delta, named) => ram.xbzrlePage(b, o, delta, named),
      compressedPage: (b, o, deflated, named) => ram.compressedPage(b, o, deflated, named),
      multifdFlush: () => ram.multifdFlush(),
      eos: () => ram.eos(),
    },
    device(ctx, r, plan) {
      const body = readValueTree(r, plan);
      for (const e of edits) {
        if (e.idstr === ctx.idstr && e.instanceId === ctx.instanceId) {
          applyEdit(body, e);
          applied.add(e);
        }
      }
      encodeStruct(w, body);
    },
    iterativeBytes(_ctx, chunk) {
      w.putBuffer(chunk);
      flush();
    },
    sectionDone(ctx, _end, footer) {
      if (footer) writeFooter(w, ctx.sectionId);
      flush();
    },
    eof() {
      writeEof(w);
    },
    // Copied as it is: edits change values, never the fields and sizes the description gives.
    vmdesc(json) {
      writeVmdesc(w, json);
    },
  });
  const missed = edits.filter((e) => !applied.has(e));
  if (missed.length > 0) {
    const e = missed[0];
    throw new UsageError(`--set ${e.spec}: the stream has no section "${e.idstr}" with instance ${e.instanceId}`, { spec: e.spec });
  }
  flush(true);
  return { bytesWritten: written, editsApplied: applied.size };
}
