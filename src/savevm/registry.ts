/**
 * The registry of save entries (QEMU's SaveStateEntry list, migration/savevm.c): what is saved, under
 * which idstr and instance id, with which priority, and which entries must come before which. Section ids
 * come from one counter at registration, as in QEMU; an omitted instance id is one more than the highest
 * already registered under the same idstr.
 */
import { UsageError } from '../errors.js';
import type { ByteWriter } from '../stream/index.js';
import { MigPriority, type EntryRef, type Vmsd } from '../vmstate/index.js';
import { resolveDependencies, selectIndices, type Dependency, type EntryInfo, type EntrySelector } from './dependencies.js';
import { planOrder, type PlanEdge, type PlanOptions, type PlanResult } from './plan.js';
import type { SectionBodyDecoder } from './walker.js';

/**
 * An iterative handler (QEMU's SaveVMHandlers with save_setup/save_live_iterate/save_live_complete):
 * RAM is one. Each call writes one section body.
 */
export interface IterativeHandler {
  /** The section version written in the START header. */
  readonly version: number;
  /** The START body. */
  saveSetup(w: ByteWriter): void;
  /** One PART body; resolves true when nothing is left to send before completion. */
  saveIterate(w: ByteWriter): boolean;
  /** The END body, written with the guest stopped. */
  saveComplete(w: ByteWriter): void;
  /** A decoder for one incoming START, PART or END body. */
  loadSection(kind: 'start' | 'part' | 'end', version: number): SectionBodyDecoder;
  /**
   * Called before a snapshot load reads its first record: the handler starts decoding afresh and, with
   * `undo`, from here on keeps what it needs to undo what loading writes. Optional.
   */
  beginLoad?(undo: boolean): void;
  /** Called when that load has ended: `committed` keeps what it wrote, false puts back what was there. Optional. */
  endLoad?(committed: boolean): void;
}

/** A registered entry. */
export interface SaveEntry<S = unknown> extends EntryInfo {
  readonly sectionId: number;
  /** Registration order, the tie-break within a priority. */
  readonly index: number;
  readonly vmsd?: Vmsd<S>;
  readonly state?: S;
  readonly handler?: IterativeHandler;
  /** The version written in section headers. */
  readonly version: number;
  /** `idstr#instance`, how plans and errors name the entry. */
  readonly label: string;
}

/** Options for register(). Exactly one of vmsd (with state) or handler. */
export interface RegisterOptions<S> {
  readonly idstr: string;
  readonly instanceId?: number;
  readonly vmsd?: Vmsd<S>;
  readonly state?: S;
  readonly handler?: IterativeHandler;
  /** Overrides the description's priority (as a whole machine's policy might). Defaults to vmsd.priority. */
  readonly priority?: number;
  readonly tags?: Readonly<Record<string, unknown>>;
}

/** A planned save order. */
export interface SavePlan {
  readonly entries: readonly SaveEntry[];
  /** Why entries[i] stands at position i. */
  explain(position: number): string[];
  /** Edges that contradicted priorities and won (with edgesWin). */
  readonly overrides: readonly { supplier: SaveEntry; consumer: SaveEntry; reason: string }[];
}

export class SaveRegistry {
  private readonly list: SaveEntry[] = [];
  /** idstr to its entries (usually one): streams and hooks name entries this way, often. */
  private readonly byIdstr = new Map<string, SaveEntry[]>();
  private readonly deps: Dependency[] = [];
  private nextSectionId: number;

  /** `firstSectionId`: where the section id counter starts. Defaults to 0. */
  constructor(firstSectionId = 0) {
    this.nextSectionId = firstSectionId;
  }

  /** All entries in registration order. */
  get entries(): readonly SaveEntry[] {
    return this.list;
  }

  /** Registers an entry and returns it; its section id is the next from the counter. */
  register<S>(o: RegisterOptions<S>): SaveEntry<S> {
    if ((o.vmsd === undefined) === (o.handler === undefined)) throw new UsageError(`${o.idstr}: register a description or an iterative handler`);
    if (o.vmsd && o.state === undefined) throw new UsageError(`${o.idstr}: a description needs its state object`);
    const bytes = new TextEncoder().encode(o.idstr).length;
    if (bytes === 0 || bytes > 255) throw new UsageError(`idstr "${o.idstr}" must be 1 to 255 bytes`);
    const instanceId = o.instanceId ?? this.newInstanceId(o.idstr);
    if (this.find({ idstr: o.idstr, instanceId })) throw new UsageError(`${o.idstr}#${instanceId} is already registered`);
    const entry: SaveEntry<S> = {
      idstr: o.idstr,
      instanceId,
      sectionId: this.nextSectionId++,
      priority: o.priority ?? o.vmsd?.priority ?? MigPriority.DEFAULT,
      vmsdName: o.vmsd?.name,
      tags: o.tags ?? {},
      index: this.list.length,
      vmsd: o.vmsd,
      state: o.state,
      handler: o.handler,
      version: o.vmsd?.version ?? o.handler?.version ?? 0,
      label: `${o.idstr}#${instanceId}`,
    };
    this.list.push(entry as SaveEntry);
    const same = this.byIdstr.get(entry.idstr);
    if (same) same.push(entry as SaveEntry);
    else this.byIdstr.set(entry.idstr, [entry as SaveEntry]);
    return entry;
  }

  /** QEMU's calculate_new_instance_id: one more than the highest under the same idstr. */
  private newInstanceId(idstr: string): number {
    let next = 0;
    for (const e of this.list) if (e.idstr === idstr && e.instanceId >= next) next = e.instanceId + 1;
    return next;
  }

  /** The entry named by idstr and instance id (0 when omitted). */
  find(ref: EntryRef): SaveEntry | undefined {
    // No string is built: the idstr's own hash finds the entries, then the instance picks one.
    const same = this.byIdstr.get(ref.idstr);
    if (!same) return undefined;
    const inst = ref.instanceId ?? 0;
    for (const e of same) if (e.instanceId === inst) return e;
    return undefined;
  }

  /** Every entry a selector picks. */
  select(sel: EntrySelector): SaveEntry[] {
    return selectIndices(this.list, sel).map((i) => this.list[i]);
  }

  /** Declares that what `supplier` picks must be saved (and loaded) before what `consumer` picks. */
  addDependency(supplier: EntrySelector, consumer: EntrySelector, reason: string): void {
    this.deps.push({ supplier, consumer, reason });
  }

  /** The edges the dependencies resolve to, over registration indices. */
  edges(): PlanEdge[] {
    return resolveDependencies(this.list, this.deps);
  }

  /** The save order: QEMU's priorities, then the dependencies, ties by registration. */
  plan(options: PlanOptions = {}): SavePlan {
    const result: PlanResult = planOrder(this.list, this.edges(), options);
    const entries = Array.from(result.order, (i) => this.list[i]);
    return {
      entries,
      explain: (position) => result.explain(entries[position].index),
      overrides: result.overrides.map((e) => ({ supplier: this.list[e.supplier], consumer: this.list[e.consumer], reason: e.reason })),
    };
  }
}


