// Interop with a real QEMU 7.2: fresh streams made over QMP must analyze exactly like QEMU's own
// analyze-migration.py, and a stream rewritten by our CLI must load back into QEMU with the edit
// visible through query-pci. Skips when QEMU or its source tree is missing, unless
// VMSTATE_REQUIRE_QEMU=1, which turns every skip into a failure.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { assertSameOutput, assertSucceeded, runCli } from './support/cli.js';
import { analyzeScriptOrSkip, runAnalyzeScript } from './support/peer.js';
import {
  allPciDevices,
  loadFromFile,
  migrateToFile,
  pollUntil,
  qemuOrSkip,
  queryPci,
  startQemu,
  type PciDeviceInfo,
  type Skippable,
} from './support/qemu.js';

const QEMU = 'qemu-system-x86_64';
const TEST_TIMEOUT_MS = 60_000;

/** q35 with an IOMMU and a device behind each of three root ports; booted into SeaBIOS. */
const q35IommuArgs: readonly string[] = [
  '-machine', 'q35,kernel-irqchip=split', '-accel', 'tcg', '-m', '64M', '-smp', '1', '-nodefaults',
  '-device', 'intel-iommu,intremap=on,caching-mode=on,aw-bits=48',
  '-device', 'pcie-root-port,id=rp1,bus=pcie.0,chassis=1,slot=1,addr=0x3.0',
  '-device', 'pcie-root-port,id=rp2,bus=pcie.0,chassis=2,slot=2,addr=0x4.0',
  '-device', 'pcie-root-port,id=rp3,bus=pcie.0,chassis=3,slot=3,addr=0x5.0',
  '-netdev', 'user,id=n1,restrict=on',
  '-device', 'virtio-net-pci,bus=rp1,netdev=n1,iommu_platform=on,romfile=,mac=52:54:00:22:34:01',
  '-netdev', 'user,id=n2,restrict=on',
  '-device', 'e1000e,bus=rp2,netdev=n2,romfile=,mac=52:54:00:22:34:02',
  '-device', 'virtio-rng-pci,bus=rp3',
];

/** The manifest's pc-i440fx-small-paused command line: never started (-S). */
const i440fxSmallArgs: readonly string[] = [
  '-machine', 'pc', '-accel', 'tcg', '-m', '64M', '-smp', '1', '-nodefaults', '-display', 'none',
  '-netdev', 'user,id=n1,restrict=on',
  '-device', 'e1000,netdev=n1,addr=0x3,romfile=,mac=52:54:00:22:36:01',
  '-device', 'virtio-rng-pci,addr=0x4',
  '-device', 'pci-bridge,id=br1,chassis_nr=2,addr=0x5',
  '-device', 'virtio-serial-pci,bus=br1,addr=0x2',
  '-serial', 'null', '-S',
];

/** The first root port: QEMU device 00:03.0, savevm idstr as written in the stream. */
const ROOT_PORT_SLOT = 3;
const ROOT_PORT_IDSTR = '0000:00:03.0/pcie-root-port';
/** Where PCIDevice's config buffer sits in the analyzer JSON of a pcie-root-port section. */
const CONFIG_PATH = ['parent_obj.parent_obj.parent_obj', 'config[1]'] as const;
/** PCI_SECONDARY_BUS and PCI_SUBORDINATE_BUS in a type-1 (bridge) config header. */
const PCI_SECONDARY_BUS = 0x19;
const PCI_SUBORDINATE_BUS = 0x1a;

interface Streams {
  dir: string;
  q35Iommu: string;
  i440fxSmall: string;
  /** query-pci of the q35 source just before it migrated. */
  q35Bridges: PciDeviceInfo[];
}

let streamsPromise: Promise<Streams> | undefined;
after(async () => {
  const streams = await streamsPromise?.catch(() => undefined);
  if (streams !== undefined) await rm(streams.dir, { recursive: true, force: true });
});

/** Makes both streams once; every test that needs them awaits the same promise. */
function streams(binary: string): Promise<Streams> {
  streamsPromise ??= makeStreams(binary);
  return streamsPromise;
}

