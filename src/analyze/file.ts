/** Streams in files: a bounded-memory source over a file, and the VMDESCRIPTION trailer found from its end. */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { IoError, StreamFormatError } from '../errors.js';
import { findVmdescTrailer, MAX_VMDESC_BYTES } from '../savevm/index.js';
import { ChunkedSource } from '../stream/index.js';
import { parseVmdesc, type Vmdesc } from './vmdesc.js';

/** An open stream file. */
export interface StreamFile {
  readonly path: string;
  readonly size: number;
  /** A fresh source reading the file from its first byte. */
  source(): ChunkedSource;
  close(): void;
}

/** Files up to this size are read whole by the trailer search, and decoding then reads them from memory. */
const WHOLE_READ_MAX = 4 << 20;

/**
 * Files the trailer search has read whole: their sources serve these bytes instead of reading the file a
 * second time.
 */
const wholeFiles = new WeakMap<StreamFile, Uint8Array>();

/** Opens a stream file for reading. */
export function openStreamFile(path: string): StreamFile {
  let fd: number;
  let size: number;
  try {
    fd = openSync(path, 'r');
    size = fstatSync(fd).size;
  } catch (e) {
    throw new IoError(`${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`, { path }, e);
  }
  const file: StreamFile = {
    path,
    size,
    source() {
      const whole = wholeFiles.get(file);
      if (whole !== undefined) return ChunkedSource.fromBytes(whole);
      let position = 0;
      return new ChunkedSource(
        {
          // Synchronous reads: a CLI reading one file gains nothing from the thread pool, and it is faster.
          async readInto(target) {
            const n = readSync(fd, target, 0, target.length, position);
            position += n;
            return n;
          },
        },
        // A small file is read whole into a buffer of its size. A big one in 256 KiB reads: a chunk that
        // fits in the CPU cache is still there when the parser reads it after the copy from the page cache.
        { sizeHint: size, chunkSize: 256 << 10 },
      );
    },
    close() {
      wholeFiles.delete(file);
      closeSync(fd);
    },
  };
  return file;
}

/** The trailer's parsed description and where it starts. */
export interface FoundVmdesc {
  readonly vmdesc: Vmdesc;
  /** Offset of the 0x06 byte. */
  readonly offset: number;
}

/** Finds and parses the VMDESCRIPTION trailer at the end of a stream file; null if there is none. */
export function readVmdescFromFile(file: StreamFile): FoundVmdesc | null {
  const fd = openSync(file.path, 'r');
  try {
    // Look in growing tails: the trailer is usually well under 1 MiB. A file up to WHOLE_READ_MAX is read
    // whole at once, so that decoding it reads nothing again (device-heavy streams are about 1 MiB).
    for (let tailSize = file.size <= WHOLE_READ_MAX ? file.size : 1 << 20; ; tailSize *= 8) {
      const len = Math.min(file.size, tailSize);
      const tail = new Uint8Array(len);
      const got = readSync(fd, tail, 0, len, file.size - len);
      if (got === file.size) wholeFiles.set(file, tail);
      const p = findVmdescTrailer(tail, file.size - len, file.size);
      if (p >= 0) {
        const start = p - (file.size - len) + 5;
        return { vmdesc: parseVmdesc(tail.subarray(start), p + 5), offset: p };
      }
      if (len === file.size || tailSize > MAX_VMDESC_BYTES) return null;
    }
  } finally {
    closeSync(fd);
  }
}

/** Like readVmdescFromFile, but a stream without a trailer is an error naming the file. */
export function requireVmdesc(file: StreamFile): FoundVmdesc {
  const found = readVmdescFromFile(file);
  if (!found) {
    throw new StreamFormatError(
      'no VMDESCRIPTION trailer at the end of the stream (saved with suppress-vmdesc, or cut short): device sections cannot be decoded',
      { offset: file.size, path: file.path },
    );
  }
  return found;
}
