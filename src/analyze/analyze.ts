/**
 * The analyze-migration.py-compatible view of a stream: one entry per section id, in first-seen order,
 * keyed `idstr (section id)`, RAM as its block sizes and devices as their fields. Two forms: the dict
 * (analyzeStream, for callers that look at values: each body decoded to values and rendered by the
 * reference renderer) and the printed text (analyzeStreamJson, what `vmstate analyze` prints: the JSON
 * fast path, with the reference for the bodies it leaves to it).
 */
import type { RamSink } from '../ram/index.js';
import { COMMAND_LENGTHS } from '../savevm/index.js';
import type { ByteReader, ChunkedSource } from '../stream/index.js';
import { decodeStream, RAM_IDSTR, type DecodedStreamHandler } from './decode-stream.js';
import { isFramedIterative } from './iterative-sections.js';
import { writeBodyJson } from './json-fast-path.js';
import { pyDumps, PyJsonWriter, type PyJson } from './python-json.js';
import { renderStruct } from './render-dict.js';
import { ramSizeText, type AnalyzeScript } from './script-7.2.js';
import { DEFAULT_SCRIPT } from './scripts.js';
import { readValueTree } from './value-tree.js';
import type { StructPlan } from './field-plan.js';
import type { Vmdesc } from './vmdesc.js';

/** Options for analyzeStream and analyzeStreamJson. */
export interface AnalyzeOptions {
  /** Also receives every RAM record (e.g. to write RAM blocks to files). */
  readonly ram?: RamSink;
  /** The analyze-migration.py whose output to give. Defaults to DEFAULT_SCRIPT (QEMU 10.0's). */
  readonly script?: AnalyzeScript;
  /** Told, a line each, of what the stream holds that the output cannot show (a command of unknown number). */
  readonly note?: (line: string) => void;
}

/** What every section id maps to; `T` is how a device section is kept. */
/** RAM is its block sizes; the other iterative sections an empty string, as QEMU 10.0's script prints spapr/htab. */
type Sections<T> = Map<number, { readonly label: string; readonly value: T | Map<string, PyJson> | '' }>;

/**
 * The handler parts both forms share: RAM sections become their block sizes, RAM records reach
 * options.ram, unknown commands a note.
 */
function sharedHandler<T>(sections: Sections<T>, options: AnalyzeOptions): DecodedStreamHandler {
  let ramSizes: Map<string, PyJson> | null = null;
  const extra = options.ram;
  return {
    command(c, offset) {
      if (COMMAND_LENGTHS[c.command] === undefined) options.note?.(`command ${c.command} (${c.payload.length} bytes at byte offset ${offset}) is not one vmstate knows; skipped`);
    },
    sectionStart(ctx) {
      if (ctx.header.kind !== 'start' && ctx.header.kind !== 'full') return;
      if (ctx.idstr === RAM_IDSTR && ctx.instanceId === 0) {
        ramSizes = new Map();
        sections.set(ctx.sectionId, { label: ctx.label, value: new Map([['section sizes', ramSizes]]) });
      } else if (ctx.header.kind === 'start' && isFramedIterative(ctx.idstr)) {
        sections.set(ctx.sectionId, { label: ctx.label, value: '' });
      }
    },
    ram: {
      blockList(total, blocks) {
        for (const b of blocks) ramSizes?.set(b.name, ramSizeText(b.usedLength));
        extra?.blockList?.(total, blocks);
      },
      memSize: extra?.memSize?.bind(extra),
      block: extra?.block?.bind(extra),
      // Left undefined without a sink, so the RAM decoder skips page bytes instead of slicing them.
      zeroPage: extra?.zeroPage?.bind(extra),
      page: extra?.page?.bind(extra),
      xbzrlePage: extra?.xbzrlePage?.bind(extra),
      compressedPage: extra?.compressedPage?.bind(extra),
      mappedRegion: extra?.mappedRegion?.bind(extra),
      eos: extra?.eos?.bind(extra),
    },
  };
}

/**
 * Decodes every section and returns the tree analyze-migration.py -f prints: keys `idstr (section id)`,
 * RAM as its block sizes, devices as their fields.
 */
export async function analyzeStream(src: ChunkedSource, vmdesc: Vmdesc, options: AnalyzeOptions = {}): Promise<Map<string, PyJson>> {
  const script = options.script ?? DEFAULT_SCRIPT;
  const sections: Sections<Map<string, PyJson>> = new Map();
  await decodeStream(src, vmdesc, {
    ...sharedHandler(sections, options),
    device(ctx, r, plan) {
      sections.set(ctx.sectionId, { label: ctx.label, value: renderStruct(readValueTree(r, plan), script) });
    },
  }, script);
  const out = new Map<string, PyJson>();
  for (const { label, value } of sections.values()) out.set(label, value);
  return out;
}