async function makeStreams(binary: string): Promise<Streams> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'vmstate-interop-'));
  try {
    const q35Iommu = path.join(dir, 'q35-iommu.mig');
    const q35 = await startQemu({ binary, args: q35IommuArgs });
    let q35Bridges: PciDeviceInfo[];
    try {
      // Run SeaBIOS until it has numbered every bridge; it writes subordinate 0xff first and the
      // real value after scanning behind the bridge, so wait for that too.
      q35Bridges = await pollUntil('SeaBIOS to number the PCI bridges', 15_000, async () => {
        const bridges = allPciDevices(await queryPci(q35.qmp)).filter((d) => d.pci_bridge !== undefined);
        const numbered = bridges.every((d) => {
          const bus = d.pci_bridge?.bus;
          return bus !== undefined && bus.secondary > 0 && bus.subordinate >= bus.secondary && bus.subordinate < 0xff;
        });
        return bridges.length === 3 && numbered ? bridges : undefined;
      }, 100);
      await q35.qmp.execute('stop');
      await migrateToFile(q35.qmp, q35Iommu);
    } finally {
      await q35.stop();
    }

    const i440fxSmall = path.join(dir, 'i440fx-small.mig');
    const pc = await startQemu({ binary, args: i440fxSmallArgs });
    try {
      await migrateToFile(pc.qmp, i440fxSmall);
    } finally {
      await pc.stop();
    }
    return { dir, q35Iommu, i440fxSmall, q35Bridges };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** QEMU and the peer script, or null when the test was skipped. */
function prerequisites(t: Skippable): { binary: string } | null {
  const binary = qemuOrSkip(t, QEMU);
  if (binary === null) return null;
  if (analyzeScriptOrSkip(t) === null) return null;
  return { binary };
}

/** analyze-migration.py's JSON for a stream (state mode). */
function peerState(file: string): Record<string, Record<string, unknown>> {
  const peer = runAnalyzeScript(['-f', file]);
  assertSucceeded(`analyze-migration.py -f ${file}`, peer);
  return JSON.parse(peer.stdout) as Record<string, Record<string, unknown>>;
}

/** The section key (idstr plus " (instance-ish number)") of the first root port. */
function rootPortKey(state: Record<string, unknown>): string {
  const key = Object.keys(state).find((k) => k.startsWith(`${ROOT_PORT_IDSTR} (`));
  assert.ok(key !== undefined, `no ${ROOT_PORT_IDSTR} section in ${Object.keys(state).join(', ')}`);
  return key;
}

/** The root port's config space bytes from analyzer JSON. */
function rootPortConfig(state: Record<string, Record<string, unknown>>): { key: string; bytes: number[] } {
  const key = rootPortKey(state);
  const outer = state[key]?.[CONFIG_PATH[0]];
  assert.ok(typeof outer === 'object' && outer !== null, `${key} has no ${CONFIG_PATH[0]}`);
  const hex = (outer as Record<string, unknown>)[CONFIG_PATH[1]];
  assert.equal(typeof hex, 'string', `${key}: ${CONFIG_PATH.join(' -> ')} is not a hex string`);
  const bytes = (hex as string).split(' ').map((h) => Number.parseInt(h, 16));
  assert.ok(bytes.length >= 256 && bytes.every((b) => b >= 0 && b <= 0xff), `${key}: bad config bytes`);
  return { key, bytes };
}

function formatConfig(bytes: readonly number[]): string {
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(' ');
}

for (const [name, pick] of [
  ['q35-iommu', (s: Streams) => s.q35Iommu],
  ['i440fx-small', (s: Streams) => s.i440fxSmall],
] as const) {
  test(`${name}: analyze prints what analyze-migration.py -f prints`, { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const pre = prerequisites(t);
    if (pre === null) return;
    const file = pick(await streams(pre.binary));
    const peer = runAnalyzeScript(['-f', file]);
    assertSucceeded('analyze-migration.py -f', peer);
    const ours = runCli(['analyze', file]);
    assertSucceeded('vmstate analyze', ours);
    assertSameOutput(ours.stdout, peer.stdout, `vmstate analyze ${name}`);
  });

  test(`${name}: analyze --desc prints what analyze-migration.py -d desc prints`, { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const pre = prerequisites(t);
    if (pre === null) return;
    const file = pick(await streams(pre.binary));
    const peer = runAnalyzeScript(['-f', file, '-d', 'desc']);
    assertSucceeded('analyze-migration.py -d desc', peer);
    const ours = runCli(['analyze', '--desc', file]);
    assertSucceeded('vmstate analyze --desc', ours);
    assertSameOutput(ours.stdout, peer.stdout, `vmstate analyze --desc ${name}`);
  });
}

test('q35-iommu: rewrite without --set copies the stream byte for byte', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const pre = prerequisites(t);
  if (pre === null) return;
  const { dir, q35Iommu } = await streams(pre.binary);
  const out = path.join(dir, 'q35-iommu.copy.mig');
  try {
    assertSucceeded('vmstate rewrite', runCli(['rewrite', q35Iommu, out]));
    const [input, output] = await Promise.all([readFile(q35Iommu), readFile(out)]);
    assert.equal(output.length, input.length, 'rewritten stream has a different length');
    assert.ok(output.equals(input), `rewritten stream differs from the input at byte ${input.findIndex((b, i) => b !== output[i])}`);
  } finally {
    await rm(out, { force: true });
  }
});

