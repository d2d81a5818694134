// Seeded mutations of a migration stream: byte-level (bit flips, interesting bytes, huge 32- and 64-bit
// values, cuts, inserted garbage) and, where the seed's record table makes it cheap, structural (records
// swapped, duplicated or deleted, a PACKAGED command wrapping some records, PACKAGED inside PACKAGED, bytes
// of another seed spliced in at a record boundary).
import { ByteReader, ChunkedSource } from '../../../src/index.js';
import { listRecords, parseVmdesc } from '../../../src/analyze/index.js';
import { findVmdescTrailer, MigCommand, readVmdesc, RecordType } from '../../../src/savevm/index.js';

/** A stream to mutate, with where its records lie. */
export interface SeedStream {
  readonly name: string;
  readonly bytes: Uint8Array;
  /** Every record after the header: [offset, size). */
  readonly records: readonly { readonly offset: number; readonly size: number; readonly type: string }[];
  /** Offsets of length and count fields worth a huge value: section ids, idstr lengths, versions, the trailer's length. */
  readonly hot: readonly number[];
}

/** Lists a stream's records (it must decode: its trailer describes its device sections). */
export async function seedStream(name: string, bytes: Uint8Array): Promise<SeedStream> {
  const p = findVmdescTrailer(bytes, 0, bytes.length);
  const vmdesc = p < 0 ? null : parseVmdesc(readVmdesc(new ByteReader(bytes, 0, p)), p + 5);
  const rows = await listRecords(ChunkedSource.fromBytes(bytes), vmdesc);
  const records = rows.map((r) => ({ offset: r.offset, size: r.size, type: r.type }));
  const hot: number[] = [];
  for (const r of rows) {
    if (r.type === 'start' || r.type === 'full') {
      const idLen = bytes[r.offset + 5];
      hot.push(r.offset + 1, r.offset + 5, r.offset + 6 + idLen, r.offset + 10 + idLen, r.offset + 14 + idLen);
    } else if (r.type === 'part' || r.type === 'end') {
      hot.push(r.offset + 1, r.offset + 5);
    } else if (r.type === 'command') {
      hot.push(r.offset + 1, r.offset + 3, r.offset + 5);
    } else if (r.type === 'configuration' || r.type === 'vmdesc') {
      hot.push(r.offset + 1);
    }
  }
  return { name, bytes, records, hot };
}

/** A mutated stream and what was done to it (for a report that lets a failure be replayed). */
export interface Mutant {
  readonly bytes: Uint8Array;
  readonly ops: readonly string[];
}

const INTERESTING_8 = [0x00, 0x01, 0x7f, 0x80, 0xff, RecordType.SUBSECTION, RecordType.COMMAND, RecordType.SECTION_FOOTER];
const HUGE_32 = [0xffffffff, 0x7fffffff, 0x80000000, 0x00010000, 0x10000000, 0xfffffffe];
const HUGE_64: readonly bigint[] = [0xffffffffffffffffn, 0x7fffffffffffffffn, 0x8000000000000000n, 0x0020000000000000n, 0x0000000100000000n];

type Random = () => number;

function int(random: Random, n: number): number {
  return Math.floor(random() * n);
}

function pick<T>(random: Random, list: readonly T[]): T {
  return list[int(random, list.length)];
}

function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A PACKAGED command (MIG_CMD_PACKAGED) announcing `length` bytes. */
export function packagedCommand(length: number): Uint8Array {
  const out = new Uint8Array(9);
  const v = new DataView(out.buffer);
  out[0] = RecordType.COMMAND;
  v.setUint16(1, MigCommand.PACKAGED);
  v.setUint16(3, 4);
  v.setUint32(5, length >>> 0);
  return out;
}

