/** Reading the files a command is given: one clear error naming the file, and telling a stream from JSON. */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { IoError } from '../errors.js';
import { FILE_MAGIC } from '../savevm/index.js';

/** The whole file; an IoError naming it when it cannot be read. */
export function readOrFail(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw ioError(path, e);
  }
}

/** True if the file begins with QEVM: a stream, not JSON. Only those 4 bytes are read. */
export function startsWithMagic(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw ioError(path, e);
  }
  try {
    const head = new Uint8Array(4);
    return readSync(fd, head, 0, 4, null) === 4 && new DataView(head.buffer).getUint32(0) === FILE_MAGIC;
  } finally {
    closeSync(fd);
  }
}

function ioError(path: string, e: unknown): IoError {
  return new IoError(`${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`, { path }, e);
}
