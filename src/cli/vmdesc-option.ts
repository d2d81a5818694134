/** `--vmdesc FILE`, which the stream commands share: the description to decode device sections with. */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { openStreamFile, parseVmdesc, readVmdescFromFile, requireVmdesc, type StreamFile, type Vmdesc } from '../analyze/index.js';
import { IoError } from '../errors.js';
import { FILE_MAGIC } from '../savevm/index.js';
import type { ParsedArgs } from './args.js';

/**
 * --vmdesc FILE if given (a stream whose trailer to use, or JSON as `analyze --desc` prints it), else the
 * stream's own trailer; null if neither exists and !required.
 */
export function chooseVmdesc(stream: StreamFile, args: ParsedArgs, required: boolean): Vmdesc | null {
  const from = args.options.get('vmdesc')?.at(-1);
  if (from === undefined) return required ? requireVmdesc(stream).vmdesc : (readVmdescFromFile(stream)?.vmdesc ?? null);
  if (startsWithMagic(from)) {
    const other = openStreamFile(from);
    try {
      return requireVmdesc(other).vmdesc;
    } finally {
      other.close();
    }
  }
  return parseVmdesc(readOrFail(from), 0);
}

/** True if the file begins with QEVM: a stream, not JSON. Only those 4 bytes are read. */
function startsWithMagic(path: string): boolean {
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

function readOrFail(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw ioError(path, e);
  }
}

function ioError(path: string, e: unknown): IoError {
  return new IoError(`${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`, { path }, e);
}
