// QEMU's own scripts/analyze-migration.py, used as the reference ("peer") our analyzer must match.
// The QEMU tree is GPL and never enters the repo: scripts/qemu-source.sh fetches Debian's QEMU source
// into a cache folder outside it (once; later calls print the cached path, or $QEMU_SRC when set).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { qemuSourceScript } from './paths.js';
import { qemuBinary, qemuRequired, type Skippable } from './qemu.js';

let cached: string | undefined;

/**
 * The path of QEMU 7.2's analyze-migration.py. Throws when python3 or the QEMU source cannot be had;
 * use {@link analyzeScriptOrSkip} in tests that may be skipped.
 */
export function analyzeScript(): string {
  if (cached !== undefined) return cached;
  const required = qemuRequired() ? ' (VMSTATE_REQUIRE_QEMU=1)' : '';
  if (qemuBinary('python3') === null) throw new Error(`python3 not found on PATH, so analyze-migration.py cannot run${required}`);
  // The first run may download the source with apt-get, hence the generous bound.
  const result = spawnSync('bash', [qemuSourceScript], { encoding: 'utf8', timeout: 300_000, maxBuffer: 1 << 20 });
  if (result.error !== undefined || result.status !== 0) {
    const why = result.error?.message ?? `exit status ${result.status}`;
    throw new Error(`${qemuSourceScript} failed (${why}), so analyze-migration.py is unavailable${required}: ${result.stderr.trim()}`);
  }
  const lines = result.stdout.trim().split('\n');
  const tree = lines[lines.length - 1] ?? '';
  const script = path.join(tree, 'scripts', 'analyze-migration.py');
  if (tree === '' || !existsSync(script)) throw new Error(`${qemuSourceScript} printed "${tree}", which has no ${script}`);
  cached = script;
  return script;
}

/**
 * analyze-migration.py's path, or null after skipping the test when it is unavailable.
 * With VMSTATE_REQUIRE_QEMU=1 an unavailable script throws instead of skipping.
 */
export function analyzeScriptOrSkip(t: Skippable): string | null {
  try {
    return analyzeScript();
  } catch (err) {
    if (qemuRequired()) throw err;
    t.skip(err instanceof Error ? err.message : String(err));
    return null;
  }
}

/** What a finished process printed. */
export interface RunResult {
  stdout: string;
  stderr: string;
  status: number | null;
}

/** Runs `python3 analyze-migration.py ARGS...`. */
export function runAnalyzeScript(args: readonly string[], options: { timeoutMs?: number } = {}): RunResult {
  const result = spawnSync('python3', [analyzeScript(), ...args], {
    encoding: 'utf8',
    maxBuffer: 512 * 1024 * 1024, // -m dumps RAM contents as JSON
    timeout: options.timeoutMs ?? 60_000,
  });
  if (result.error !== undefined) throw new Error(`python3 analyze-migration.py: ${result.error.message}`);
  return { stdout: result.stdout, stderr: result.stderr, status: result.status };
}
