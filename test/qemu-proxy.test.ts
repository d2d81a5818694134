// `vmstate proxy` between two real QEMU 7.2s (issue 15, first increment: the relay): the migration
// completes through it, the capture is the stream the source sent (QEMU's own analyze-migration.py reads it
// as vmstate does), and a side that dies is passed on: the other side fails and the proxy exits 1 naming
// the side. Skips without QEMU, unless VMSTATE_REQUIRE_QEMU=1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { freePort, waitFor, withScope } from './migration/harness.js';
import { runCli } from './support/cli.js';
import { cliPath } from './support/paths.js';
import { analyzeScriptOrSkip, runAnalyzeScript } from './support/peer.js';
import { qemuOrSkip, queryMigrate, queryStatus, startQemu } from './support/qemu.js';

/** A small q35 guest, paused from the start: both sides hold the same devices. */
const ARGS = ['-machine', 'pc-q35-7.2', '-accel', 'tcg', '-m', '64M', '-nodefaults', '-display', 'none', '-S', '-device', 'virtio-rng-pci'];

/** query-migrate's ram.transferred, 0 before there is one. */
function transferred(m: Record<string, unknown>): number {
  const ram = m.ram as { transferred?: number } | undefined;
  return ram?.transferred ?? 0;
}

/** Starts `vmstate proxy`; resolves once it listens, with its exit (code and stderr). */
async function startProxy(listen: string, to: string, capture: string) {
  const child = spawn(process.execPath, [cliPath, 'proxy', '--listen', listen, '--to', to, '--capture', capture], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  const listening = new Promise<void>((resolve) => child.stderr.on('data', (d: string) => ((stderr += d), /listening on/.test(stderr) && resolve())));
  const exited = new Promise<{ code: number | null; stderr: string }>((resolve) => child.once('exit', (code) => resolve({ code, stderr })));
  await Promise.race([listening, exited.then((e) => Promise.reject(new Error(`the proxy exited: ${e.stderr}`)))]);
  return { child, exited };
}

test('QEMU 7.2 -> proxy -> QEMU 7.2: completes, and the capture is the stream, as analyze-migration.py reads it', { timeout: 90_000 }, async (t) => {
  const binary = qemuOrSkip(t, 'qemu-system-x86_64');
  const script = analyzeScriptOrSkip(t);
  if (binary === null || script === null) return;
  await withScope(async (scope) => {
    const [front, back] = [await freePort(), await freePort()];
    const dest = await startQemu({ binary, args: [...ARGS, '-incoming', `tcp:127.0.0.1:${back}`] });
    scope.defer(() => dest.stop());
    const capture = path.join(scope.dir, 'capture.mig');
    const proxy = await startProxy(`tcp:127.0.0.1:${front}`, `tcp:127.0.0.1:${back}`, capture);
    scope.defer(async () => void proxy.child.kill());
    const source = await startQemu({ binary, args: ARGS });
    scope.defer(() => source.stop());
    await source.qmp.execute('migrate', { uri: `tcp:127.0.0.1:${front}` });
    const done = await waitFor('the source to complete', async () => {
      const m = await queryMigrate(source.qmp);
      return m.status === 'completed' || m.status === 'failed' ? m : undefined;
    }, 30_000);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    await waitFor('the destination to load', async () => ((await queryMigrate(dest.qmp)).status === 'completed' ? true : undefined), 30_000);
    const exit = await proxy.exited;
    assert.equal(exit.code, 0, exit.stderr);
    assert.match(exit.stderr, /relayed (\d+) bytes of the stream, 0 back/);
    assert.equal(statSync(capture).size, Number(/relayed (\d+) bytes/.exec(exit.stderr)?.[1]));
    // query-migrate's transferred counts RAM only: the stream is that and the rest.
    assert.ok(statSync(capture).size > transferred(done));
    const ours = runCli(['analyze', capture]);
    const peer = runAnalyzeScript(['-f', capture], { script });
    assert.equal(ours.status, 0, ours.stderr);
    assert.equal(ours.stdout, peer.stdout);
    assert.ok(readFileSync(capture).subarray(0, 4).equals(Buffer.from('QEVM')));
  });
});

test('a side that dies is passed on: destination killed -> the source fails; source killed -> the destination fails; the proxy names the side', { timeout: 90_000 }, async (t) => {
  const binary = qemuOrSkip(t, 'qemu-system-x86_64');
  if (binary === null) return;
  for (const victim of ['destination', 'source'] as const) {
    await withScope(async (scope) => {
      const [front, back] = [await freePort(), await freePort()];
      const dest = await startQemu({ binary, args: [...ARGS, '-incoming', `tcp:127.0.0.1:${back}`] });
      scope.defer(() => dest.stop());
      const proxy = await startProxy(`tcp:127.0.0.1:${front}`, `tcp:127.0.0.1:${back}`, path.join(scope.dir, 'capture.mig'));
      scope.defer(async () => void proxy.child.kill());
      const source = await startQemu({ binary, args: ARGS });
      scope.defer(() => source.stop());
      // Slow enough to be cut in the middle: 64 MiB of RAM at 256 KiB/s.
      await source.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 256 * 1024 });
      await source.qmp.execute('migrate', { uri: `tcp:127.0.0.1:${front}` });
      await waitFor('the stream to flow', async () => transferred(await queryMigrate(source.qmp)) > 64 * 1024 || undefined, 20_000);
      (victim === 'destination' ? dest : source).process.kill('SIGKILL');
      const exit = await proxy.exited;
      assert.equal(exit.code, 1, exit.stderr);
      const last = exit.stderr.trim().split('\n').at(-1) ?? '';
      assert.match(last, new RegExp(`^vmstate: the ${victim} (closed its connection|lost its connection)[^\\n]*\\(after \\d+ bytes of the stream\\)$`));
      if (victim === 'destination') {
        const m = await waitFor('the source to fail', async () => ((await queryMigrate(source.qmp)).status === 'failed' ? true : undefined), 20_000);
        assert.ok(m);
        assert.equal((await queryStatus(source.qmp)).status, 'prelaunch');
      } else {
        const code = await waitFor('the destination to give up', () => dest.process.exitCode ?? undefined, 20_000);
        assert.notEqual(code, 0);
      }
    });
  }
});
