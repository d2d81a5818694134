// `vmstate compat` against what really happens between QEMU 7.2 and QEMU 10.0 (issue 14): for each pair,
// the source QEMU writes its stream and the destination QEMU, started with the same devices and machine
// type, writes its own (DEST); compat's verdict on the two must equal the outcome of the destination QEMU
// loading the source's stream for real, and when that fails, compat must stop at the section QEMU names.
// Skips when a QEMU cannot be had, unless VMSTATE_REQUIRE_QEMU=1.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { compareDumps, compareStreams, compareStreamToDump, explainError, parseVmstateDump, profileStreamFile, type CompatReport } from '../src/analyze/index.js';
import { loadFromFile, migrateToFile, qemu10, qemu10OrSkip, qemuOrSkip, startQemu, type QemuCommand } from './support/qemu.js';

const TEST_TIMEOUT_MS = 120_000;

const dirs: string[] = [];
after(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

/** Paused from the start and never run: the streams are small, and both sides hold the same state. */
const common = ['-accel', 'tcg', '-m', '64M', '-nodefaults', '-display', 'none', '-S'];
/** Two user netdevs: QEMU 10.0 numbers their slirp sections 0 and 1, QEMU 7.2 writes both as 0. */
const twoNics = [
  '-netdev', 'user,id=n1,restrict=on', '-device', 'e1000e,netdev=n1,romfile=,mac=52:54:00:12:34:01',
  '-netdev', 'user,id=n2,restrict=on', '-device', 'virtio-net-pci,netdev=n2,romfile=,mac=52:54:00:12:34:02',
];
/** q35 with VT-d, root ports, a switch and a PCIe-to-PCI bridge, and devices behind them. */
const iommuAndBridges = [
  '-device', 'intel-iommu,intremap=off',
  '-device', 'pcie-root-port,id=rp1,bus=pcie.0,chassis=1,slot=1,addr=0x2.0',
  '-device', 'pcie-root-port,id=rp2,bus=pcie.0,chassis=2,slot=2,addr=0x3.0',
  '-device', 'x3130-upstream,id=up1,bus=rp2',
  '-device', 'xio3130-downstream,id=dn1,bus=up1,chassis=11,slot=0',
  '-device', 'virtio-rng-pci,bus=rp1,iommu_platform=on',
  '-device', 'virtio-balloon-pci,bus=dn1',
  '-device', 'pcie-pci-bridge,id=pb1,bus=pcie.0,addr=0x6.0',
  '-device', 'virtio-serial-pci,bus=pb1,addr=0x3',
];

interface Pair {
  readonly name: string;
  readonly binary: 'qemu-system-x86_64' | 'qemu-system-aarch64';
  readonly from: '7.2' | '10.0';
  readonly to: '7.2' | '10.0';
  readonly args: readonly string[];
}

const pairs: Pair[] = [];
for (const [from, to] of [['10.0', '7.2'], ['7.2', '10.0']] as const) {
  pairs.push({ name: `q35 pc-q35-7.2 with two user netdevs, ${from} -> ${to}`, binary: 'qemu-system-x86_64', from, to, args: ['-machine', 'pc-q35-7.2', ...twoNics] });
  pairs.push({ name: `q35 pc-q35-7.2 with VT-d and bridges, ${from} -> ${to}`, binary: 'qemu-system-x86_64', from, to, args: ['-machine', 'pc-q35-7.2', ...iommuAndBridges] });
  pairs.push({ name: `i440fx pc-i440fx-7.2 with e1000 and virtio, ${from} -> ${to}`, binary: 'qemu-system-x86_64', from, to, args: ['-machine', 'pc-i440fx-7.2', '-netdev', 'user,id=n1,restrict=on', '-device', 'e1000,netdev=n1,romfile=', '-device', 'virtio-rng-pci'] });
  pairs.push({
    name: `q35 pc-q35-7.2 with USB, SCSI and a third NIC, ${from} -> ${to}`,
    binary: 'qemu-system-x86_64',
    from,
    to,
    args: ['-machine', 'pc-q35-7.2', '-device', 'qemu-xhci', '-device', 'usb-tablet', '-device', 'virtio-scsi-pci', '-netdev', 'user,id=n3,restrict=on', '-device', 'rtl8139,netdev=n3,romfile='],
  });
  pairs.push({ name: `aarch64 virt-7.2, ${from} -> ${to}`, binary: 'qemu-system-aarch64', from, to, args: ['-machine', 'virt-7.2', '-cpu', 'cortex-a57'] });
}
// Each QEMU's own newest machine type: the other cannot run it, so the destination runs its own.
pairs.push({ name: 'q35, 10.0 (pc-q35-10.0) -> 7.2 (pc-q35-7.2)', binary: 'qemu-system-x86_64', from: '10.0', to: '7.2', args: ['-machine', 'q35'] });
pairs.push({ name: 'q35, 7.2 (pc-q35-7.2) -> 10.0 (pc-q35-10.0)', binary: 'qemu-system-x86_64', from: '7.2', to: '10.0', args: ['-machine', 'q35'] });

/** How to run `binary` of one version, or null after skipping. */
function command(t: Parameters<typeof qemuOrSkip>[0], version: '7.2' | '10.0', binary: Pair['binary']): QemuCommand | null {
  if (version === '10.0') return qemu10OrSkip(t, binary);
  const path = qemuOrSkip(t, binary);
  return path === null ? null : { binary: path, args: [], env: {} };
}

async function writeStream(q: QemuCommand, args: readonly string[], file: string): Promise<void> {
  const vm = await startQemu({ binary: q.binary, args: [...q.args, ...args, ...common], env: q.env });
  try {
    await migrateToFile(vm.qmp, file);
  } finally {
    await vm.stop();
  }
}


/** The section a QEMU load error names, as compat names it (null when the text names none). */
function sectionNamed(stderr: string): string | null {
  const unknown = /Unknown savevm section or instance '([^']+)' (\d+)/.exec(stderr);
  if (unknown) return unknown[1];
  const device = /error while loading state for instance 0x[0-9a-f]+ of device '([^']+)'/.exec(stderr);
  if (device) return device[1];
  const section = /error while loading state section id \d+\(([^)]+)\)/.exec(stderr);
  if (section) return section[1];
  if (/Machine type received is/.test(stderr)) return 'configuration';
  return null;
}

