/** Where the vmstate package is installed, found from this file whether it runs bundled or not. */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IoError } from '../errors.js';

let root: string | undefined;

/** The folder holding vmstate's package.json. */
export function packageRoot(): string {
  if (root) return root;
  // __filename exists where this runs bundled as CommonJS (dist/src/cli/main.cjs); as an ES module it does not.
  let dir = dirname(typeof __filename === 'string' ? __filename : fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'vmstate') return (root = dir);
    const up = dirname(dir);
    if (up === dir) throw new IoError('cannot find the vmstate package folder');
    dir = up;
  }
}

/** The CLI's entry point (the bundle `npm run build` makes), for commands that start more vmstate processes. */
export function cliEntry(): string {
  return join(packageRoot(), 'dist', 'src', 'cli', 'vmstate.cjs');
}
