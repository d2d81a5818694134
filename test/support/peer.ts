// QEMU's own scripts/analyze-migration.py, used as the reference ("peer") our analyzer must match.
// The QEMU tree is GPL and never enters the repo: scripts/qemu-source.sh fetches Debian's QEMU (7.2)
// source into a cache folder outside it (once; later calls print the cached path, or $QEMU_SRC when
// set), and scripts/qemu-10.sh fetches QEMU 10.0's beside its binaries.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { qemu10Script, qemuSourceScript } from './paths.js';
import { orSkip, qemu10, qemuBinary, qemuRequired, runFetchScript, type Skippable } from './qemu.js';

let cached: string | undefined;

/** Throws unless python3, which runs analyze-migration.py, is on PATH. */
function requirePython(): void {
  const required = qemuRequired() ? ' (VMSTATE_REQUIRE_QEMU=1)' : '';
  if (qemuBinary('python3') === null) throw new Error(`python3 not found on PATH, so analyze-migration.py cannot run${required}`);
}

/** `tree`'s scripts/analyze-migration.py; throws naming `from` when it is not there. */
function scriptIn(tree: string, from: string): string {
  const script = path.join(tree, 'scripts', 'analyze-migration.py');
  if (tree === '' || !existsSync(script)) throw new Error(`${from} printed "${tree}", which has no ${script}`);
  return script;
}

/**
 * The path of QEMU 7.2's analyze-migration.py. Throws when python3 or the QEMU source cannot be had;
 * use {@link analyzeScriptOrSkip} in tests that may be skipped.
 */
export function analyzeScript(): string {
  if (cached !== undefined) return cached;
  requirePython();
  const lines = runFetchScript(qemuSourceScript, 'analyze-migration.py').trim().split('\n');
  cached = scriptIn(lines[lines.length - 1] ?? '', qemuSourceScript);
  return cached;
}

/**
 * analyze-migration.py's path, or null after skipping the test when it is unavailable.
 * With VMSTATE_REQUIRE_QEMU=1 an unavailable script throws instead of skipping.
 */
export function analyzeScriptOrSkip(t: Skippable): string | null {
  return orSkip(t, analyzeScript);
}

/**
 * The path of QEMU 10.0's analyze-migration.py, from the tree scripts/qemu-10.sh fetches with the
 * binaries. Throws when python3 or QEMU 10.0 cannot be had; pass it to {@link runAnalyzeScript}.
 */
export function analyzeScript10(): string {
  requirePython();
  return scriptIn(qemu10().source, qemu10Script);
}

/** {@link analyzeScript10}, or null after skipping the test (fails under VMSTATE_REQUIRE_QEMU=1). */
export function analyzeScript10OrSkip(t: Skippable): string | null {
  return orSkip(t, analyzeScript10);
}

/** What a finished process printed. */
export interface RunResult {
  stdout: string;
  stderr: string;
  status: number | null;
}

/** Runs `python3 analyze-migration.py ARGS...`: QEMU 7.2's, or `options.script` (e.g. {@link analyzeScript10}). */
export function runAnalyzeScript(args: readonly string[], options: { timeoutMs?: number; script?: string } = {}): RunResult {
  const result = spawnSync('python3', [options.script ?? analyzeScript(), ...args], {
    encoding: 'utf8',
    maxBuffer: 512 * 1024 * 1024, // -m dumps RAM contents as JSON
    timeout: options.timeoutMs ?? 60_000,
  });
  if (result.error !== undefined) throw new Error(`python3 analyze-migration.py: ${result.error.message}`);
  return { stdout: result.stdout, stderr: result.stderr, status: result.status };
}
