// `vmstate proxy` between two real QEMUs (issue 15): the migration completes through it, the capture is
// the stream the source sent (QEMU's own analyze-migration.py reads it as vmstate does), a side that dies
// is passed on (the other side fails and the proxy exits 1 naming the side), and what the proxy changes on
// the way (order, instance numbers, fields) is what the destination QEMU loads. Skips without QEMU,
// unless VMSTATE_REQUIRE_QEMU=1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { freePort, waitFor, withScope } from './migration/harness.js';
import { runCli } from './support/cli.js';
import { migrationEnd, startProxy } from './support/proxy.js';
import { analyzeScriptOrSkip, runAnalyzeScript } from './support/peer.js';
import { allPciDevices, qemu10OrSkip, qemuOrSkip, queryMigrate, queryPci, queryStatus, startQemu } from './support/qemu.js';

/** A small q35 guest, paused from the start: both sides hold the same devices. */
const ARGS = ['-machine', 'pc-q35-7.2', '-accel', 'tcg', '-m', '64M', '-nodefaults', '-display', 'none', '-S', '-device', 'virtio-rng-pci'];

/** query-migrate's ram.transferred, 0 before there is one. */
function transferred(m: Record<string, unknown>): number {
  const ram = m.ram as { transferred?: number } | undefined;
  return ram?.transferred ?? 0;
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
    const proxy = await startProxy(scope, `tcp:127.0.0.1:${front}`, `tcp:127.0.0.1:${back}`, capture);
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
      const proxy = await startProxy(scope, `tcp:127.0.0.1:${front}`, `tcp:127.0.0.1:${back}`, path.join(scope.dir, 'capture.mig'));
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

/** VT-d with two root ports at 00:03.0 and 00:04.0, a device behind the first; paused from the start. */
const IOMMU_ARGS = [
  '-machine', 'pc-q35-7.2', '-accel', 'tcg', '-m', '64M', '-nodefaults', '-display', 'none', '-S',
  '-device', 'intel-iommu',
  '-device', 'pcie-root-port,id=rp1,chassis=1,addr=0x3',
  '-device', 'pcie-root-port,id=rp2,chassis=2,addr=0x4',
  '-device', 'virtio-rng-pci,bus=rp1',
];
const ROOT_PORT_CONFIG = '0000:00:03.0/pcie-root-port:parent_obj.parent_obj.parent_obj.config[1]';

test("--check --reorder 'iommu-intel<pcie-root-port' --set makes the misorder and names it; a second proxy's --fix-order undoes it; QEMU loads the edit", { timeout: 90_000 }, async (t) => {
  const binary = qemuOrSkip(t, 'qemu-system-x86_64');
  if (binary === null) return;
  await withScope(async (scope) => {
    const [front, middle, back] = [await freePort(), await freePort(), await freePort()];
    const dest = await startQemu({ binary, args: [...IOMMU_ARGS, '-incoming', `tcp:127.0.0.1:${back}`] });
    scope.defer(() => dest.stop());
    const [sent, misordered] = [path.join(scope.dir, 'sent.mig'), path.join(scope.dir, 'misordered.mig')];
    const fixer = await startProxy(scope, `tcp:127.0.0.1:${middle}`, `tcp:127.0.0.1:${back}`, misordered, '--check', '--fix-order');
    const breaker = await startProxy(scope, `tcp:127.0.0.1:${front}`, `tcp:127.0.0.1:${middle}`, sent, '--check', '--reorder', 'iommu-intel<pcie-root-port',
      '--set', `${ROOT_PORT_CONFIG}[0x19]=5`, '--set', `${ROOT_PORT_CONFIG}[0x1a]=5`);
    const source = await startQemu({ binary, args: IOMMU_ARGS });
    scope.defer(() => source.stop());
    await source.qmp.execute('migrate', { uri: `tcp:127.0.0.1:${front}` });
    assert.equal((await migrationEnd(source, 'the source to finish')).status, 'completed');
    assert.equal((await migrationEnd(dest, 'the destination to load')).status, 'completed');

    // The first proxy got a stream in order and sent it on misordered, with its two edits: exit 1.
    const b = await breaker.exited;
    assert.equal(b.code, 1, b.stderr);
    assert.match(b.stderr, /device phase: \d+ sections, in order by QEMU 7\.2's order rules/);
    assert.match(b.stderr, /sent on: [1-9]\d* section\(s\) moved, 0 renumbered, 2 field edit\(s\); 2 violation\(s\)/);
    const passes = /; (\d+) pass\(es\) over RAM, (\d+) pages, \d+ sent again$/m.exec(b.stderr);
    assert.ok(passes && Number(passes[1]) >= 1 && Number(passes[2]) > 0, b.stderr);
    // The second names the misorder as it passes and sends it on in order: exit 0.
    const f = await fixer.exited;
    assert.equal(f.code, 0, f.stderr);
    assert.match(f.stderr, /device phase: \d+ sections, 2 violation\(s\)/);
    assert.match(f.stderr, /bridges before IOMMUs: 0000:00:03\.0\/pcie-root-port \(\d+\) \[pcie-root-port\] at position \d+ should load before iommu-intel/);
    assert.match(f.stderr, /sent on: [1-9]\d* section\(s\) moved, 0 renumbered, 0 field edit\(s\); in order/);
    // The captures are what each proxy received: `vmstate order` agrees with the proxies.
    assert.equal(runCli(['order', sent]).status, 0);
    const order = runCli(['order', misordered]);
    assert.equal(order.status, 1, order.stdout);
    assert.match(order.stdout, /0000:00:03\.0\/pcie-root-port \(\d+\) \[pcie-root-port\] at position \d+ should load before iommu-intel/);
    // The destination loaded the edited root port: its secondary bus is 5.
    const port = allPciDevices(await queryPci(dest.qmp)).find((d) => d.bus === 0 && d.slot === 3);
    assert.equal(port?.pci_bridge?.bus.secondary, 5);
    assert.equal(port?.pci_bridge?.bus.subordinate, 5);
  });
});

/** Two user netdevs: QEMU 10.0 numbers their slirp sections 0 and 1, QEMU 7.2 both 0, and refuses a 1. */
const TWO_NICS = [
  '-machine', 'pc-q35-7.2', '-accel', 'tcg', '-m', '64M', '-nodefaults', '-display', 'none', '-S',
  '-netdev', 'user,id=n1,restrict=on', '-device', 'e1000e,netdev=n1,romfile=,mac=52:54:00:12:34:01',
  '-netdev', 'user,id=n2,restrict=on', '-device', 'virtio-net-pci,netdev=n2,romfile=,mac=52:54:00:12:34:02',
];

test("QEMU 10.0 (pc-q35-7.2, two user netdevs) -> QEMU 7.2 fails on 'slirp' 1; through --map 'slirp#1=slirp#0' it loads", { timeout: 120_000 }, async (t) => {
  const old = qemuOrSkip(t, 'qemu-system-x86_64');
  const q10 = qemu10OrSkip(t, 'qemu-system-x86_64');
  if (old === null || q10 === null) return;
  for (const map of [[], ['--map', 'slirp#1=slirp#0']]) {
    await withScope(async (scope) => {
      const [front, back] = [await freePort(), await freePort()];
      // With the return path, the source learns how the load went.
      const capabilities = [{ capability: 'return-path', state: true }];
      const dest = await startQemu({ binary: old, args: [...TWO_NICS, '-incoming', 'defer'] });
      scope.defer(() => dest.stop());
      await dest.qmp.execute('migrate-set-capabilities', { capabilities });
      await dest.qmp.execute('migrate-incoming', { uri: `tcp:127.0.0.1:${back}` });
      const proxy = await startProxy(scope, `tcp:127.0.0.1:${front}`, `tcp:127.0.0.1:${back}`, path.join(scope.dir, 'capture.mig'), ...map);
      const source = await startQemu({ binary: q10.binary, args: [...q10.args, ...TWO_NICS], env: q10.env });
      scope.defer(() => source.stop());
      await source.qmp.execute('migrate-set-capabilities', { capabilities });
      await source.qmp.execute('migrate', { uri: `tcp:127.0.0.1:${front}` });
      const end = await migrationEnd(source, 'the source to finish');
      const exit = await proxy.exited;
      if (map.length === 0) {
        assert.equal(end.status, 'failed');
        const code = await waitFor('the destination to give up', () => dest.process.exitCode ?? undefined, 20_000);
        assert.notEqual(code, 0);
        assert.match(dest.stderr(), /Unknown savevm section or instance 'slirp' 1/);
        // QEMU gives up and its connection resets: the proxy names that side.
        assert.equal(exit.code, 1, exit.stderr);
        assert.match(exit.stderr, /^vmstate: the destination (lost|closed) its connection/m);
      } else {
        assert.equal(end.status, 'completed', JSON.stringify(end));
        assert.equal((await migrationEnd(dest, 'the destination to load')).status, 'completed');
        assert.equal(exit.code, 0, exit.stderr);
        assert.match(exit.stderr, /sent on: 0 section\(s\) moved, 1 renumbered, 0 field edit\(s\)/);
      }
    });
  }
});

test('QEMU 10.0 -> proxy --check -> QEMU 10.0 with return-path and switchover-ack: completes, the return path relayed', { timeout: 90_000 }, async (t) => {
  const q10 = qemu10OrSkip(t, 'qemu-system-x86_64');
  if (q10 === null) return;
  await withScope(async (scope) => {
    const [front, back] = [await freePort(), await freePort()];
    const capabilities = [{ capability: 'return-path', state: true }, { capability: 'switchover-ack', state: true }];
    const args = [...q10.args, ...IOMMU_ARGS.map((a) => (a === 'pc-q35-7.2' ? 'q35' : a))];
    const dest = await startQemu({ binary: q10.binary, args: [...args, '-incoming', 'defer'], env: q10.env });
    scope.defer(() => dest.stop());
    await dest.qmp.execute('migrate-set-capabilities', { capabilities });
    await dest.qmp.execute('migrate-incoming', { uri: `tcp:127.0.0.1:${back}` });
    const proxy = await startProxy(scope, `tcp:127.0.0.1:${front}`, `tcp:127.0.0.1:${back}`, path.join(scope.dir, 'capture.mig'), '--check', '--qemu', '10.0');
    const source = await startQemu({ binary: q10.binary, args, env: q10.env });
    scope.defer(() => source.stop());
    await source.qmp.execute('migrate-set-capabilities', { capabilities });
    await source.qmp.execute('migrate', { uri: `tcp:127.0.0.1:${front}` });
    assert.equal((await migrationEnd(source, 'the source to finish')).status, 'completed');
    assert.equal((await migrationEnd(dest, 'the destination to load')).status, 'completed');
    const exit = await proxy.exited;
    assert.equal(exit.code, 0, exit.stderr);
    assert.match(exit.stderr, /device phase: \d+ sections, in order by QEMU 10\.0's order rules/);
    const back_ = /relayed \d+ bytes of the stream, (\d+) back/.exec(exit.stderr);
    assert.ok(back_ && Number(back_[1]) > 0, `nothing came back: ${exit.stderr}`);
  });
});