/** analyze-migration.py's printed text for a tree (indent 4, trailing newline). */
export function formatAnalysis(tree: PyJson): string {
  return pyDumps(tree) + '\n';
}

/** Where an entry's text (`\n    "label": value`) lies in the writer. */
class TextRange {
  constructor(
    readonly start: number,
    readonly end: number,
  ) {}
}

/**
 * The text `formatAnalysis(await analyzeStream(...))` gives, as ASCII bytes, decoded straight into JSON
 * without building the tree. Entries are written as their sections end, so for a stream whose section ids
 * each appear once (every stream QEMU writes) the writer holds the finished text; otherwise the entries are
 * put in the dict's order at the end.
 */
export async function analyzeStreamJson(src: ChunkedSource, vmdesc: Vmdesc, options: AnalyzeOptions = {}): Promise<Uint8Array> {
  const script = options.script ?? DEFAULT_SCRIPT;
  const sections: Sections<TextRange> = new Map();
  // Larger than most dumps: pages never written are never touched, so they cost nothing.
  const w = new PyJsonWriter(4 << 20);
  const written: { readonly id: number; readonly range: TextRange }[] = [];
  /** Writes one entry: its separator, then `\n    "label": ` and the value `body` writes. */
  const entry = (id: number, label: string, body: () => void): TextRange => {
    w.byte(written.length === 0 ? 0x7b : 0x2c);
    const start = w.length;
    w.newline(1);
    w.string(label);
    w.ascii(': ');
    body();
    const range = new TextRange(start, w.length);
    written.push({ id, range });
    return range;
  };
  const shared = sharedHandler(sections, options);
  await decodeStream(src, vmdesc, {
    ...shared,
    sectionDone(ctx) {
      // An iterative section's entry is written when its first section ends: RAM's sizes are known by then.
      const s = sections.get(ctx.sectionId);
      if (s !== undefined && !(s.value instanceof TextRange) && (ctx.header.kind === 'start' || ctx.header.kind === 'full')) {
        const value = s.value;
        entry(ctx.sectionId, ctx.label, () => w.value(value, 1));
      }
    },
    device(ctx, r, plan) {
      const range = entry(ctx.sectionId, ctx.label, () => writeDeviceJson(r, plan, w, 1, script));
      // A section id seen again keeps its place and takes the new text, as the script's dict does.
      sections.set(ctx.sectionId, { label: ctx.label, value: range });
    },
  }, script);
  const out = inDictOrder(sections, written, w) ? w : reassemble(sections, w);
  if (out.length === 0) {
    out.ascii('{}');
  } else {
    out.newline(0);
    out.byte(0x7d);
  }
  out.byte(0x0a);
  return out.bytes();
}

/**
 * Writes a device body's text with its braces at `depth`: by the fast path, or by the reference renderer
 * where the fast path leaves the body to it (a key repeats). Returns which wrote it.
 */
export function writeDeviceJson(r: ByteReader, plan: StructPlan, w: PyJsonWriter, depth: number, script: AnalyzeScript = DEFAULT_SCRIPT): 'fast' | 'reference' {
  if (writeBodyJson(r, plan, w, depth)) return 'fast';
  w.value(renderStruct(readValueTree(r, plan), script), depth);
  return 'reference';
}

/** True if the entries written are the dict's entries in its order, each with its final text. */
function inDictOrder(sections: Sections<TextRange>, written: readonly { id: number; range: TextRange }[], w: PyJsonWriter): boolean {
  if (written.length !== sections.size) return false;
  let i = 0;
  for (const [id, { value }] of sections) {
    const { id: writtenId, range } = written[i++];
    if (writtenId !== id) return false;
    if (value instanceof TextRange) {
      if (value !== range) return false;
    } else {
      // RAM sizes could in principle change after they were written: compare with what they are now.
      const now = new PyJsonWriter(256);
      now.value(value, 1);
      const text = w.buf.subarray(range.end - now.length, range.end);
      if (now.length > range.end - range.start || !text.every((c, k) => c === now.buf[k])) return false;
    }
  }
  return true;
}

/** The entries in the dict's order, from their written text or (RAM) rendered again; without the closing brace. */
function reassemble(sections: Sections<TextRange>, w: PyJsonWriter): PyJsonWriter {
  const out = new PyJsonWriter(w.length);
  for (const { label, value } of sections.values()) {
    out.byte(out.length === 0 ? 0x7b : 0x2c);
    if (value instanceof TextRange) {
      out.reserve(value.end - value.start).set(w.buf.subarray(value.start, value.end), out.length);
      out.length += value.end - value.start;
    } else {
      out.newline(1);
      out.string(label);
      out.ascii(': ');
      out.value(value, 1);
    }
  }
  return out;
}
