// Locations the tests share. Tests run compiled from dist/test/, so the repo root is two levels up.
import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** The repository root (where package.json is). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/** Committed streams captured from real QEMU, with golden JSON. */
export const fixturesDir = path.join(repoRoot, 'test', 'fixtures');
/** The compiled CLI entry point. */
export const cliPath = path.join(repoRoot, 'dist', 'src', 'cli', 'vmstate.cjs');
/** The developers' shared folder beside the repo (absent for users; tests that need it say so). */
export const sharedDir = path.resolve(repoRoot, '..', 'shared');
