// Running the built CLI from a test and comparing what it prints with what QEMU's analyze-migration.py prints.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cliPath } from './paths.js';
import type { RunResult } from './peer.js';

/** Runs our CLI (`node dist/src/cli/vmstate.cjs ARGS...`). */
export function runCli(args: readonly string[]): RunResult {
  if (!existsSync(cliPath)) assert.fail(`${cliPath} does not exist; build first (npm run build)`);
  const result = spawnSync(process.execPath, [cliPath, ...args], {
    encoding: 'utf8',
    maxBuffer: 512 * 1024 * 1024,
    timeout: 60_000,
  });
  if (result.error !== undefined) throw new Error(`vmstate ${args.join(' ')}: ${result.error.message}`);
  return { stdout: result.stdout, stderr: result.stderr, status: result.status };
}

/** Asserts that a run exited 0, naming `what` and showing its stderr otherwise. */
export function assertSucceeded(what: string, result: RunResult): void {
  assert.equal(result.status, 0, `${what} exited with ${result.status}: ${result.stderr.trim()}`);
}

/** Asserts equal output, reporting the first differing line instead of a megabyte-sized diff. */
export function assertSameOutput(ours: string, peer: string, what: string): void {
  if (ours === peer) return;
  const a = ours.split('\n');
  const b = peer.split('\n');
  let line = 0;
  while (line < a.length && line < b.length && a[line] === b[line]) line++;
  const context = (lines: string[]): string =>
    lines.slice(Math.max(0, line - 2), line + 3).map((l, i) => `  ${Math.max(0, line - 2) + i + 1}: ${l}`).join('\n');
  assert.fail(
    `${what}: output differs from analyze-migration.py at line ${line + 1} ` +
      `(ours ${a.length} lines, peer ${b.length} lines)\nours:\n${context(a)}\npeer:\n${context(b)}`,
  );
}
