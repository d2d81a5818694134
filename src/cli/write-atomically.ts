/** Files the CLI writes: through a temporary file renamed at the end, so a failure leaves nothing half-written. */
import { closeSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { IoError } from '../errors.js';

/** Runs `write` with a sink into a temporary file beside `target`, then renames it; returns the bytes written. */
export async function writeAtomically(target: string, write: (sink: (chunk: Uint8Array) => void) => unknown): Promise<number> {
  const tmp = join(dirname(resolve(target)), `.${basename(target)}.${process.pid}.tmp`);
  let fd: number;
  try {
    fd = openSync(tmp, 'w');
  } catch (e) {
    throw new IoError(`${target}: cannot write (${(e as Error).message})`, { path: target }, e);
  }
  let bytes = 0;
  try {
    await write((chunk) => {
      for (let done = 0; done < chunk.length; ) done += writeSync(fd, chunk, done, chunk.length - done);
      bytes += chunk.length;
    });
    closeSync(fd);
    renameSync(tmp, target);
    return bytes;
  } catch (e) {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
    rmSync(tmp, { force: true });
    throw e;
  }
}