test('q35-iommu: a rewritten bridge bus number loads into QEMU and shows in query-pci', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const pre = prerequisites(t);
  if (pre === null) return;
  const { dir, q35Iommu, q35Bridges } = await streams(pre.binary);

  // The analyzer's view of the root port must agree with what the source QEMU reported.
  const before = peerState(q35Iommu);
  const { key, bytes } = rootPortConfig(before);
  const oldSecondary = bytes[PCI_SECONDARY_BUS];
  const oldSubordinate = bytes[PCI_SUBORDINATE_BUS];
  const sourcePort = q35Bridges.find((d) => d.bus === 0 && d.slot === ROOT_PORT_SLOT && d.function === 0);
  assert.ok(sourcePort?.pci_bridge !== undefined, 'source query-pci has no bridge at 00:03.0');
  assert.equal(oldSecondary, sourcePort.pci_bridge.bus.secondary, 'stream and query-pci disagree on the secondary bus');
  assert.notEqual(oldSecondary, 0, 'SeaBIOS did not number the root port');

  // A bus number no other bridge uses; subordinate follows so that secondary <= subordinate holds.
  const newBus = oldSecondary + 0x20;
  const usedBuses = q35Bridges.flatMap((d) => (d.pci_bridge === undefined ? [] : [d.pci_bridge.bus.secondary, d.pci_bridge.bus.subordinate]));
  assert.ok(newBus < 0xff && !usedBuses.includes(newBus), `bus ${newBus} is already in use: ${usedBuses.join(', ')}`);
  const newSubordinate = Math.max(oldSubordinate, newBus);

  const out = path.join(dir, 'q35-iommu.rebus.mig');
  const field = `${ROOT_PORT_IDSTR}:${CONFIG_PATH.join('.')}`;
  try {
    const rewrite = runCli([
      'rewrite', q35Iommu, out,
      '--set', `${field}[0x19]=${newBus}`,
      '--set', `${field}[0x1a]=${newSubordinate}`,
    ]);
    assertSucceeded('vmstate rewrite --set', rewrite);

    // Exactly those two config bytes changed, as the peer reads the result.
    const rewritten = peerState(out);
    const after = rootPortConfig(rewritten).bytes;
    const changed = after.flatMap((b, i) => (b === bytes[i] ? [] : [`0x${i.toString(16)}: ${bytes[i]} -> ${b}`]));
    assert.deepEqual(changed, [
      `0x${PCI_SECONDARY_BUS.toString(16)}: ${oldSecondary} -> ${newBus}`,
      ...(newSubordinate === oldSubordinate ? [] : [`0x${PCI_SUBORDINATE_BUS.toString(16)}: ${oldSubordinate} -> ${newSubordinate}`]),
    ]);
    (rewritten[key]?.[CONFIG_PATH[0]] as Record<string, unknown>)[CONFIG_PATH[1]] = formatConfig(bytes);
    // Name the differing sections rather than printing a diff of the whole dump.
    const keys = [...new Set([...Object.keys(before), ...Object.keys(rewritten)])];
    const differing = keys.filter((k) => JSON.stringify(before[k]) !== JSON.stringify(rewritten[k]));
    assert.deepEqual(differing, [], 'sections changed by the rewrite besides the root port config');
    assert.deepEqual(Object.keys(rewritten), Object.keys(before), 'section order changed by the rewrite');

    const loaded = await loadFromFile(pre.binary, q35IommuArgs, out);
    try {
      assert.equal(loaded.migration.status, 'completed');
      // The source ran SeaBIOS and was stopped, so the destination comes up paused.
      assert.equal(loaded.status.status, 'paused');
      const devices = allPciDevices(await queryPci(loaded.qmp));
      const port = devices.find((d) => d.bus === 0 && d.slot === ROOT_PORT_SLOT && d.function === 0);
      assert.ok(port?.pci_bridge !== undefined, 'loaded QEMU has no bridge at 00:03.0');
      assert.equal(port.pci_bridge.bus.secondary, newBus, 'secondary bus after load');
      assert.equal(port.pci_bridge.bus.subordinate, newSubordinate, 'subordinate bus after load');
      // QEMU numbers the devices behind the bridge from its config, so they moved too.
      for (const child of port.pci_bridge.devices ?? []) assert.equal(child.bus, newBus, 'bus of the device behind the root port');
      // The other bridges kept their numbers.
      for (const source of q35Bridges.filter((d) => d.slot !== ROOT_PORT_SLOT)) {
        const loadedBridge = devices.find((d) => d.bus === source.bus && d.slot === source.slot && d.function === source.function);
        assert.deepEqual(loadedBridge?.pci_bridge?.bus.secondary, source.pci_bridge?.bus.secondary, `bridge at slot ${source.slot}`);
      }
    } finally {
      await loaded.stop();
    }
  } finally {
    await rm(out, { force: true });
  }
});
