/**
 * Output with write(2) straight on stdout's and stderr's file descriptors, for the one-shot commands.
 * process.stdout and process.stderr are streams whose first use loads Node's stream modules, start-up
 * that a command printing its output in one go does not need. A full pipe makes writeAll wait, which
 * stalls the event loop: long-running commands write through the streams instead (main.ts).
 */
import { writeSync } from 'node:fs';

const pause = new Int32Array(new SharedArrayBuffer(4));

/** Writes all of `data` to `fd`, waiting out EAGAIN (a non-blocking pipe that is full). */
export function writeAll(fd: number, data: string | Uint8Array): void {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  let done = 0;
  while (done < bytes.length) {
    try {
      done += writeSync(fd, bytes, done, bytes.length - done);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      Atomics.wait(pause, 0, 0, 1);
    }
  }
}
