// Build step: one `vmstate analyze` run on a QEMU stream from test/fixtures with VMSTATE_WRITE_CODE_CACHE=1,
// which leaves V8's compiled code for the CLI bundle in dist/src/cli/main.cjs.v8-cache (see src/cli/vmstate.cts).
// Without the fixture (or if the run fails) there is no cache, and the CLI compiles as usual.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(root, 'dist', 'src', 'cli', 'vmstate.cjs');
const stream = path.join(root, 'test', 'fixtures', 'q35-iommu-3rp-switch-bios.mig');
const cache = path.join(root, 'dist', 'src', 'cli', 'main.cjs.v8-cache');

fs.rmSync(cache, { force: true });
if (!fs.existsSync(stream)) {
  console.log(`write-code-cache: no ${path.relative(root, stream)}, so no code cache (the CLI still works)`);
} else {
  const run = spawnSync(process.execPath, [cli, 'analyze', stream], { env: { ...process.env, VMSTATE_WRITE_CODE_CACHE: '1' }, stdio: ['ignore', 'ignore', 'inherit'] });
  if (run.status !== 0) console.log('write-code-cache: the analyze run failed, so no code cache (the CLI still works)');
}
