/**
 * The iterative sections QEMU has besides RAM, framed record by record by their own length rules; their
 * contents are passed on as bytes, not decoded. Each body is a run of records ended by an end record:
 *
 *   block (migration/block.c, to 9.0; version 1)
 *     record := be64 (sector << 9 | flags)  [str8 device  [byte[1 MiB] unless ZERO_BLOCK]  if DEVICE_BLOCK]
 *     flags  := DEVICE_BLOCK 0x01 | EOS 0x02 (the end) | PROGRESS 0x04 | ZERO_BLOCK 0x08
 *   dirty-bitmap (migration/block-dirty-bitmap.c; version 1)
 *     record := flags  [str8 node if DEVICE_NAME 0x08]  [str8 bitmap if BITMAP_NAME 0x04]
 *               ( be32 granularity  u8 bitmap flags        if START 0x10
 *               | nothing                                  if COMPLETE 0x20
 *               | be64 sector  be32 sectors  [be64 n  byte[n] unless ZEROES 0x02]   if BITS 0x40 )
 *     flags  := a byte; 0x80 in it means one more byte, and 0x80 in that a be16 more (QEMU keeps the
 *               last byte read); EOS 0x01 makes the record the body's last
 *   spapr/htab (hw/ppc/spapr.c; version 1)
 *     body   := be32 -1 (no hash table) | be32 shift > 0 (the first section) |
 *               be32 0  ( be32 index  be16 valid  be16 invalid  byte[16 * valid] )*  be32 0 be16 0 be16 0
 *   s390-storage_attributes (hw/s390x/s390-stattrib.c; version 0)
 *     record := be64 (address | flags)  [be64 n  byte[n] if MORE 0x02];  DONE 0x08;  EOS 0x01 (the end)
 */
import { StreamFormatError } from '../errors.js';
import type { SectionBodyDecoder } from '../savevm/index.js';
import type { ByteReader } from '../stream/index.js';

/** The largest payload of one record QEMU sends in these sections (a block of block migration). */
const MAX_PAYLOAD = 1 << 20;

/** Reads one record; true when it ended the body. */
type RecordReader = (r: ByteReader) => boolean;

const bad = (r: ByteReader, at: number, why: string): never => {
  throw new StreamFormatError(why, { offset: r.base + at, path: '' });
};

/** A payload length just read, checked against what QEMU sends. */
function bounded(r: ByteReader, n: number, at: number): number {
  return n > MAX_PAYLOAD ? bad(r, at, `a record's payload of ${n} bytes is longer than ${MAX_PAYLOAD}`) : n;
}

const BLOCK_SIZE = 1 << 20;

function blockRecord(r: ByteReader): boolean {
  const at = r.pos;
  const flags = r.getBe64Number() % 512;
  if (flags & 0x01) {
    r.getCountedString();
    if (!(flags & 0x08)) r.skip(BLOCK_SIZE);
    return false;
  }
  if (flags & 0x04) return false;
  if (flags & 0x02) return true;
  return bad(r, at, `block migration flags 0x${flags.toString(16)} are not known`);
}

function dirtyBitmapRecord(r: ByteReader): boolean {
  let flags = r.getByte();
  if (flags & 0x80) {
    flags = r.getByte();
    if (flags & 0x80) flags = r.getBe16() & 0xff;
  }
  if (flags & 0x08) r.getCountedString();
  if (flags & 0x04) r.getCountedString();
  if (flags & 0x10) {
    r.skip(4 + 1);
  } else if (flags & 0x20) {
    // COMPLETE: nothing more.
  } else if (flags & 0x40) {
    r.skip(8 + 4);
    if (!(flags & 0x02)) {
      const at = r.pos;
      r.skip(bounded(r, r.getBe64Number(), at));
    }
  }
  return (flags & 0x01) !== 0;
}

/** The hash table's body: a header, then for a later section chunks up to an empty one. */
function htabBody(): RecordReader {
  let chunks = false;
  return (r) => {
    if (!chunks) {
      const header = r.getBe32();
      // -1: no hash table; above 0: the first section, the table's size only.
      if (header !== 0) return true;
      chunks = true;
      return false;
    }
    const index = r.getBe32();
    const valid = r.getBe16();
    const invalid = r.getBe16();
    if (index === 0 && valid === 0 && invalid === 0) return true;
    r.skip(16 * valid);
    return false;
  };
}

function storageAttributesRecord(r: ByteReader): boolean {
  const at = r.pos;
  const flags = r.getBe64Number() % 4096;
  switch (flags) {
    case 0x02:
      r.skip(bounded(r, r.getBe64Number(), at));
      return false;
    case 0x08:
      return false;
    case 0x01:
      return true;
    default:
      return bad(r, at, `storage attribute flags 0x${flags.toString(16)} are not known`);
  }
}

/** Each section's format: its version and the most one record takes. */
const FORMATS: Readonly<Record<string, { readonly version: number; readonly maxRecord: number; reader(): RecordReader }>> = {
  block: { version: 1, maxRecord: 8 + 256 + BLOCK_SIZE, reader: () => blockRecord },
  'dirty-bitmap': { version: 1, maxRecord: 4 + 2 * 256 + 8 + 4 + 8 + MAX_PAYLOAD, reader: () => dirtyBitmapRecord },
  'spapr/htab': { version: 1, maxRecord: 8 + 16 * 0xffff, reader: htabBody },
  's390-storage_attributes': { version: 0, maxRecord: 16 + MAX_PAYLOAD, reader: () => storageAttributesRecord },
};

/** True if `idstr` is an iterative section framed here. */
export function isFramedIterative(idstr: string): boolean {
  return Object.hasOwn(FORMATS, idstr);
}

/**
 * A decoder for one body of the section `idstr` at `version`; `bytes` gets the body's bytes as they are
 * read (a rewrite copies them). Null when vmstate does not frame that section or that version.
 */
export function framedIterative(idstr: string, version: number, bytes?: (chunk: Uint8Array) => void): SectionBodyDecoder | null {
  const format = Object.hasOwn(FORMATS, idstr) ? FORMATS[idstr] : undefined;
  if (format === undefined || format.version !== version) return null;
  const read = format.reader();
  return {
    need: format.maxRecord,
    step(r) {
      for (;;) {
        // Whole records only: near the end of a window that is not the stream's last, ask for more first.
        if (!r.final && r.remaining < format.maxRecord) return false;
        const start = r.pos;
        const end = read(r);
        bytes?.(r.bytes.subarray(start, r.pos));
        if (end) return true;
      }
    },
  };
}
