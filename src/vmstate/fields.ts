/**
 * Field declarations: readonly data built with small functions, a discriminated union on `kind`. Each
 * declaration carries its value type, so a device's state type is inferred from its description and the
 * two cannot drift apart. The codec names are QEMU's (migration/vmstate-types.c, QEMU 7.2): they are
 * what the VMDESCRIPTION says and what analyzers key on.
 */
import { UsageError } from '../errors.js';
import type { ByteReader, ByteWriter } from '../stream/index.js';
import { INT_CODECS, type IntCodec, type IntCodecName } from './int-codecs.js';

/** How many elements a field has: a constant, or another (integer) field's value times `multiply`. */
export type Count = number | { readonly field: string; readonly multiply?: number };

/** Options every field takes. */
export interface FieldOptions {
  /** Sent only when the section's version is at least this (QEMU's field version_id). Defaults to 0. */
  readonly version?: number;
  /** Sent only when this returns true (QEMU's field_exists); replaces the version gate. */
  readonly exists?: (state: never, version: number) => boolean;
}

interface FieldCommon<N extends string, V> extends FieldOptions {
  readonly name: N;
  /** The codec name as written in the VMDESCRIPTION. */
  readonly type: string;
  /** Element count; absent for a single element. */
  readonly count?: Count;
  /** Array of pointers: a null element travels as the one-byte marker 0x30. */
  readonly nullable?: boolean;
  /** Phantom: the field's value type. */
  readonly _value?: [V];
}

/** An integer codec; `check` is QEMU's "equal" (must match the local value) or "le" (at most the local value). */
export interface IntField<N extends string = string, V = number | bigint> extends FieldCommon<N, V> {
  readonly kind: 'int';
  readonly size: 1 | 2 | 4 | 8;
  readonly signed: boolean;
  readonly check?: 'equal' | 'le';
}

export interface BoolField<N extends string = string, V = boolean> extends FieldCommon<N, V> {
  readonly kind: 'bool';
}

/** A QEMUTimer: the absolute expiry in ns as be64, -1 when not armed. */
export interface TimerField<N extends string = string, V = bigint> extends FieldCommon<N, V> {
  readonly kind: 'timer';
}

/** Raw bytes, of a fixed size or sized by another field (VMS_VBUFFER); `type` may name a device codec. */
export interface BufferField<N extends string = string, V = Uint8Array> extends FieldCommon<N, V> {
  readonly kind: 'buffer';
  readonly size: Count;
}

/** Bytes sent as zeros and skipped on load; not part of the state. */
export interface UnusedField extends FieldCommon<'unused', never> {
  readonly kind: 'unused';
  readonly size: number;
}

/** A nested description; its body travels inline with no header. */
export interface StructField<N extends string = string, V = unknown> extends FieldCommon<N, V> {
  readonly kind: 'struct';
  readonly vmsd: AnyVmsd;
}

/** A device-specific codec of fixed size (QEMU's VMStateInfo): `pci irq state`, `msix state`, ... */
export interface CustomField<N extends string = string, V = unknown> extends FieldCommon<N, V> {
  readonly kind: 'custom';
  readonly size: number;
  read(r: ByteReader): V;
  write(w: ByteWriter, value: V): void;
  /** Whether `write` can write this value; saving refuses any other with SaveError. Defaults to any value. */
  readonly accepts?: (value: unknown) => boolean;
  /** What `accepts` takes, as SaveError says it, e.g. "an array of 4 int32". */
  readonly expected?: string;
}

/** What custom() takes: a codec of fixed size, and optionally which values it can write. */
export interface CustomCodec<V> {
  readonly type: string;
  readonly size: number;
  read(r: ByteReader): V;
  write(w: ByteWriter, v: V): void;
  readonly accepts?: (value: unknown) => boolean;
  readonly expected?: string;
}

export type Field =
  | IntField<string, unknown>
  | BoolField<string, unknown>
  | TimerField<string, unknown>
  | BufferField<string, unknown>
  | UnusedField
  | StructField<string, unknown>
  | CustomField<string, unknown>;

