// The bug this project exists for, on a real Linux guest (issue 15, tests a and b): a booted kernel with
// VT-d on reads a virtio-blk disk behind a root port through the IOMMU, and the host bridge's IOMMU group
// is pass-through (vmstate.hostbridge=identity). Live-migrated QEMU 7.2 -> proxy -> QEMU 7.2 it reads its
// disk right on the destination. Through `--reorder 'iommu-intel<pcie-root-port'` the IOMMU loads before
// the root ports, looks the disk up on bus 0, finds the host bridge's pass-through context there and
// sends the disk's DMA untranslated: the guest breaks. `--fix-order` after the reorder puts it right.
// One boot per run: the destinations are migrated on from the first. Skips without QEMU or the guest,
// unless VMSTATE_REQUIRE_QEMU=1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { freePort, withScope, type Scope } from './migration/harness.js';
import { runCli } from './support/cli.js';
import { guestQemuArgs, linuxGuestOrSkip, SerialConsole, type LinuxGuest } from './support/linux-guest.js';
import { analyzeScriptOrSkip, runAnalyzeScript } from './support/peer.js';
import { migrationEnd, startProxy } from './support/proxy.js';
import { qemuOrSkip, startQemu, type QemuHandle } from './support/qemu.js';
import { seededRandom } from './support/random.js';

const DISK_BYTES = 16 << 20;
/** Reads the whole disk past the page cache, so that it comes by DMA. */
const READ_DISK = 'echo 3 > /proc/sys/vm/drop_caches; md5sum /dev/vda';
/** Long enough for a healthy read (under 1 s) many times over; a broken device hangs instead. */
const READ_TIMEOUT_MS = 20_000;
/** How long a broken guest is given to answer. */
const BROKEN_READ_TIMEOUT_MS = 10_000;

/** One guest VM: its QEMU and its serial console. */
interface Guest {
  readonly vm: QemuHandle;
  readonly console: SerialConsole;
}

async function startGuest(scope: Scope, binary: string, guest: LinuxGuest, disk: string, name: string, incoming?: string): Promise<Guest> {
  const serialPath = path.join(scope.dir, `${name}.serial`);
  const args = guestQemuArgs({ ...guest, disk, serialPath, machine: 'pc-q35-7.2', append: ['vmstate.hostbridge=identity'] });
  const vm = await startQemu({ binary, args: incoming ? [...args, '-incoming', incoming] : args });
  scope.defer(() => vm.stop());
  const console = await SerialConsole.connect(serialPath);
  scope.defer(async () => console.close());
  return { vm, console };
}

/** Migrates `from` live through a proxy with `options` into a new QEMU; returns it, with the proxy's exit. */
async function migrateThrough(scope: Scope, binary: string, guest: LinuxGuest, disk: string, from: Guest, name: string, ...options: string[]) {
  const [front, back] = [await freePort(), await freePort()];
  const to = await startGuest(scope, binary, guest, disk, name, `tcp:127.0.0.1:${back}`);
  const capture = path.join(scope.dir, `${name}.mig`);
  const proxy = await startProxy(scope, `tcp:127.0.0.1:${front}`, `tcp:127.0.0.1:${back}`, capture, ...options);
  await from.vm.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 1 << 30 });
  await from.vm.qmp.execute('migrate', { uri: `tcp:127.0.0.1:${front}` });
  assert.equal((await migrationEnd(from.vm, `the migration to ${name}`)).status, 'completed');
  assert.equal((await migrationEnd(to.vm, `${name} to load`)).status, 'completed');
  return { to, capture, proxy: await proxy.exited };
}

test('a Linux guest with VT-d: through the proxy it reads its disk right; misordered it breaks; --fix-order repairs it', { timeout: 240_000 }, async (t) => {
  const binary = qemuOrSkip(t, 'qemu-system-x86_64');
  const guest = linuxGuestOrSkip(t);
  const script = analyzeScriptOrSkip(t);
  if (binary === null || guest === null || script === null) return;
  await withScope(async (scope) => {
    const disk = path.join(scope.dir, 'disk.img');
    const random = seededRandom(15);
    const bytes = new Uint8Array(DISK_BYTES);
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(random() * 256);
    writeFileSync(disk, bytes);
    const md5 = createHash('md5').update(bytes).digest('hex');
    const reads = (text: string) => text.trim().split(/\s+/)[0];

    const source = await startGuest(scope, binary, guest, disk, 'source');
    await source.console.waitFor(/vmstate-guest: IOMMU group \d+ \(00:00\.0\) is identity/, 60_000);
    await source.console.waitFor(/guest# /, 30_000);
    assert.equal(reads(await source.console.run(READ_DISK, READ_TIMEOUT_MS)), md5);

    // (a) Through the proxy, live: the destination reads its disk right, and the capture is a stream file.
    const first = await migrateThrough(scope, binary, guest, disk, source, 'first', '--check');
    assert.equal(first.proxy.code, 0, first.proxy.stderr);
    assert.match(first.proxy.stderr, /device phase: \d+ sections, in order/);
    assert.equal(reads(await first.to.console.run(READ_DISK, READ_TIMEOUT_MS)), md5);
    const ours = runCli(['analyze', first.capture]);
    const peer = runAnalyzeScript(['-f', first.capture], { script });
    assert.equal(ours.status, 0, ours.stderr);
    assert.equal(ours.stdout, peer.stdout);
    await source.vm.stop();

    // (b) The IOMMU before the root ports: the check names it as it passes, and the guest's disk breaks
    // (a wrong checksum, I/O errors, or a read that never ends).
    const broken = await migrateThrough(scope, binary, guest, disk, first.to, 'misordered', '--check', '--reorder', 'iommu-intel<pcie-root-port');
    assert.equal(broken.proxy.code, 1, broken.proxy.stderr);
    assert.match(broken.proxy.stderr, /bridges before IOMMUs: 0000:00:\S+\/pcie-root-port \(\d+\) \[pcie-root-port\] at position \d+ should load before iommu-intel/);
    const read = await broken.to.console.runWithStatus(READ_DISK, BROKEN_READ_TIMEOUT_MS).then(
      (r) => (r.status === 0 ? `checksum ${reads(r.output)}` : `exit ${r.status}: ${r.output}`),
      (e: Error) => `no answer: ${e.message.slice(0, 80)}`,
    );
    assert.notEqual(read, `checksum ${md5}`, 'the misordered guest read its disk right');
    t.diagnostic(`misordered guest: ${read}`);
    await broken.to.vm.stop();

    // The first destination runs on (it is the source the failed experiment left), then goes through
    // the same misorder with --fix-order behind it: the disk reads right.
    await first.to.vm.qmp.execute('cont');
    assert.equal(reads(await first.to.console.run(READ_DISK, READ_TIMEOUT_MS)), md5);
    const fixed = await migrateThrough(scope, binary, guest, disk, first.to, 'fixed', '--check', '--reorder', 'iommu-intel<pcie-root-port', '--fix-order');
    assert.equal(fixed.proxy.code, 0, fixed.proxy.stderr);
    assert.match(fixed.proxy.stderr, /sent on: 0 section\(s\) moved, 0 renumbered, 0 field edit\(s\); in order/);
    assert.equal(reads(await fixed.to.console.run(READ_DISK, READ_TIMEOUT_MS)), md5);
  });
});
