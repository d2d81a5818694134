// Locations the tests share. Tests run compiled from dist/test/, so the repo root is two levels up.
import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** The repository root (where package.json is). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/** Committed streams captured from real QEMU, with golden JSON. */
export const fixturesDir = path.join(repoRoot, 'test', 'fixtures');
/** The compiled CLI entry point. */
export const cliPath = path.join(repoRoot, 'dist', 'src', 'cli', 'vmstate.cjs');
/** Prints the path of a QEMU source tree, fetching Debian's into a cache outside the repo the first time. */
export const qemuSourceScript = path.join(repoRoot, 'scripts', 'qemu-source.sh');
/** Prints where QEMU 10.0 is, fetching Debian's bookworm-backports packages into a cache outside the repo the first time. */
export const qemu10Script = path.join(repoRoot, 'scripts', 'qemu-10.sh');
