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
 * Either dialect loads: commands are read and handed to the caller, if it asks (a migration's destination
 * answers PING on its return path), and otherwise passed over (SWITCHOVER_START, which QEMU 10.0 sends,
 * asks nothing of an entry here); so is the trailer, whatever it describes.
 */
import { LoadError, LoadOrderError, SaveError, StreamTruncatedError } from '../errors.js';
import { ByteReader, ByteWriter, QemuJsonWriter, type ChunkedSource } from '../stream/index.js';
import { checkIncomingVersion, loadState, measureState, saveState, type AnyVmsd, type EntryRef, type LoadContext } from '../vmstate/index.js';
import { MigCommand } from './constants.js';
import { DEFAULT_DIALECT, sendsSwitchoverStart, type QemuDialect } from './dialect.js';
import {
  decodeCommand,
  writeCommand,
  writeConfiguration,
  writeEof,
  writeFooter,
  writeHeader,
  writePing,
  writeSectionHeader,
  writeVmdesc,
  type ConfigSubsection,
  type DecodedCommand,
} from './framing.js';
import type { PlanOptions } from './plan.js';
import type { SaveEntry, SavePlan, SaveRegistry } from './registry.js';
import { LoadJournal } from './load-journal.js';
import { walkStream, type SectionBodyDecoder, type StreamVisitor } from './walker.js';

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
  /**
   * OPEN_RETURN_PATH and PING 1 right after the configuration, where QEMU's migration_thread sends them
   * with the return-path capability. Defaults to false.
   */
  readonly returnPath?: boolean;
  readonly plan?: PlanOptions;
}

/**
 * Where bytes go, in order. Each chunk is a fresh Uint8Array the sink owns: saveSnapshot never touches it
 * again, so a sink may keep it or queue it (a Node WriteStream's `write` does) without copying.
 */
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
    if (o.returnPath) {
      writeCommand(this.w, { command: MigCommand.OPEN_RETURN_PATH, payload: new Uint8Array(0) });
      writePing(this.w, 1);
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
    this.completeState();
    this.finish();
  }

  /** The first part of complete(): SWITCHOVER_START, END and FULL sections; the whole state, not the end. */
  completeState(): void {
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
      this.section(e, 'full', () => {
        try {
          saveState(w, vmsd, e.state as object, desc, vmsd.version, rules);
        } catch (err) {
          // The interpreter names the description and field (data.field keeps that path); put the entry in front.
          if (err instanceof SaveError) throw new SaveError(err.message, e.label, err.data, err);
          throw err;
        }
      });
      desc?.endObject();
    }
  }

  /** The second part of complete(): EOF and the trailer. */
  finish(): void {
    const w = this.w;
    const desc = this.desc;
    writeEof(w);
    if (desc) {
      desc.endArray();
      desc.endObject();
      writeVmdesc(w, new TextEncoder().encode(desc.toString()));
    }
  }
}

/**
 * Writes a snapshot of every entry to `sink`, in chunks the sink owns (see SnapshotSink); returns the plan
 * it followed. A state that does not fit its description is SaveError naming the entry and the field.
 */
