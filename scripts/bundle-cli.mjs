// Build step: bundles the CLI (dist/src/cli/main.js and everything it imports) into one CommonJS file,
// dist/src/cli/main.cjs, which src/cli/vmstate.cts runs. The bundle is written already wrapped in the
// function Node's CommonJS loader would wrap it in, so the launcher compiles the file's text as it is
// read: wrapping it at run time would copy the 200 KB source twice more, garbage a short run pays for.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(root, 'dist', 'src', 'cli');

await build({
  entryPoints: [path.join(cli, 'main.js')],
  outfile: path.join(cli, 'main.cjs'),
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  minifyWhitespace: true,
  sourcemap: true,
  banner: { js: '(function (exports, require, module, __filename, __dirname) {' },
  footer: { js: '})' },
  logLevel: 'warning',
  // package-root.ts reads import.meta.url only where it exists (as an ES module), not in this bundle.
  logOverride: { 'empty-import-meta': 'silent' },
});
