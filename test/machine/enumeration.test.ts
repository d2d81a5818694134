// Bus numbering against real firmware: the PCI tree of fixture q35-iommu-3rp-switch-bios, numbered by
// enumerateBuses, gets the bus numbers SeaBIOS gave QEMU, both as `info pci` printed them and as the
// bridges' config bytes 0x18..0x1a in the saved stream.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { analyzeStream, openStreamFile, requireVmdesc, type PyJson } from '../../src/analyze/index.js';
import { parseMachineDescription, type DeviceNode, type MachineDescription } from '../../src/machine/description.js';
import { allFunctions, enumerateBuses, PCI_SECONDARY_BUS, PciBridge, type PciKind } from '../../src/machine/pci.js';
import { buildPciTree } from '../../src/machine/topology.js';
import { fixturesDir, repoRoot } from '../support/paths.js';

const FIXTURE = 'q35-iommu-3rp-switch-bios';

/**
 * The fixture's topology (its command line in test/fixtures/manifest.json), endpoints as dma-engines:
 * rp1 03.0 → virtio-net; rp2 04.0 → up1 → dn1 → e1000e; rp3 05.0 → virtio-blk; pb1 06.0 → balloon at 03.0.
 */
const FIXTURE_MACHINE = {
  name: FIXTURE,
  flavour: 'q35',
  ram: '64M',
  iommus: [{ id: 'dmar0', buses: [0, 255] }],
  devices: [
    { type: 'root-port', id: 'rp1', slot: 3, chassis: 1, children: [{ type: 'dma-engine', id: 'net1', slot: 0 }] },
    {
      type: 'root-port',
      id: 'rp2',
      slot: 4,
      chassis: 2,
      children: [
        {
          type: 'switch-upstream',
          id: 'up1',
          slot: 0,
          children: [{ type: 'switch-downstream', id: 'dn1', slot: 0, chassis: 11, children: [{ type: 'dma-engine', id: 'net2', slot: 0 }] }],
        },
      ],
    },
    { type: 'root-port', id: 'rp3', slot: 5, chassis: 3, children: [{ type: 'dma-engine', id: 'blk1', slot: 0 }] },
    { type: 'pcie-pci-bridge', id: 'pb1', slot: 6, children: [{ type: 'dma-engine', id: 'balloon1', slot: 3 }] },
  ],
};

/** Each kind's section name and the struct holding its PCIDevice fields, as in the stream's vmdesc. */
const SECTION: Partial<Record<PciKind, { readonly name: string; readonly pciDevice: string }>> = {
  'root-port': { name: 'pcie-root-port', pciDevice: 'parent_obj.parent_obj.parent_obj' },
  'switch-upstream': { name: 'xio3130-express-upstream-port', pciDevice: 'parent_obj.parent_obj' },
  'switch-downstream': { name: 'xio3130-express-downstream-port', pciDevice: 'parent_obj.parent_obj.parent_obj' },
  'pcie-pci-bridge': { name: 'pcie-pci-bridge', pciDevice: 'parent_obj' },
};

interface BusNumbers {
  primary: number;
  secondary: number;
  subordinate: number;
}

/** The bridges of `info pci` (the source's, before migrating), by id. */
function infoPciBridges(): Map<string, BusNumbers & { bdf: string }> {
  const text = fs.readFileSync(path.join(fixturesDir, `${FIXTURE}.hmp.txt`), 'utf8');
  const start = text.indexOf('### info pci');
  const end = text.indexOf('\n### ', start + 1);
  const section = text.slice(start, end < 0 ? undefined : end);
  const out = new Map<string, BusNumbers & { bdf: string }>();
  for (const block of section.split(/\n(?=  Bus )/).slice(1)) {
    if (!block.includes('PCI bridge:')) continue;
    const at = /^ {2}Bus +(\d+), device +(\d+), function (\d+):/.exec(block);
    const num = (re: RegExp) => Number(re.exec(block)?.[1] ?? NaN);
    const id = /id "([^"]*)"/.exec(block)?.[1];
    assert.ok(at && id, `cannot read info pci block:\n${block}`);
    const hex = (n: string) => Number(n).toString(16).padStart(2, '0');
    out.set(id, {
      bdf: `${hex(at[1])}:${hex(at[2])}.${at[3]}`,
      primary: num(/ BUS (\d+)\./),
      secondary: num(/secondary bus (\d+)\./),
      subordinate: num(/subordinate bus (\d+)\./),
    });
  }
  return out;
}