export function saveSnapshot(registry: SaveRegistry, sink: SnapshotSink, options: SaveSnapshotOptions = {}): SavePlan {
  const w = new ByteWriter(FLUSH_AT * 2);
  const flush = () => {
    // The writer's buffer is written again after the call: the sink gets a copy of its own.
    if (w.length > 0) sink(w.peek().slice());
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
  /**
   * The stream comes over a connection, which may wait for an answer before it sends more (a return
   * path's PING): each device section loads as soon as its bytes are in, found by a dry run over a copy
   * of its state (measureState), rather than once the rest of the stream is. Defaults to false.
   */
  readonly live?: boolean;
  /**
   * Asked once the trailer is read: true when the connection stays open after the stream (a return path
   * waits for SHUT), so the load ends there rather than at the connection's end. Defaults to false.
   */
  readonly openAfterTrailer?: () => boolean;
  /**
   * Called with each command as the load passes it, every section before it loaded: the destination
   * answers PING with PONG here, and opens its return path at OPEN_RETURN_PATH.
   */
  readonly onCommand?: (command: DecodedCommand) => void;
  /**
   * Called at EOF once every registered entry is loaded: the state is whole, whatever the trailer holds.
   * With it the load is kept from EOF on: a failure after it (in the trailer) is thrown, but rolls back
   * nothing.
   */
  readonly onLoaded?: () => void;
  /**
   * False: a failed load is not undone, and nothing is kept to undo it (no copy of the states or of the
   * RAM pages it overwrites). For a caller that never uses a machine whose load failed: a migration's
   * destination. Defaults to true.
   */
  readonly atomic?: boolean;
}

/** What a load did: the entries in the order they were loaded. */
export interface LoadResult {
  readonly loaded: readonly SaveEntry[];
}

/**
 * Loads a snapshot into the registry's entries, in stream order. All or nothing (unless `atomic` is
 * false): a load that fails (a typed error from the stream, a section, a hook or the missing-section
 * check) first puts every entry
 * back as it was, its state and what its handler wrote (RAM pages), and re-runs the post-load hooks of
 * the entries it had loaded on that restored state (see load-journal.ts); then the error is thrown. Only
 * if putting back fails is the error a LoadError saying so, with the failure as its cause.
 */
export async function loadSnapshot(registry: SaveRegistry, src: ChunkedSource, options: LoadSnapshotOptions = {}): Promise<LoadResult> {
  const journal = new LoadJournal(registry, options.atomic ?? true);
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

  const checkComplete = () => {
    const missing = registry.entries.filter((e) => !position.has(e) && !e.vmsd?.needed);
    if (missing.length > 0) {
      throw new LoadError(`missing section: ${missing[0].label} is registered locally but the stream has no section for it`, missing[0].label, {
        missing: missing.map((m) => m.label),
      });
    }
  };

  const visitor: StreamVisitor = {
    command(c) {
      options.onCommand?.(decodeCommand(c));
    },
    eof() {
      checkComplete();
      // The state is whole: a caller told of it here owns it, and what follows (the trailer) rolls
      // nothing back (a migration's destination with a return path runs the guest from here).
      if (options.onLoaded) {
        journal.commit();
        options.onLoaded();
      }
    },
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
      // A body's length shows only as it is loaded, and loading has effects: the rest of the stream (in
      // our streams the device sections, EOF and the trailer) is buffered first. Live, a dry run over a
      // copy of the state finds whether the bytes in hold the whole body, asking for more until they do.
      let need = options.live ? LIVE_FIRST_NEED : Infinity;
      return {
        get need() {
          return need;
        },
        step(r) {
          if (!r.final && need !== Infinity && !bodyIsIn(r, vmsd, e.state as object, ctx.version)) {
            // One byte more than is in: the connection may send nothing more until the stream is answered.
            need = r.remaining + 1;
            return false;
          }
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
  };
  await walkStream(src, visitor, { untilTrailer: options.openAfterTrailer });
  return { loaded };
}

/** What a live load first asks for before a device body: whatever is in, then more as the dry run needs it. */
const LIVE_FIRST_NEED = 1;

/**
 * True if the bytes in `r` hold the whole body `vmsd` describes: a dry run over a copy of the state,
 * which runs no hook, either reaches the body's end or runs out. A body that is wrong in another way
 * counts as in: the load with effects that follows reports it.
 */
function bodyIsIn(r: ByteReader, vmsd: AnyVmsd, state: object, version: number): boolean {
  try {
    measureState(new ByteReader(r.bytes, r.base, r.pos, false), vmsd, structuredClone(state), version);
    return true;
  } catch (e) {
    return !(e instanceof StreamTruncatedError);
  }
}
