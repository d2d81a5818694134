#!/usr/bin/env node
/**
 * The vmstate command line: the composition root. Each command parses its arguments, runs, prints to
 * stdout, and on failure prints one line to stderr and exits non-zero (2 for bad usage, 1 otherwise).
 */
import { runCommand } from './commands.js';
import { VmstateError, UsageError } from '../errors.js';

async function main(argv: string[]): Promise<number> {
  try {
    return await runCommand(argv, { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s) });
  } catch (e) {
    if (e instanceof VmstateError) {
      process.stderr.write(`vmstate: ${e.message}\n`);
      return e instanceof UsageError ? 2 : 1;
    }
    const err = e as NodeJS.ErrnoException;
    process.stderr.write(`vmstate: internal error: ${err?.message ?? String(e)}\n`);
    if (process.env.VMSTATE_DEBUG) process.stderr.write(`${err?.stack ?? ''}\n`);
    return 1;
  }
}

// EPIPE when stdout is closed early (`vmstate analyze f | head`) is not a failure worth a trace.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
});

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
  // A one-shot command is done once its output is written: leave without waiting for the heap's teardown.
  // Long-running commands (vm, demo) only get here when they are finished too.
  if (process.stdout.writableLength === 0) process.exit(code);
  else process.stdout.once('drain', () => process.exit(code));
});
