/**
 * Whole snapshots: save a registry to a QEMU v3 stream, and load one back in stream order.
 *
 * Saving (QEMU's qemu_savevm_state, precopy without a live phase), in the dialect of a QEMU release:
 *   1. header, then the configuration record when a machine name is given;
 *   2. a START section per iterative handler, in plan order (setup);
 *   3. PART sections, round after round, until every handler has nothing left;
 *   4. the command SWITCHOVER_START (QEMU 10.0, machine types from 10.0 on), then an END section per
 *      iterative handler (completion);
 *   5. a FULL section per described entry whose `needed` holds, in plan order, each with its footer;
 *   6. EOF, then the VMDESCRIPTION trailer describing the FULL sections (from QEMU 8.2 on, the
 *      configuration record first).
 *
 * Loading follows the stream, not the local plan: each section is matched by idstr and instance id and
 * its post-load runs at once, so a device that reads another's state in post-load depends on the
 * sender's order. The load-order guard turns such a read of a not-yet-loaded entry into LoadOrderError.
 * Either dialect loads: commands are read and passed over (SWITCHOVER_START, which QEMU 10.0 sends, asks
 * nothing of an entry here), and so is the trailer, whatever it describes.
 */
import { LoadError, LoadOrderError } from '../errors.js';
import { ByteWriter, QemuJsonWriter, type ChunkedSource } from '../stream/index.js';
import { checkIncomingVersion, loadState, saveState, type AnyVmsd, type EntryRef, type LoadContext } from '../vmstate/index.js';
import { MigCommand } from './constants.js';
import { DEFAULT_DIALECT, sendsSwitchoverStart, type QemuDialect } from './dialect.js';
import { writeCommand, writeConfiguration, writeEof, writeFooter, writeHeader, writeSectionHeader, writeVmdesc, type ConfigSubsection } from './framing.js';
import type { PlanOptions } from './plan.js';
import type { SaveEntry, SavePlan, SaveRegistry } from './registry.js';
import { LoadJournal } from './load-journal.js';
import { walkStream, type SectionBodyDecoder } from './walker.js';

/** Options for saveSnapshot. */
export interface SaveSnapshotOptions {
  /** Written in the configuration record (e.g. "pc-q35-7.2"); no configuration record when absent. */
  readonly machineName?: string;
  readonly configSubsections?: ConfigSubsection[];
  /** The QEMU release whose stream is written. Defaults to 7.2's (DEFAULT_DIALECT). */
  readonly dialect?: QemuDialect;
  /** TARGET_PAGE_SIZE, written as the trailer's page_size. Defaults to 4096. */
  readonly pageSize?: number;
  /** Section footers (QEMU's send-section-footer). Defaults to true. */
  readonly footers?: boolean;
  /** The VMDESCRIPTION trailer. Defaults to true. */
  readonly vmdesc?: boolean;
  readonly plan?: PlanOptions;
}

/** Where bytes go; a chunk may be reused after the call. */
export type SnapshotSink = (chunk: Uint8Array) => void;

const FLUSH_AT = 1 << 20;

/**
 * The phases of saving, over one ByteWriter: a snapshot runs them back to back, a live migration runs
 * setup, then iterations while the guest runs, then completion with the guest stopped.
 */
export class StreamSaver {
  readonly plan: SavePlan;
  /** The QEMU release whose stream this is. */
  readonly dialect: QemuDialect;
  private readonly footers: boolean;
  private readonly iterative: readonly SaveEntry[];
  /** The VMDESCRIPTION, begun at setup (the configuration) and finished at completion (the devices). */
  private readonly desc: QemuJsonWriter | undefined;

  constructor(
    readonly w: ByteWriter,
    registry: SaveRegistry,
    private readonly options: SaveSnapshotOptions = {},
  ) {
    this.plan = registry.plan(options.plan);
    this.dialect = options.dialect ?? DEFAULT_DIALECT;
    this.footers = options.footers ?? true;
    this.iterative = this.plan.entries.filter((e) => e.handler);
    this.desc = (options.vmdesc ?? true) ? new QemuJsonWriter() : undefined;
  }

