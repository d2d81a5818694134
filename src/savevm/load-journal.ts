/**
 * What a snapshot load must be able to undo, so that a rejected load leaves every entry as it was
 * (QEMU's destination simply does not run a half-loaded VM; an in-process machine must stay usable).
 *
 *   1. begin():     every iterative handler starts its own undo log (RAM keeps each page it overwrites,
 *                   once, as it was before).
 *   2. before(e):   before a described entry's first FULL section, its state is copied deeply (values,
 *                   arrays, byte buffers, nested objects, which keys exist), and saved to bytes: its
 *                   pre-image.
 *   3. commit():    the load succeeded: the copies are dropped.
 *   4. rollback():  the load failed: every copied state is put back in place (the same objects and
 *                   buffers, which devices hold references to), the handlers put back what they
 *                   overwrote, then each pre-image is loaded again in the order the entries were loaded,
 *                   so post-load hooks rebuild what they derive (an IOMMU's address spaces) from the
 *                   restored state rather than from the rejected one.
 *
 * Memory: one copy of each loaded entry's state, and at most one copy of each RAM page the load
 * overwrote (pages that were all zero cost nothing): bounded by the guest RAM size.
 */
import { LoadError } from '../errors.js';
import { ByteReader, ByteWriter } from '../stream/index.js';
import { loadState, saveState, type AnyVmsd, type LoadContext } from '../vmstate/index.js';
import type { SaveEntry, SaveRegistry } from './registry.js';

/** A deep copy of one value, with the object it was taken from, so that it can be put back in place. */
class Copy {
  constructor(
    readonly ref: object,
    /** 'bytes': a typed array's contents; 'array' / 'object': the members' copies; 'opaque': the reference only. */
    readonly kind: 'bytes' | 'array' | 'object' | 'opaque',
    readonly data: unknown,
  ) {}
}

function copyValue(v: unknown, seen: Map<object, Copy>): unknown {
  if (typeof v !== 'object' || v === null) return v;
  const known = seen.get(v);
  if (known) return known;
  let c: Copy;
  if (ArrayBuffer.isView(v)) {
    c = new Copy(v, 'bytes', new Uint8Array(v.buffer, v.byteOffset, v.byteLength).slice());
    seen.set(v, c);
  } else if (Array.isArray(v)) {
    const items: unknown[] = [];
    c = new Copy(v, 'array', items);
    seen.set(v, c);
    for (const item of v) items.push(copyValue(item, seen));
  } else if (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null) {
    const members: [string, unknown][] = [];
    c = new Copy(v, 'object', members);
    seen.set(v, c);
    for (const key of Object.keys(v)) members.push([key, copyValue((v as Record<string, unknown>)[key], seen)]);
  } else {
    // A class instance (a Map, a device object): put back by reference; loading never writes inside one.
    c = new Copy(v, 'opaque', null);
    seen.set(v, c);
  }
  return c;
}

function restoreValue(v: unknown, done: Set<Copy>): unknown {
  if (!(v instanceof Copy)) return v;
  if (done.has(v)) return v.ref;
  done.add(v);
  switch (v.kind) {
    case 'bytes': {
      const view = v.ref as ArrayBufferView;
      new Uint8Array(view.buffer, view.byteOffset, view.byteLength).set(v.data as Uint8Array);
      break;
    }
    case 'array': {
      const items = v.data as unknown[];
      const target = v.ref as unknown[];
      target.length = items.length;
      for (let i = 0; i < items.length; i++) target[i] = restoreValue(items[i], done);
      break;
    }
    case 'object': {
      const members = v.data as [string, unknown][];
      const target = v.ref as Record<string, unknown>;
      const keep = new Set(members.map(([k]) => k));
      for (const key of Object.keys(target)) if (!keep.has(key)) delete target[key];
      for (const [key, value] of members) target[key] = restoreValue(value, done);
      break;
    }
    default:
  }
  return v.ref;
}

/** One described entry as it was before the load touched it. */
interface Before {
  readonly entry: SaveEntry;
  readonly copy: unknown;
  /** Its state saved at its own version, or null if it could not be saved (then only the copy is put back). */
  readonly preImage: Uint8Array | null;
}

/** The undo log of one loadSnapshot call. */
export class LoadJournal {
  private readonly befores: Before[] = [];
  private readonly seen = new Set<SaveEntry>();
  /** Committed or rolled back: the journal is spent, and later calls do nothing. */
  private settled = false;

  /** With `undo` false nothing is recorded, and rollback() has nothing to put back. */
  constructor(
    private readonly registry: SaveRegistry,
    private readonly undo = true,
  ) {}

  /** Starts the handlers' loads, with undo logs if this journal records. */
  begin(): void {
    for (const e of this.registry.entries) e.handler?.beginLoad?.(this.undo);
  }

  /** Records `e` as it is, unless this load has already touched it. */
  before(e: SaveEntry): void {
    if (!this.undo || this.seen.has(e) || !e.vmsd || e.state === undefined) return;
    this.seen.add(e);
    let preImage: Uint8Array | null = null;
    try {
      const w = new ByteWriter(256);
      saveState(w, e.vmsd as AnyVmsd, e.state as object);
      preImage = w.peek().slice();
    } catch {
      preImage = null;
    }
    this.befores.push({ entry: e, copy: copyValue(e.state, new Map()), preImage });
  }

  /** Keeps what the load wrote; after it, rollback() puts nothing back. */
  commit(): void {
    if (this.settled) return;
    this.settled = true;
    for (const e of this.registry.entries) e.handler?.endLoad?.(true);
    this.befores.length = 0;
  }

  /** Puts back everything the load changed; throws LoadError only if that fails. */
  rollback(): void {
    if (this.settled) return;
    this.settled = true;
    try {
      for (const b of this.befores) restoreValue(b.copy, new Set());
      for (const e of this.registry.entries) e.handler?.endLoad?.(false);
      const peer: LoadContext['peer'] = <T>(ref: Parameters<LoadContext['peer']>[0]): T => {
        const target = this.registry.find(ref);
        if (!target) throw new LoadError(`reads ${ref.idstr}#${ref.instanceId ?? 0}, which is not registered`, '');
        return target.state as T;
      };
      for (const b of this.befores) {
        if (b.preImage === null) continue;
        const vmsd = b.entry.vmsd as AnyVmsd;
        loadState(new ByteReader(b.preImage), vmsd, b.entry.state as object, vmsd.version, peer);
      }
      // Hooks may have written derived fields; the copies are the truth.
      for (const b of this.befores) restoreValue(b.copy, new Set());
    } catch (e) {
      throw new LoadError(`could not put back the state from before the rejected load: ${(e as Error).message}`, '', {}, e);
    } finally {
      this.befores.length = 0;
    }
  }
}
