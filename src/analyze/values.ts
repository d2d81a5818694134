/**
 * Decoded device state, as a tree of values in stream order. It holds what is needed to render it the way
 * analyze-migration.py does and to encode it again byte for byte.
 */

/** An integer field: `value` is a number up to 4 bytes, a bigint above. */
export interface IntValue {
  readonly kind: 'int';
  /** The vmdesc codec name, e.g. `uint32`, `int32 equal`. */
  readonly type: string;
  readonly size: number;
  readonly signed: boolean;
  value: number | bigint;
}

export interface BoolValue {
  readonly kind: 'bool';
  value: boolean;
}

/** Any field decoded as opaque bytes: buffers, timers, PCI config, virtio blobs, old-style `data`. */
export interface BytesValue {
  readonly kind: 'bytes';
  readonly type: string;
  readonly value: Uint8Array;
}

export interface StructFieldValue {
  readonly kind: 'struct';
  readonly value: StructValue;
}

export type FieldValue = IntValue | BoolValue | BytesValue | StructFieldValue;

/** One field element; `index` is set for elements of arrays (which render as JSON lists). */
export interface FieldEntry {
  readonly name: string;
  readonly index?: number;
  readonly value: FieldValue;
}

/** A subsection as sent: its name and version come from the stream. */
export interface SubsectionEntry {
  readonly name: string;
  readonly version: number;
  readonly value: StructValue;
}

/** The body of a device section, a struct field or a subsection. */
export interface StructValue {
  readonly fields: FieldEntry[];
  readonly subsections: SubsectionEntry[];
}