  private section(e: SaveEntry, kind: 'start' | 'part' | 'end' | 'full', body: () => void): void {
    writeSectionHeader(this.w, { kind, offset: 0, sectionId: e.sectionId, idstr: e.idstr, instanceId: e.instanceId, version: e.version });
    body();
    if (this.footers) writeFooter(this.w, e.sectionId);
  }

  /** Header, configuration, and a START section per iterative handler. */
  setup(): void {
    writeHeader(this.w);
    const o = this.options;
    const desc = this.desc;
    desc?.startObject();
    if (o.machineName !== undefined) {
      const record = { machineName: o.machineName, subsections: o.configSubsections ?? [] };
      if (desc && this.dialect.describesConfiguration) {
        desc.startObject('configuration');
        writeConfiguration(this.w, record, desc);
        desc.endObject();
      } else {
        writeConfiguration(this.w, record);
      }
    }
    for (const e of this.iterative) this.section(e, 'start', () => e.handler?.saveSetup(this.w));
  }

  /** One PART section per iterative handler; true when every handler has nothing left in this pass. */
  iterate(): boolean {
    let done = true;
    for (const e of this.iterative) {
      this.section(e, 'part', () => {
        if (!(e.handler?.saveIterate(this.w) ?? true)) done = false;
      });
    }
    return done;
  }

  /** Every entry with a description whose `needed` holds now, in plan order: the FULL sections complete() writes. */
  *devicesToSave(): Generator<[SaveEntry, AnyVmsd]> {
    for (const e of this.plan.entries) {
      const vmsd = e.vmsd;
      if (!vmsd) continue;
      if (vmsd.needed && !(vmsd.needed as (s: unknown) => boolean)(e.state)) continue;
      yield [e, vmsd];
    }
  }

  /**
   * SWITCHOVER_START when the dialect sends it, END sections, then every needed device's FULL section in
   * plan order, EOF and the trailer.
   */
  complete(): void {
    const w = this.w;
    if (sendsSwitchoverStart(this.dialect, this.options.machineName)) writeCommand(w, { command: MigCommand.SWITCHOVER_START, payload: new Uint8Array(0) });
    for (const e of this.iterative) this.section(e, 'end', () => e.handler?.saveComplete(w));
    const desc = this.desc;
    const rules = this.dialect.vmdesc;
    desc?.int('page_size', this.options.pageSize ?? 4096);
    desc?.startArray('devices');
    for (const [e, vmsd] of this.devicesToSave()) {
      desc?.startObject();
      desc?.str('name', e.idstr);
      desc?.int('instance_id', e.instanceId);
      this.section(e, 'full', () => saveState(w, vmsd, e.state as object, desc, vmsd.version, rules));
      desc?.endObject();
    }
    writeEof(w);
    if (desc) {
      desc.endArray();
      desc.endObject();
      writeVmdesc(w, new TextEncoder().encode(desc.toString()));
    }
  }
}

/** Writes a snapshot of every entry; returns the plan it followed. */
export function saveSnapshot(registry: SaveRegistry, sink: SnapshotSink, options: SaveSnapshotOptions = {}): SavePlan {
  const w = new ByteWriter(FLUSH_AT * 2);
  const flush = () => {
    if (w.length > 0) sink(w.peek());
    w.reset();
  };
  const saver = new StreamSaver(w, registry, options);
  saver.setup();
  flush();
  while (!saver.iterate()) flush();
  flush();
  saver.complete();
  flush();
  return saver.plan;
}

/** Options for loadSnapshot. */
export interface LoadSnapshotOptions {
  /** Reading an entry's state in a hook before that entry was loaded throws LoadOrderError. Defaults to false. */
  readonly checkLoadOrder?: boolean;
  /** The machine name the configuration record must carry, if any, or the names it may carry. */
  readonly machineName?: string | readonly string[];
}

/** What a load did: the entries in the order they were loaded. */
export interface LoadResult {
  readonly loaded: readonly SaveEntry[];
}

