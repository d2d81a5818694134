#!/usr/bin/env -S GLIBC_TUNABLES=glibc.malloc.hugetlb=1 node
/**
 * The `vmstate` command: runs the CLI bundle (main.cjs, made by `npm run build`) from V8's code cache
 * when one matches. Compiling the bundle and the functions a command calls is a sizeable part of a short
 * run such as `vmstate analyze`; the cache, written at build time after one `analyze` run, holds that
 * compiled code. V8 checks it against the source and its own version and flags, and without a usable
 * cache the bundle simply compiles as usual.
 *
 * With VMSTATE_WRITE_CODE_CACHE=1 the run writes the cache as it exits (the build does this once).
 *
 * The first line sets glibc's huge-page tunable for the process (see huge-pages.ts): a `vmstate vm`
 * gets its guest RAM in transparent huge pages, as QEMU's is. It needs an `env` that takes -S (GNU
 * coreutils 8.30 and later, the BSDs); elsewhere run `node dist/src/cli/vmstate.cjs`.
 */
import fs = require('node:fs');
import path = require('node:path');
import vm = require('node:vm');

const bundle = path.join(__dirname, 'main.cjs');
const cacheFile = `${bundle}.v8-cache`;

let cachedData: Buffer | undefined;
try {
  cachedData = fs.readFileSync(cacheFile);
} catch {
  cachedData = undefined; // no cache: compile as usual
}
let text: string;
try {
  text = fs.readFileSync(bundle, 'utf8');
} catch (e) {
  process.stderr.write(`vmstate: cannot read ${bundle} (${(e as NodeJS.ErrnoException).code ?? String(e)}): run npm run build\n`);
  process.exit(1);
}
// The bundle is a CommonJS module written already wrapped as Node's loader wraps one (scripts/bundle-cli.mjs):
// its text is a function expression, compiled as read.
const script = new vm.Script(text, { filename: bundle, cachedData });
if (process.env.VMSTATE_WRITE_CODE_CACHE === '1') {
  process.once('exit', () => {
    try {
      fs.writeFileSync(cacheFile, script.createCachedData());
    } catch (e) {
      process.stderr.write(`vmstate: no code cache written (${(e as Error).message})\n`);
    }
  });
}
const mod = { exports: {} };
(script.runInThisContext() as (exports: object, req: NodeJS.Require, module: object, filename: string, dirname: string) => void)(
  mod.exports,
  require,
  mod,
  bundle,
  __dirname,
);