/** One structural mutation of the seed's own bytes; null when the seed has too few records. */
function structural(seed: SeedStream, random: Random, others: readonly SeedStream[], ops: string[]): Uint8Array | null {
  const recs = seed.records;
  if (recs.length < 2) return null;
  const b = seed.bytes;
  const rec = (i: number) => b.subarray(recs[i].offset, recs[i].offset + recs[i].size);
  const i = int(random, recs.length);
  const ri = recs[i];
  const kind = int(random, 7);
  switch (kind) {
    case 6: {
      // A number in the VMDESCRIPTION trailer (a size, an array length, a version) made huge or odd; the
      // JSON stays valid and the trailer's length right, so analyze decodes by it.
      const trailer = recs.find((r) => r.type === 'vmdesc');
      if (!trailer) return null;
      const json = new TextDecoder().decode(b.subarray(trailer.offset + 5, trailer.offset + trailer.size));
      const numbers = [...json.matchAll(/(?<=: )\d+/g)];
      if (numbers.length === 0) return null;
      const m = pick(random, numbers);
      const value = pick(random, ['4294967295', '2147483648', '65536', '1e308', '-1', '0', '9007199254740993', '100000000']);
      const text = new TextEncoder().encode(json.slice(0, m.index) + value + json.slice((m.index ?? 0) + m[0].length));
      const head = new Uint8Array(5);
      head[0] = RecordType.VMDESCRIPTION;
      new DataView(head.buffer).setUint32(1, text.length);
      ops.push(`vmdesc: ${m[0]} at ${m.index} = ${value}`);
      return concat(b.subarray(0, trailer.offset), head, text, b.subarray(trailer.offset + trailer.size));
    }
    case 0: {
      // Swap two records.
      let j = int(random, recs.length);
      if (j === i) j = (i + 1) % recs.length;
      const [a, c] = i < j ? [i, j] : [j, i];
      ops.push(`swap records ${a} and ${c}`);
      return concat(b.subarray(0, recs[a].offset), rec(c), b.subarray(recs[a].offset + recs[a].size, recs[c].offset), rec(a), b.subarray(recs[c].offset + recs[c].size));
    }
    case 1: {
      // Duplicate a record, right after itself or somewhere else.
      const at = random() < 0.5 ? ri.offset + ri.size : recs[int(random, recs.length)].offset;
      ops.push(`duplicate record ${i} at ${at}`);
      return concat(b.subarray(0, at), rec(i), b.subarray(at));
    }
    case 2:
      ops.push(`delete record ${i}`);
      return concat(b.subarray(0, ri.offset), b.subarray(ri.offset + ri.size));
    case 3:
    case 4: {
      // Wrap records i..j in PACKAGED, the length right, off by a little, or huge; maybe a second inside.
      const j = Math.min(recs.length - 1, i + int(random, 4));
      const end = recs[j].offset + recs[j].size;
      let length = end - ri.offset;
      const skew = int(random, 4);
      if (skew === 1) length += int(random, 9) - 4;
      if (skew === 2) length = pick(random, HUGE_32);
      let inner = b.subarray(ri.offset, end);
      if (kind === 4 && inner.length > 0) {
        const cut = recs[Math.min(j, i + int(random, j - i + 1))];
        const innerLen = cut.offset + cut.size - ri.offset;
        inner = concat(packagedCommand(innerLen), inner);
        if (skew !== 2) length += 9;
        ops.push(`PACKAGED in PACKAGED over records ${i}..${j} (inner ${innerLen} bytes)`);
      }
      ops.push(`PACKAGED of ${length} bytes over records ${i}..${j}`);
      return concat(b.subarray(0, ri.offset), packagedCommand(length), inner, b.subarray(end));
    }
    default: {
      // Splice a record of another seed (or of this one) in at a record boundary.
      const other = others.length > 0 ? pick(random, others) : seed;
      if (other.records.length === 0) return null;
      const r = pick(random, other.records);
      ops.push(`splice a record of ${other.name} at ${ri.offset}`);
      return concat(b.subarray(0, ri.offset), other.bytes.subarray(r.offset, r.offset + r.size), b.subarray(ri.offset));
    }
  }
}

/** One byte-level mutation, in place where it can be; returns the (maybe new) bytes. */
function byteLevel(bytes: Uint8Array, seed: SeedStream, random: Random, ops: string[], structuralDone: boolean): Uint8Array {
  const n = bytes.length;
  if (n === 0) return bytes;
  // Offsets that still mean something: the seed's hot fields, unless a structural change moved them.
  const at = (width: number): number => {
    const hot = !structuralDone && seed.hot.length > 0 && random() < 0.5;
    const p = hot ? pick(random, seed.hot) : int(random, n);
    return Math.max(0, Math.min(p, n - width));
  };
  switch (int(random, 8)) {
    case 0:
    case 1: {
      const flips = 1 + int(random, 8);
      for (let k = 0; k < flips; k++) bytes[int(random, n)] ^= 1 << int(random, 8);
      ops.push(`flip ${flips} bits`);
      return bytes;
    }
    case 2: {
      const p = at(1);
      bytes[p] = pick(random, INTERESTING_8);
      ops.push(`byte at ${p} = 0x${bytes[p].toString(16)}`);
      return bytes;
    }
    case 3: {
      if (n < 4) return bytes;
      const p = at(4);
      const v = pick(random, HUGE_32);
      new DataView(bytes.buffer, bytes.byteOffset).setUint32(p, v);
      ops.push(`be32 at ${p} = 0x${v.toString(16)}`);
      return bytes;
    }
    case 4: {
      if (n < 8) return bytes;
      const p = at(8);
      const v = pick(random, HUGE_64);
      new DataView(bytes.buffer, bytes.byteOffset).setBigUint64(p, v);
      ops.push(`be64 at ${p} = 0x${v.toString(16)}`);
      return bytes;
    }
    case 5: {
      const cut = int(random, n);
      ops.push(`cut at ${cut}`);
      return bytes.subarray(0, cut);
    }
    case 6: {
      const p = int(random, n);
      const junk = new Uint8Array(1 + int(random, 16)).map(() => int(random, 256));
      ops.push(`insert ${junk.length} random bytes at ${p}`);
      return concat(bytes.subarray(0, p), junk, bytes.subarray(p));
    }
    default: {
      const p = int(random, n);
      const len = Math.min(n - p, 1 + int(random, 64));
      ops.push(`delete ${len} bytes at ${p}`);
      return concat(bytes.subarray(0, p), bytes.subarray(p + len));
    }
  }
}

/** 1 to 3 mutations of `seed`: a structural one first half the time, then byte-level ones. */
export function mutateStream(seed: SeedStream, random: Random, others: readonly SeedStream[] = []): Mutant {
  const ops: string[] = [];
  let bytes: Uint8Array | null = null;
  let structuralDone = false;
  if (random() < 0.5) {
    bytes = structural(seed, random, others, ops);
    structuralDone = bytes !== null;
  }
  // The seed is never written to: byte-level mutations work on a copy.
  bytes = bytes ?? seed.bytes.slice();
  const more = structuralDone ? int(random, 2) : 1 + int(random, 3);
  for (let k = 0; k < more; k++) bytes = byteLevel(bytes, seed, random, ops, structuralDone);
  return { bytes, ops };
}
