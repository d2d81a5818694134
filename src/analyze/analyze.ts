/** The analyze-migration.py-compatible view of a stream: one entry per section id, in first-seen order. */
import type { RamSink } from '../ram/index.js';
import type { ChunkedSource } from '../stream/index.js';
import { decodeStream, RAM_IDSTR } from './decode-stream.js';
import { pyDumps, type PyJson } from './python-json.js';
import { renderStruct } from './render-state.js';
import type { Vmdesc } from './vmdesc.js';

/** Options for analyzeStream. */
export interface AnalyzeOptions {
  /** Also receives every RAM record (e.g. to write RAM blocks to files). */
  readonly ram?: RamSink;
}

/**
 * Decodes every section and returns the tree analyze-migration.py -f prints: keys `idstr (section id)`,
 * RAM as its block sizes, devices as their fields.
 */
export async function analyzeStream(src: ChunkedSource, vmdesc: Vmdesc, options: AnalyzeOptions = {}): Promise<Map<string, PyJson>> {
  const sections = new Map<number, { label: string; value: Map<string, PyJson> }>();
  let ramSizes: Map<string, PyJson> | null = null;
  const extra = options.ram;
  await decodeStream(src, vmdesc, {
    sectionStart(ctx) {
      if (ctx.header.kind !== 'start' && ctx.header.kind !== 'full') return;
      if (ctx.idstr === RAM_IDSTR && ctx.instanceId === 0) {
        ramSizes = new Map();
        sections.set(ctx.sectionId, { label: ctx.label, value: new Map([['section sizes', ramSizes]]) });
      }
    },
    ram: {
      blockList(total, blocks) {
        for (const b of blocks) ramSizes?.set(b.name, `0x${b.usedLength.toString(16).padStart(16, '0')}`);
        extra?.blockList?.(total, blocks);
      },
      zeroPage: extra?.zeroPage?.bind(extra),
      page: extra?.page?.bind(extra),
      eos: extra?.eos?.bind(extra),
    },
    device(ctx, body) {
      sections.set(ctx.sectionId, { label: ctx.label, value: renderStruct(body) });
    },
  });
  const out = new Map<string, PyJson>();
  for (const { label, value } of sections.values()) out.set(label, value);
  return out;
}

/** analyze-migration.py's printed text for a tree (indent 4, trailing newline). */
export function formatAnalysis(tree: PyJson): string {
  return pyDumps(tree) + '\n';
}
