/**
 * The vmstate command line: the composition root. Each command parses its arguments, runs, prints to
 * stdout, and on failure prints one line to stderr and exits non-zero (2 for bad usage, 1 otherwise).
 */
import { runCommand, type Output } from './commands.js';
import { VmstateError, UsageError } from '../errors.js';
import { writeAll } from './write-fd.js';

/**
 * Commands that run on while they print (a VM process, a migration's progress, the demo). They write
 * through process.stdout/stderr, whose writes to a pipe queue instead of waiting for the reader, so a
 * slow reader never stalls their event loop (QMP, the migration). The one-shot commands print their
 * output in one go and write it straight to the file descriptors (write-fd.ts).
 */
const LONG_RUNNING = new Set(['vm', 'migrate', 'demo']);

/** stdout closed early (`vmstate analyze f | head`) is not a failure worth a trace. */
function exitOnEpipe(e: unknown): void {
  if ((e as NodeJS.ErrnoException).code === 'EPIPE') process.exit(0);
  throw e;
}

const fdOutput: Output = {
  stdout(s) {
    try {
      writeAll(1, s);
    } catch (e) {
      exitOnEpipe(e);
    }
  },
  stderr: (s) => writeAll(2, s),
};

function streamOutput(): Output {
  process.stdout.on('error', exitOnEpipe);
  return { stdout: (s) => void process.stdout.write(s), stderr: (s) => void process.stderr.write(s) };
}

/** Resolves once what was written to `s` has gone out: queued writes are lost if the process exits first. */
function flushed(s: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => s.write('', () => resolve()));
}

async function main(argv: string[], out: Output): Promise<number> {
  try {
    return await runCommand(argv, out);
  } catch (e) {
    if (e instanceof VmstateError) {
      out.stderr(`vmstate: ${e.message}\n`);
      return e instanceof UsageError ? 2 : 1;
    }
    const err = e as NodeJS.ErrnoException;
    out.stderr(`vmstate: internal error: ${err?.message ?? String(e)}\n`);
    if (process.env.VMSTATE_DEBUG) out.stderr(`${err?.stack ?? ''}\n`);
    return 1;
  }
}

// A finished command leaves at once, without waiting for the heap's teardown: one-shot commands have
// written everything by now, long-running ones once their streams are flushed.
const argv = process.argv.slice(2);
const streams = LONG_RUNNING.has(argv[0]);
main(argv, streams ? streamOutput() : fdOutput).then(async (code) => {
  if (streams) await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  process.exit(code);
});