/** The value type a field declaration holds in the state. */
export type ValueOf<F> = F extends { readonly _value?: [infer V] } ? V : never;

/** The state object a list of fields describes (unused fields take no place in it). */
export type StateOfFields<Fs extends readonly Field[]> = {
  -readonly [F in Fs[number] as F extends UnusedField ? never : F['name']]: ValueOf<F>;
};

/** A description whose state type is erased (for containers of descriptions). */
export interface AnyVmsd {
  readonly name: string;
  readonly version: number;
  readonly minVersion: number;
  readonly priority: number;
  readonly fields: readonly Field[];
  readonly subsections: readonly AnyVmsd[];
  readonly needed?: (state: never) => boolean;
  readonly preSave?: (state: never) => void;
  readonly postSave?: (state: never) => void;
  readonly preLoad?: (state: never, ctx: LoadContext) => void;
  readonly postLoad?: (state: never, ctx: LoadContext) => void;
}

/** Names another save entry: its idstr and instance id (0 when omitted). */
export interface EntryRef {
  readonly idstr: string;
  readonly instanceId?: number;
}

/** What load hooks get: the version being loaded and guarded access to other entries' state. */
export interface LoadContext {
  /** The version the section or subsection arrived with. */
  readonly version: number;
  /**
   * Another entry's state. With the load-order guard on, reading an entry that has not been loaded yet
   * throws LoadOrderError.
   */
  peer<T = unknown>(ref: EntryRef): T;
}

// ---- builders ----

type Opts = FieldOptions;

function int<N extends string, V extends number | bigint>(name: N, type: IntCodecName, o?: Opts): IntField<N, V> {
  const { size, signed, check } = INT_CODECS[type] as IntCodec;
  return { kind: 'int', name, type, size, signed, ...(check ? { check } : {}), ...o };
}

export const u8 = <N extends string>(name: N, o?: Opts) => int<N, number>(name, 'uint8', o);
export const u16 = <N extends string>(name: N, o?: Opts) => int<N, number>(name, 'uint16', o);
export const u32 = <N extends string>(name: N, o?: Opts) => int<N, number>(name, 'uint32', o);
export const u64 = <N extends string>(name: N, o?: Opts) => int<N, bigint>(name, 'uint64', o);
export const i8 = <N extends string>(name: N, o?: Opts) => int<N, number>(name, 'int8', o);
export const i16 = <N extends string>(name: N, o?: Opts) => int<N, number>(name, 'int16', o);
export const i32 = <N extends string>(name: N, o?: Opts) => int<N, number>(name, 'int32', o);
export const i64 = <N extends string>(name: N, o?: Opts) => int<N, bigint>(name, 'int64', o);
/** VMSTATE_*_EQUAL: the loaded value must equal the local one. */
export const u8Equal = <N extends string>(name: N, o?: Opts) => int<N, number>(name, 'uint8 equal', o);
export const u16Equal = <N extends string>(name: N, o?: Opts) => int<N, number>(name, 'uint16 equal', o);
export const u32Equal = <N extends string>(name: N, o?: Opts) => int<N, number>(name, 'uint32 equal', o);
export const u64Equal = <N extends string>(name: N, o?: Opts) => int<N, bigint>(name, 'int64 equal', o);
export const i32Equal = <N extends string>(name: N, o?: Opts) => int<N, number>(name, 'int32 equal', o);
/** VMSTATE_INT32_POSITIVE_LE: 0 <= loaded <= local, and the local value becomes the loaded one. */
export const i32Le = <N extends string>(name: N, o?: Opts) => int<N, number>(name, 'int32 le', o);

export const bool = <N extends string>(name: N, o?: Opts): BoolField<N> => ({ kind: 'bool', name, type: 'bool', ...o });
export const timer = <N extends string>(name: N, o?: Opts): TimerField<N> => ({ kind: 'timer', name, type: 'timer', ...o });

