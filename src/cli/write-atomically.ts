/** Files the CLI writes: through a temporary file renamed at the end, so a failure leaves nothing half-written. */
import fs from 'node:fs';
import path from 'node:path';
import { IoError } from '../errors.js';

/** Runs `write` with a sink into a temporary file beside `target`, then renames it; returns the bytes written. */
export async function writeAtomically(target: string, write: (sink: (chunk: Uint8Array) => void) => unknown): Promise<number> {
  const tmp = path.join(path.dirname(path.resolve(target)), `.${path.basename(target)}.${process.pid}.tmp`);
  let fd: number;
  try {
    fd = fs.openSync(tmp, 'w');
  } catch (e) {
    throw new IoError(`${target}: cannot write (${(e as Error).message})`, { path: target }, e);
  }
  let bytes = 0;
  try {
    await write((chunk) => {
      for (let done = 0; done < chunk.length; ) done += fs.writeSync(fd, chunk, done, chunk.length - done);
      bytes += chunk.length;
    });
    fs.closeSync(fd);
    fs.renameSync(tmp, target);
    return bytes;
  } catch (e) {
    try {
      fs.closeSync(fd);
    } catch {
      // already closed
    }
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}
