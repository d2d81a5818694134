/**
 * Streams in files: a bounded-memory source over a file, and the VMDESCRIPTION trailer found from its end.
 * A pipe (or anything else that cannot seek) is read once, front to back; its trailer comes last, so its
 * description must be given another way (--vmdesc).
 */
import { closeSync, fstatSync, openSync, read, readSync } from 'node:fs';
import { IoError, StreamFormatError } from '../errors.js';
import { findVmdescTrailer, MAX_VMDESC_BYTES } from '../savevm/index.js';
import { ChunkedSource } from '../stream/index.js';
import { parseVmdesc, type Vmdesc } from './vmdesc.js';

/** An open stream file. */
export interface StreamFile {
  readonly path: string;
  /** The file's size; 0 for a file that cannot seek. */
  readonly size: number;
  /** A regular file: its trailer can be read first, and it can be read more than once. */
  readonly seekable: boolean;
  /** A fresh source reading the file from its first byte (only once for a file that cannot seek). */
  source(): ChunkedSource;
  /** Reads bytes at an absolute position (mapped-ram pages); the count, less at the end. Only where seekable. */
  readAt(target: Uint8Array, position: number): number;
  close(): void;
}

/** Files up to this size are read whole by the trailer search, and decoding then reads them from memory. */
const WHOLE_READ_MAX = 4 << 20;

/**
 * Files the trailer search has read whole: their sources serve these bytes instead of reading the file a
 * second time.
 */
const wholeFiles = new WeakMap<StreamFile, Uint8Array>();

/** Opens a stream file for reading; `-` is standard input. */
export function openStreamFile(path: string): StreamFile {
  let fd: number;
  let size: number;
  let seekable: boolean;
  try {
    fd = path === '-' ? 0 : openSync(path, 'r');
    const stat = fstatSync(fd);
    seekable = stat.isFile();
    size = seekable ? stat.size : 0;
  } catch (e) {
    throw new IoError(`${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`, { path }, e);
  }
  let sources = 0;
  const file: StreamFile = {
    path,
    size,
    seekable,
    source() {
      const whole = wholeFiles.get(file);
      if (whole !== undefined) return ChunkedSource.fromBytes(whole);
      if (!seekable) {
        if (sources++ > 0) throw new IoError(`${path} cannot seek (a pipe?), so it can be read only once`, { path });
        // From the thread pool: a read from a pipe waits for the writer.
        return new ChunkedSource({ readInto: (target) => readOn(fd, target, path) }, { chunkSize: 256 << 10 });
      }
      let position = 0;
      return new ChunkedSource(
        {
          // Synchronous reads: a CLI reading one file gains nothing from the thread pool, and it is faster.
          async readInto(target) {
            const n = readSync(fd, target, 0, target.length, position);
            position += n;
            return n;
          },
          seek(to) {
            position = to;
          },
        },
        // A small file is read whole into a buffer of its size. A big one in 256 KiB reads: a chunk that
        // fits in the CPU cache is still there when the parser reads it after the copy from the page cache.
        { sizeHint: size, chunkSize: 256 << 10 },
      );
    },
    readAt(target, position) {
      if (!seekable) throw new IoError(`${path} cannot seek (a pipe?), so it cannot be read at byte offset ${position}`, { path });
      return readSync(fd, target, 0, target.length, position);
    },
    close() {
      wholeFiles.delete(file);
      if (fd !== 0) closeSync(fd);
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

/** Reads on from where a file that cannot seek stands. */
function readOn(fd: number, target: Uint8Array, path: string): Promise<number> {
  return new Promise((resolve, reject) =>
    read(fd, target, 0, target.length, null, (e, n) => (e ? reject(new IoError(`${path}: ${e.message}`, { path }, e)) : resolve(n))),
  );
}

/** Finds and parses the VMDESCRIPTION trailer at the end of a stream file; null if there is none (or the file cannot seek). */
export function readVmdescFromFile(file: StreamFile): FoundVmdesc | null {
  if (!file.seekable) return null;
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
  if (!file.seekable) {
    throw new StreamFormatError(`the stream cannot seek (a pipe?), so its trailer, which comes last, cannot be read first: give the description with --vmdesc`, {
      offset: 0,
      path: file.path,
    });
  }
  const found = readVmdescFromFile(file);
  if (!found) {
    throw new StreamFormatError(
      'no VMDESCRIPTION trailer at the end of the stream (a postcopy stream, saved with suppress-vmdesc, or cut short): device sections cannot be decoded without --vmdesc',
      { offset: file.size, path: file.path },
    );
  }
  return found;
}
