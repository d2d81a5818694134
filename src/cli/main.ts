/**
 * The vmstate command line: the composition root. Each command parses its arguments, runs, prints to
 * stdout, and on failure prints one line to stderr and exits non-zero (2 for bad usage, 1 otherwise).
 */
import { runCommand } from './commands.js';
import { VmstateError, UsageError } from '../errors.js';
import { writeAll } from './write-fd.js';

/** stdout closed early (`vmstate analyze f | head`) is not a failure worth a trace. */
function stdout(s: string | Uint8Array): void {
  try {
    writeAll(1, s);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EPIPE') process.exit(0);
    throw e;
  }
}

const stderr = (s: string) => writeAll(2, s);

async function main(argv: string[]): Promise<number> {
  try {
    return await runCommand(argv, { stdout, stderr });
  } catch (e) {
    if (e instanceof VmstateError) {
      stderr(`vmstate: ${e.message}\n`);
      return e instanceof UsageError ? 2 : 1;
    }
    const err = e as NodeJS.ErrnoException;
    stderr(`vmstate: internal error: ${err?.message ?? String(e)}\n`);
    if (process.env.VMSTATE_DEBUG) stderr(`${err?.stack ?? ''}\n`);
    return 1;
  }
}

// Output is written synchronously, so a finished command can leave at once, without waiting for the
// heap's teardown. Long-running commands (vm, demo) only get here when they are finished too.
main(process.argv.slice(2)).then((code) => process.exit(code));