/** Every section of the fixture stream, decoded as `vmstate analyze` does. */
async function analyzed(): Promise<Map<string, PyJson>> {
  const file = openStreamFile(path.join(fixturesDir, `${FIXTURE}.mig`));
  try {
    return await analyzeStream(file.source(), requireVmdesc(file).vmdesc);
  } finally {
    file.close();
  }
}

/** Bytes 0x18..0x1a of a bridge's saved config space. */
function savedBusNumbers(sections: Map<string, PyJson>, devicePath: string, kind: PciKind): BusNumbers {
  const s = SECTION[kind];
  assert.ok(s, `${kind} is not a bridge`);
  const label = [...sections.keys()].find((k) => k.startsWith(`${devicePath}/${s.name} (`));
  assert.ok(label, `no section ${devicePath}/${s.name} in the stream`);
  const pciDevice = asMap(asMap(sections.get(label)).get(s.pciDevice));
  const config = pciDevice.get('config[1]');
  assert.equal(typeof config, 'string', `${label}: ${s.pciDevice}.config[1]`);
  const bytes = String(config).split(' ').map((b) => parseInt(b, 16));
  return { primary: bytes[0x18], secondary: bytes[0x19], subordinate: bytes[0x1a] };
}

function asMap(v: PyJson | undefined): ReadonlyMap<string, PyJson> {
  assert.ok(v instanceof Map, 'expected a struct');
  return v as ReadonlyMap<string, PyJson>;
}

test('enumerateBuses numbers the fixture machine as SeaBIOS did: info pci and the saved config bytes agree', async () => {
  const desc = parseMachineDescription(JSON.stringify(FIXTURE_MACHINE), FIXTURE);
  const { rootBus } = buildPciTree(desc);
  assert.equal(enumerateBuses(rootBus), 6, 'highest bus number');
  const printed = infoPciBridges();
  const sections = await analyzed();
  const bridges = allFunctions(rootBus).filter((f): f is PciBridge => f instanceof PciBridge);
  assert.deepEqual(
    bridges.map((b) => b.id),
    ['rp1', 'rp2', 'up1', 'dn1', 'rp3', 'pb1'],
  );
  assert.deepEqual(
    [...printed.keys()].sort(),
    bridges.map((b) => b.id).sort(),
    'info pci shows the same bridges',
  );
  for (const b of bridges) {
    const ours = { primary: b.primaryBus, secondary: b.secondaryBus, subordinate: b.subordinateBus };
    const { bdf, ...shown } = printed.get(b.id) ?? assert.fail(`${b.id} not in info pci`);
    assert.equal(b.bdf, bdf, `${b.id}: address`);
    assert.deepEqual(ours, shown, `${b.id}: bus numbers as info pci printed them`);
    assert.deepEqual(ours, savedBusNumbers(sections, b.path, b.kind), `${b.id}: bus numbers in the saved config space`);
  }
  // The numbers themselves, so a wrong fixture reading cannot hide a wrong enumeration.
  assert.deepEqual(
    bridges.map((b) => `${b.id} ${b.primaryBus}/${b.secondaryBus}/${b.subordinateBus}`),
    ['rp1 0/1/1', 'rp2 0/2/4', 'up1 2/3/4', 'dn1 3/4/4', 'rp3 0/5/5', 'pb1 0/6/6'],
  );
});