/** The report's first failure (or verdict) in one line, for messages. */
function told(report: CompatReport): string {
  return report.failsAt ? `${report.verdict} at ${report.failsAt.section}: ${report.failsAt.message}` : report.verdict;
}

for (const pair of pairs) {
  test(`compat predicts the real load: ${pair.name}`, { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const source = command(t, pair.from, pair.binary);
    const dest = command(t, pair.to, pair.binary);
    if (source === null || dest === null) return;
    const dir = await mkdtemp(path.join(os.tmpdir(), 'vmstate-compat-'));
    dirs.push(dir);
    const sent = path.join(dir, 'source.mig');
    const own = path.join(dir, 'dest.mig');
    await writeStream(source, pair.args, sent);
    await writeStream(dest, pair.args, own);
    const [sentProfile, ownProfile] = [await profileStreamFile(sent), await profileStreamFile(own)];
    const report = compareStreams(sentProfile, ownProfile);
    // The destination's -dump-vmstate too: with its stream, the same verdict; alone, it cannot see the
    // sections that are no device class's (cpu, slirp), but must not call a load that works a failure.
    const machine = pair.args[pair.args.indexOf('-machine') + 1];
    const destDump = parseVmstateDump(await dumpVmstate(dest, machine, path.join(dir, 'dest.json')), 'dest.json');
    const both = compareStreamToDump(sentProfile, destDump, ownProfile);
    const dumpOnly = compareStreamToDump(sentProfile, destDump);

    let failure: string | null = null;
    try {
      const loaded = await loadFromFile(dest.binary, [...dest.args, ...pair.args, ...common], sent, { env: dest.env });
      await loaded.stop();
    } catch (e) {
      failure = e instanceof Error ? e.message : String(e);
    }
    t.diagnostic(`compat: ${told(report)}; with the dump: ${told(both)}; the dump alone: ${told(dumpOnly)}; QEMU ${pair.to}: ${failure ?? 'loaded'}`);
    assert.equal(both.verdict, report.verdict, `stream and dump: ${told(both)}`);
    assert.equal(both.failsAt?.section, report.failsAt?.section);
    if (failure === null) {
      assert.notEqual(report.verdict, 'will fail', `QEMU ${pair.to} loaded it, compat said ${told(report)}`);
      assert.notEqual(dumpOnly.verdict, 'will fail', `QEMU ${pair.to} loaded it, compat on its dump said ${told(dumpOnly)}`);
    } else {
      assert.equal(report.verdict, 'will fail', `QEMU ${pair.to} failed (${failure}), compat said ${told(report)}`);
      const named = sectionNamed(failure);
      assert.ok(named !== null, `no section named in QEMU's error: ${failure}`);
      assert.equal(report.failsAt?.section, named, `QEMU stopped at ${named}, compat at ${told(report)}`);
      // explain, on QEMU's own words, finds the same place, and the field where QEMU names one.
      const explained = explainError(sentProfile, failure, ownProfile);
      assert.equal(explained.stoppedAt?.section, named, JSON.stringify(explained.lines));
      const field = /Failed to load [^\s:]+:(\S+)/.exec(failure)?.[1];
      if (field !== undefined) {
        assert.equal(explained.stoppedAt?.field, field);
        assert.ok((explained.stoppedAt?.fieldOffset ?? 0) > (explained.stoppedAt?.offset ?? 0), 'the field is placed inside its section');
      }
      assert.ok(explained.findingsThere.some((f) => f.severity === 'fail'), 'compat has a failing finding where QEMU stopped');
      t.diagnostic(`explain: ${JSON.stringify(explained.stoppedAt)}`);
    }
  });
}