/**
 * Loads a snapshot into the registry's entries, in stream order. All or nothing: a load that fails (a
 * typed error from the stream, a section, a hook or the missing-section check) first puts every entry
 * back as it was, its state and what its handler wrote (RAM pages), and re-runs the post-load hooks of
 * the entries it had loaded on that restored state (see load-journal.ts); then the error is thrown. Only
 * if putting back fails is the error a LoadError saying so, with the failure as its cause.
 */
export async function loadSnapshot(registry: SaveRegistry, src: ChunkedSource, options: LoadSnapshotOptions = {}): Promise<LoadResult> {
  const journal = new LoadJournal(registry);
  journal.begin();
  let result: LoadResult;
  try {
    result = await loadInOrder(registry, src, options, journal);
  } catch (e) {
    journal.rollback();
    throw e;
  }
  journal.commit();
  return result;
}

async function loadInOrder(registry: SaveRegistry, src: ChunkedSource, options: LoadSnapshotOptions, journal: LoadJournal): Promise<LoadResult> {
  const loaded: SaveEntry[] = [];
  const position = new Map<SaveEntry, number>();
  const bySection = new Map<number, SaveEntry>();
  let current: SaveEntry | null = null;

  const peer: LoadContext['peer'] = <T>(ref: EntryRef): T => {
    const target = registry.find(ref);
    if (!target) throw new LoadError(`reads ${ref.idstr}#${ref.instanceId ?? 0}, which is not registered`, current?.label ?? '');
    if (options.checkLoadOrder && current && !position.has(target)) {
      throw new LoadOrderError(current.label, target.label, position.get(current) ?? loaded.length, null);
    }
    return target.state as T;
  };

  await walkStream(src, {
    configuration(c, offset) {
      const local = options.machineName === undefined ? [] : typeof options.machineName === 'string' ? [options.machineName] : options.machineName;
      if (local.length > 0 && !local.includes(c.machineName)) {
        const names = local.map((n) => `"${n}"`).join(' or ');
        throw new LoadError(`machine type "${c.machineName}" in the stream does not match local ${names}`, 'configuration', { offset });
      }
    },
    section(ctx): SectionBodyDecoder {
      const h = ctx.header;
      let entry: SaveEntry | undefined;
      if (h.kind === 'start' || h.kind === 'full') {
        entry = registry.find({ idstr: h.idstr, instanceId: h.instanceId });
        if (!entry) throw new LoadError(`unknown section: nothing is registered as ${h.idstr} instance ${h.instanceId}`, ctx.label, { offset: h.offset });
        checkIncomingVersion(h.version, { version: entry.version, minVersion: entry.vmsd?.minVersion ?? 0 }, ctx.label);
        bySection.set(h.sectionId, entry);
      } else {
        entry = bySection.get(h.sectionId);
      }
      const e = entry as SaveEntry;
      if (e.handler) return e.handler.loadSection(h.kind === 'full' ? 'end' : h.kind, ctx.version);
      if (h.kind !== 'full' || !e.vmsd) throw new LoadError(`a ${h.kind.toUpperCase()} section for a described device`, ctx.label);
      const vmsd = e.vmsd;
      return {
        // A body's length shows only as it is loaded, and loading has effects: the rest of the stream
        // (in our streams the device sections, EOF and the trailer) is buffered first.
        need: Infinity,
        step(r) {
          current = e;
          journal.before(e);
          try {
            loadState(r, vmsd, e.state as object, ctx.version, peer);
          } catch (err) {
            // The interpreter names the description and field; put the section in front.
            if (err instanceof LoadError) throw new LoadError(err.message, ctx.label, err.data, err);
            throw err;
          } finally {
            current = null;
          }
          position.set(e, loaded.length);
          loaded.push(e);
          return true;
        },
      };
    },
    sectionDone(ctx) {
      const e = bySection.get(ctx.sectionId);
      if (e?.handler && ctx.header.kind === 'end' && !position.has(e)) {
        position.set(e, loaded.length);
        loaded.push(e);
      }
    },
  });

  const missing = registry.entries.filter((e) => !position.has(e) && !e.vmsd?.needed);
  if (missing.length > 0) {
    throw new LoadError(`missing section: ${missing[0].label} is registered locally but the stream has no section for it`, missing[0].label, {
      missing: missing.map((m) => m.label),
    });
  }
  return { loaded };
}