/** A fixed-size byte buffer; `type` defaults to "buffer" (e.g. "pci config" for PCI config space). */
export const buffer = <N extends string>(name: N, size: number, o?: Opts & { readonly type?: string }): BufferField<N> => ({
  kind: 'buffer',
  name,
  size,
  ...o,
  type: o?.type ?? 'buffer',
});

/** A byte buffer sized by another field (VMSTATE_VBUFFER). */
export const vbuffer = <N extends string>(name: N, sizeField: string, o?: Opts & { readonly multiply?: number }): BufferField<N> => ({
  kind: 'buffer',
  name,
  type: 'buffer',
  size: { field: sizeField, ...(o?.multiply ? { multiply: o.multiply } : {}) },
  ...(o?.version !== undefined ? { version: o.version } : {}),
  ...(o?.exists ? { exists: o.exists } : {}),
});

/** VMSTATE_UNUSED: `size` zero bytes kept for compatibility. */
export const unused = (size: number, o?: Opts): UnusedField => ({ kind: 'unused', name: 'unused', type: 'unused_buffer', size, ...o });

/** A nested description (VMSTATE_STRUCT). */
export const struct = <N extends string, S>(name: N, vmsd: Vmsd<S>, o?: Opts): StructField<N, S> => ({
  kind: 'struct',
  name,
  type: 'struct',
  vmsd: vmsd as AnyVmsd,
  ...o,
});

/** A device-specific codec of fixed size; saving checks a value with `codec.accepts` when it has one. */
export const custom = <N extends string, V>(name: N, codec: CustomCodec<V>, o?: Opts): CustomField<N, V> => ({
  kind: 'custom',
  name,
  type: codec.type,
  size: codec.size,
  read: codec.read,
  write: codec.write,
  ...(codec.accepts ? { accepts: codec.accepts } : {}),
  ...(codec.expected !== undefined ? { expected: codec.expected } : {}),
  ...o,
});

type Elem<F> = F extends { readonly _value?: [infer V] } ? V : never;
type WithValue<F, V> = Omit<F, '_value'> & { readonly _value?: [V] };

/** A fixed array of `count` elements (VMSTATE_*_ARRAY). */
export function array<F extends Exclude<Field, UnusedField>>(field: F, count: number): WithValue<F, Elem<F>[]> {
  return { ...field, count } as WithValue<F, Elem<F>[]>;
}

/** An array whose length is another field's value, times `multiply` (VMSTATE_VARRAY_*). */
export function varray<F extends Exclude<Field, UnusedField>>(field: F, countField: string, multiply?: number): WithValue<F, Elem<F>[]> {
  return { ...field, count: { field: countField, ...(multiply ? { multiply } : {}) } } as WithValue<F, Elem<F>[]>;
}

/** An array of pointers whose elements may be null (VMSTATE_ARRAY_OF_POINTER). */
export function pointerArray<F extends Exclude<Field, UnusedField>>(field: F, count: number): WithValue<F, (Elem<F> | null)[]> {
  return { ...field, count, nullable: true } as WithValue<F, (Elem<F> | null)[]>;
}

/** VMSTATE_UINT8_ARRAY and friends, spelled out. */
export const u8Array = <N extends string>(name: N, count: number, o?: Opts) => array(u8(name, o), count);
export const u16Array = <N extends string>(name: N, count: number, o?: Opts) => array(u16(name, o), count);
export const u32Array = <N extends string>(name: N, count: number, o?: Opts) => array(u32(name, o), count);
export const u64Array = <N extends string>(name: N, count: number, o?: Opts) => array(u64(name, o), count);

// ---- descriptions ----

/** MigrationPriority values and order of QEMU 7.2 (include/migration/vmstate.h); higher is saved first. */
export const MigPriority = {
  DEFAULT: 0,
  IOMMU: 1,
  PCI_BUS: 2,
  VIRTIO_MEM: 3,
  GICV3_ITS: 4,
  GICV3: 5,
} as const;