/** QEMU's -dump-vmstate of `machine`, as text. */
async function dumpVmstate(q: QemuCommand, machine: string, file: string): Promise<string> {
  const r = spawnSync(q.binary, [...q.args, '-M', machine, '-nodefaults', '-display', 'none', '-dump-vmstate', file], { env: { ...process.env, ...q.env }, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, `-dump-vmstate: ${r.stderr}`);
  return readFile(file, 'utf8');
}

test('compat --dumps against vmstate-static-checker.py on the dumps of QEMU 7.2 and 10.0 (pc-q35-7.2)', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const old = command(t, '7.2', 'qemu-system-x86_64');
  const neu = command(t, '10.0', 'qemu-system-x86_64');
  if (old === null || neu === null) return;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'vmstate-dumps-'));
  dirs.push(dir);
  const oldFile = path.join(dir, 'old.json');
  const newFile = path.join(dir, 'new.json');
  const r = compareDumps(parseVmstateDump(await dumpVmstate(old, 'pc-q35-7.2', oldFile), oldFile), parseVmstateDump(await dumpVmstate(neu, 'pc-q35-7.2', newFile), newFile));
  const checker = spawnSync('python3', [path.join(qemu10().source, 'scripts', 'vmstate-static-checker.py'), '-s', oldFile, '-d', newFile], { encoding: 'utf8' });
  const said = checker.stdout + checker.stderr;
  const breaks = r.findings.filter((f) => f.severity === 'fail').map((f) => f.section);
  t.diagnostic(`checker: exit ${checker.status}, ${said.trim().split('\n').length} lines; vmstate: ${breaks.length} break(s) in ${[...new Set(breaks)].join(', ')}, ${r.onlyInOld.length} classes only in 7.2`);
  // hpet and e1000e load from 7.2 into 10.0 for real (the pairs above): the checker calls them errors,
  // vmstate sees a rename and padding that line up (and, for e1000e, a field behind a test function).
  for (const cls of ['hpet', 'e1000e']) {
    assert.match(said, new RegExp(`Section "${cls}", Description "${cls}": expected field`), `the checker no longer flags ${cls}`);
    assert.ok(!breaks.includes(cls), `vmstate calls ${cls} a break`);
  }
  assert.ok(r.findings.some((f) => f.section === 'hpet' && f.kind === 'field-renamed'));
  // Classes the 10.0 build has not are errors to the checker; vmstate lists them apart.
  assert.match(said, /Section "pci-piix3" does not exist in dest/);
  assert.ok(r.onlyInOld.includes('pci-piix3') && !breaks.includes('pci-piix3'));
});