test('buildPciTree: conventional PCI behind the pcie-pci-bridge, multifunction bits, ids', () => {
  const desc = parseMachineDescription(fs.readFileSync(path.join(repoRoot, 'machines', 'q35-default.json'), 'utf8'), 'q35-default.json');
  const { rootBus, byId } = buildPciTree(desc);
  enumerateBuses(rootBus);
  assert.equal(byId.size, 16);
  assert.equal(byId.get('dma7')?.config.length, 256, 'behind the pcie-pci-bridge');
  assert.equal(byId.get('pb1')?.config.length, 4096, 'the bridge itself is PCI Express');
  assert.equal(byId.get('dma1')?.config.length, 4096);
  assert.equal((byId.get('dma5')?.config[0x0e] ?? 0) & 0x80, 0x80, 'two functions in slot 0: multifunction');
  assert.equal((byId.get('dma1')?.config[0x0e] ?? 0x80) & 0x80, 0);
  assert.deepEqual(
    allFunctions(rootBus).map((f) => `${f.id}@${f.bdf}`),
    [
      'rp1@00:03.0', 'dma1@01:00.0',
      'rp2@00:04.0', 'up1@02:00.0', 'dn1@03:00.0', 'dma2@04:00.0', 'dn2@03:01.0', 'dma3@05:00.0',
      'rp3@00:05.0', 'dma4@06:00.0',
      'rp4@00:06.0', 'dma5@07:00.0', 'dma6@07:00.1',
      'pb1@00:07.0', 'dma7@08:01.0',
      'dma8@00:08.0',
    ],
  );
});

test('a requester ID follows the bridge register as it is now, never a cached copy', () => {
  const desc = parseMachineDescription(JSON.stringify(FIXTURE_MACHINE), FIXTURE);
  const { rootBus, byId } = buildPciTree(desc);
  const net2 = byId.get('net2') ?? assert.fail('net2');
  assert.equal(net2.requesterId, 0x0000, 'before enumeration every secondary bus register is 0');
  enumerateBuses(rootBus);
  assert.equal(net2.requesterId, 0x0400);
  assert.equal(net2.bdf, '04:00.0');
  const dn1 = byId.get('dn1') ?? assert.fail('dn1');
  // A restore writes config space bytes directly; the next DMA must carry the new bus.
  dn1.config[PCI_SECONDARY_BUS] = 0x2a;
  assert.equal(net2.requesterId, 0x2a00);
  assert.equal(net2.bdf, '2a:00.0');
  const balloon = byId.get('balloon1') ?? assert.fail('balloon1');
  assert.equal(balloon.requesterId, (6 << 8) | (3 << 3));
  (byId.get('pb1') as PciBridge).setBusNumbers(0, 9, 9);
  assert.equal(balloon.requesterId, (9 << 8) | (3 << 3));
});

test('enumerating more than 255 bridges fails: a PCI segment has 256 buses', () => {
  // Built directly, past the description checks that would refuse it: one root port, a switch with
  // 254 downstream ports (slots 0..31, functions 0..7), so 256 bridges.
  const downstream: DeviceNode[] = Array.from({ length: 254 }, (_, i) => ({
    kind: 'switch-downstream' as const,
    id: `dn${i}`,
    slot: i >> 3,
    fn: i & 7,
    children: [],
  }));
  const desc: MachineDescription = {
    name: 'too-many-bridges',
    flavour: 'q35',
    machineType: 'pc-q35-7.2',
    ramBytes: 256 << 20,
    iommus: [{ id: 'dmar0', first: 0, last: 255 }],
    devices: [{ kind: 'root-port', id: 'rp1', slot: 1, fn: 0, children: [{ kind: 'switch-upstream', id: 'up1', slot: 0, fn: 0, children: downstream }] }],
  };
  assert.throws(() => enumerateBuses(buildPciTree(desc).rootBus), /more than 256 buses/);
  // One bridge fewer fits exactly: buses 0..255.
  const fits: MachineDescription = {
    ...desc,
    devices: [{ ...desc.devices[0], children: [{ ...desc.devices[0].children[0], children: downstream.slice(0, 253) }] }],
  };
  assert.equal(enumerateBuses(buildPciTree(fits).rootBus), 255);
});