/** Why each priority stands where it does, as QEMU's header explains it. */
export const PRIORITY_REASONS: Readonly<Record<number, string>> = {
  [MigPriority.DEFAULT]: 'default priority',
  [MigPriority.IOMMU]: 'IOMMU: must load before the PCI devices whose DMA it translates',
  [MigPriority.PCI_BUS]: 'PCI bus: bridge bus numbers must load before the IOMMU rebuilds its address spaces',
  [MigPriority.VIRTIO_MEM]: 'virtio-mem: must load before the IOMMU',
  [MigPriority.GICV3_ITS]: 'GICv3 ITS: must load before the PCI devices that send it MSIs',
  [MigPriority.GICV3]: 'GICv3: must load before its ITS',
};

/** The name of a priority value, e.g. "PCI_BUS". */
export function priorityName(p: number): string {
  return (Object.entries(MigPriority).find(([, v]) => v === p)?.[0] ?? String(p));
}

/** A device state description with state type S. */
export interface Vmsd<S> extends AnyVmsd {
  // Method syntax: a Vmsd<S> is usable where a less specific one is expected (hooks are bivariant).
  needed?(state: S): boolean;
  preSave?(state: S): void;
  postSave?(state: S): void;
  preLoad?(state: S, ctx: LoadContext): void;
  postLoad?(state: S, ctx: LoadContext): void;
  /** Phantom: the state type. */
  readonly _state?: [S];
}

/** The state type of a description. */
export type StateOf<V> = V extends { readonly _state?: [infer S] } ? S : never;

type UnionToIntersection<U> = (U extends unknown ? (x: U) => void : never) extends (x: infer I) => void ? I : never;
type SubStates<Subs extends readonly AnyVmsd[]> = [Subs[number]] extends [never] ? unknown : UnionToIntersection<StateOf<Subs[number]>>;

/**
 * What hooks and `needed` see: the description's own state, plus whatever else the object holds (a
 * subsection shares its parent's state object, so its `needed` may look at the parent's fields).
 */
export type HookState<S> = S & { readonly [key: string]: unknown };

/** The input of defineVmsd. */
export interface VmsdSpec<Fs extends readonly Field[], Subs extends readonly AnyVmsd[], S> {
  readonly name: string;
  /** The version saved (version_id). */
  readonly version: number;
  /** The oldest version loaded (minimum_version_id). Defaults to `version`. */
  readonly minVersion?: number;
  /** MigrationPriority of a top-level description. Defaults to DEFAULT. */
  readonly priority?: number;
  readonly fields: Fs;
  /** Subsections share the parent's state object; each is sent when its `needed` says so. */
  readonly subsections?: Subs;
  readonly needed?: (state: HookState<S>) => boolean;
  readonly preSave?: (state: HookState<S>) => void;
  readonly postSave?: (state: HookState<S>) => void;
  readonly preLoad?: (state: HookState<S>, ctx: LoadContext) => void;
  readonly postLoad?: (state: HookState<S>, ctx: LoadContext) => void;
}

/**
 * Declares a device state description (QEMU's VMStateDescription). The state type is the fields' values
 * plus those of the subsections.
 */
export function defineVmsd<const Fs extends readonly Field[], const Subs extends readonly AnyVmsd[] = []>(
  spec: VmsdSpec<Fs, Subs, StateOfFields<Fs> & SubStates<Subs>>,
): Vmsd<StateOfFields<Fs> & SubStates<Subs>> {
  if (spec.name.length === 0 || new TextEncoder().encode(spec.name).length > 255) {
    throw new UsageError(`description name "${spec.name}" must be 1 to 255 bytes`, { name: spec.name });
  }
  return Object.freeze({
    ...spec,
    minVersion: spec.minVersion ?? spec.version,
    priority: spec.priority ?? MigPriority.DEFAULT,
    subsections: spec.subsections ?? [],
  }) as Vmsd<StateOfFields<Fs> & SubStates<Subs>>;
}
