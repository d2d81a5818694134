/**
 * QEMU's integer codecs (migration/vmstate-types.c, QEMU 7.2) by the name a VMDESCRIPTION gives them:
 * the one table that declaring state (the u8 … i64 builders) and reading descriptions (analyze) share.
 */

/** How a codec travels and loads. */
export interface IntCodec {
  readonly size: 1 | 2 | 4 | 8;
  /** QEMU reads the value as signed. */
  readonly signed: boolean;
  /** "equal": the loaded value must match the local one; "le": 0 <= loaded <= local. */
  readonly check?: 'equal' | 'le';
}

export const INT_CODECS = {
  int8: { size: 1, signed: true },
  int16: { size: 2, signed: true },
  int32: { size: 4, signed: true },
  int64: { size: 8, signed: true },
  uint8: { size: 1, signed: false },
  uint16: { size: 2, signed: false },
  uint32: { size: 4, signed: false },
  uint64: { size: 8, signed: false },
  'uint8 equal': { size: 1, signed: false, check: 'equal' },
  'uint16 equal': { size: 2, signed: false, check: 'equal' },
  'uint32 equal': { size: 4, signed: false, check: 'equal' },
  'int32 equal': { size: 4, signed: true, check: 'equal' },
  // QEMU's uint64 "equal" codec is named "int64 equal"; it reads an unsigned value.
  'int64 equal': { size: 8, signed: false, check: 'equal' },
  'int32 le': { size: 4, signed: true, check: 'le' },
} as const satisfies Readonly<Record<string, IntCodec>>;

/** The name of an integer codec. */
export type IntCodecName = keyof typeof INT_CODECS;

const BY_NAME: ReadonlyMap<string, IntCodec> = new Map(Object.entries(INT_CODECS));

/** The integer codec called `type`, or undefined when `type` is not one. */
export function intCodec(type: string): IntCodec | undefined {
  return BY_NAME.get(type);
}
