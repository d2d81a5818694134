// The `vmstate` command runs the CLI bundle from V8's code cache when it matches, and without it (none,
// or one that does not match) it works the same.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import vm from 'node:vm';
import assert from 'node:assert/strict';
import { cliPath, fixturesDir } from '../support/paths.js';

const stream = path.join(fixturesDir, 'q35-minimal-paused.mig');
const golden = fs.readFileSync(path.join(fixturesDir, 'q35-minimal-paused.analyze.json'), 'utf8');

/** A copy of the launcher and the bundle in a folder of their own, with `cache` as the code cache. */
function install(cache: Buffer | null): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmstate-cache-'));
  for (const f of ['vmstate.cjs', 'main.cjs']) fs.copyFileSync(path.join(path.dirname(cliPath), f), path.join(dir, f));
  if (cache) fs.writeFileSync(path.join(dir, 'main.cjs.v8-cache'), cache);
  return dir;
}

function analyze(dir: string, env: NodeJS.ProcessEnv = process.env) {
  return spawnSync(process.execPath, [path.join(dir, 'vmstate.cjs'), 'analyze', stream], { encoding: 'utf8', env, maxBuffer: 64 << 20 });
}

test('the build leaves a code cache beside the bundle, and V8 takes it for that bundle', () => {
  const bundle = path.join(path.dirname(cliPath), 'main.cjs');
  const cachedData = fs.readFileSync(`${bundle}.v8-cache`);
  assert.ok(cachedData.length > 10_000);
  // Compiled as the launcher compiles it, the file's text as it is (nothing runs): a cache written for other
  // code is rejected.
  const source = fs.readFileSync(bundle, 'utf8');
  assert.equal(new vm.Script(source, { filename: bundle, cachedData }).cachedDataRejected, false);
  assert.equal(new vm.Script(`${source};`, { filename: bundle, cachedData }).cachedDataRejected, true);
});

test('without a code cache, or with one that does not match, the CLI gives the same output', () => {
  for (const cache of [null, Buffer.from('not a V8 code cache'), fs.readFileSync(path.join(path.dirname(cliPath), 'main.cjs.v8-cache')).subarray(0, 100)]) {
    const dir = install(cache);
    try {
      const run = analyze(dir);
      assert.equal(run.status, 0, run.stderr);
      assert.equal(run.stdout, golden);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
});

test('VMSTATE_WRITE_CODE_CACHE=1 writes a cache that the next run reads, with the same output', () => {
  const dir = install(null);
  try {
    assert.equal(analyze(dir, { ...process.env, VMSTATE_WRITE_CODE_CACHE: '1' }).status, 0);
    const cache = path.join(dir, 'main.cjs.v8-cache');
    assert.ok(fs.statSync(cache).size > 10_000);
    const run = analyze(dir);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout, golden);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
