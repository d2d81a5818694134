// Machine descriptions: every shipped machine loads, every rule fails with its exact message, and
// machines/large.json is what its generator writes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { IoError, UsageError } from '../../src/errors.js';
import { countBuses, loadMachineDescription, parseMachineDescription, type DeviceNode } from '../../src/machine/description.js';
import { largeMachine, largeMachineText } from '../../src/machine/large-machine.js';
import { repoRoot } from '../support/paths.js';

const machinesDir = path.join(repoRoot, 'machines');
const SOURCE = 'machines/x.json';

/** Every function of a description, parents first. */
function nodes(list: readonly DeviceNode[]): DeviceNode[] {
  return list.flatMap((d) => [d, ...nodes(d.children)]);
}

type Json = Record<string, unknown>;

/** A small valid description the bad inputs are made from. */
function base(): Json {
  return {
    name: 'x',
    flavour: 'q35',
    ram: '256M',
    iommus: [{ id: 'dmar0', buses: [0, 255] }],
    devices: [{ type: 'root-port', id: 'rp1', slot: 3, chassis: 1, children: [{ type: 'dma-engine', id: 'dma1', slot: 0 }] }],
  };
}

/** `base()` with top-level keys replaced (undefined removes the key). */
function withTop(patch: Json): string {
  const d: Json = { ...base(), ...patch };
  for (const [k, v] of Object.entries(patch)) if (v === undefined) delete d[k];
  return JSON.stringify(d);
}

/** `base()` with these devices on the root bus. */
function withDevices(devices: unknown): string {
  return withTop({ devices });
}

const rp = (id: string, slot: number, children: unknown[] = [], extra: Json = {}) => ({ type: 'root-port', id, slot, ...extra, children });
const dma = (id: string, slot: number, extra: Json = {}) => ({ type: 'dma-engine', id, slot, ...extra });

/** 248 root ports (slots 1..31, functions 0..7) and a switch with 7 downstream ports: 256 bridges. */
function tooManyBridges(): unknown[] {
  const ports: Json[] = [];
  for (let slot = 1; slot < 32; slot++) for (let fn = 0; fn < 8; fn++) ports.push(rp(`rp${slot}.${fn}`, slot, [], { function: fn }));
  const downstream = Array.from({ length: 7 }, (_, i) => ({ type: 'switch-downstream', id: `dn${i}`, slot: i }));
  ports[0].children = [{ type: 'switch-upstream', id: 'up', slot: 0, children: downstream }];
  return ports;
}

const BAD: readonly { readonly what: string; readonly text: string; readonly message: string | RegExp }[] = [
  { what: 'not JSON', text: '{"name": ', message: /^machines\/x\.json: not valid JSON: / },
  { what: 'not an object', text: '[]', message: 'machines/x.json: expected a JSON object, got []' },
  {
    what: 'unknown top-level key',
    text: withTop({ nmae: 'x' }),
    message: 'machines/x.json: nmae: unknown key (expected one of name, flavour, machineType, ram, iommus, devices)',
  },
  { what: 'name missing', text: withTop({ name: undefined }), message: 'machines/x.json: name: missing; expected a non-empty string' },
  { what: 'name empty', text: withTop({ name: '' }), message: 'machines/x.json: name: expected a non-empty string, got ""' },
  { what: 'flavour missing', text: withTop({ flavour: undefined }), message: 'machines/x.json: flavour: missing; expected "q35" or "virt"' },
  { what: 'flavour unknown', text: withTop({ flavour: 'x86' }), message: 'machines/x.json: flavour: expected "q35" or "virt", got "x86"' },
  {
    what: 'machine type of the other flavour',
    text: withTop({ machineType: 'virt-7.2' }),
    message: 'machines/x.json: machineType: "virt-7.2" is not a q35 machine type (pc-q35-*)',
  },
  {
    what: 'machine type newer than any QEMU vmstate writes',
    text: withTop({ machineType: 'pc-q35-10.1' }),
    message: 'machines/x.json: machineType: "pc-q35-10.1" is newer than QEMU 10.0, the newest whose streams vmstate writes',
  },
  {
    what: 'machine type not a string',
    text: withTop({ flavour: 'virt', machineType: 7.2 }),
    message: 'machines/x.json: machineType: expected a non-empty string, got 7.2',
  },
  { what: 'ram missing', text: withTop({ ram: undefined }), message: 'machines/x.json: ram: missing; expected a number of bytes or a string like "256M"' },
  {
    what: 'ram with a bad suffix',
    text: withTop({ ram: '256MB' }),
    message: 'machines/x.json: ram: expected a number of bytes or a string like "256M", got "256MB"',
  },
  { what: 'ram fractional', text: withTop({ ram: 1.5 }), message: 'machines/x.json: ram: expected a number of bytes or a string like "256M", got 1.5' },
  { what: 'ram too small', text: withTop({ ram: '8M' }), message: 'machines/x.json: ram: "8M" (8388608 bytes) is less than the minimum, 16 MiB' },
  { what: 'ram too large', text: withTop({ ram: '5G' }), message: 'machines/x.json: ram: "5G" (5368709120 bytes) is more than the maximum, 4 GiB' },
  { what: 'ram not whole pages', text: withTop({ ram: 16777217 }), message: 'machines/x.json: ram: 16777217 bytes is not a whole number of 4 KiB pages' },
  { what: 'iommus missing', text: withTop({ iommus: undefined }), message: 'machines/x.json: iommus: missing; expected a list of IOMMU units' },
  { what: 'iommus not a list', text: withTop({ iommus: {} }), message: 'machines/x.json: iommus: expected a list of IOMMU units, got {}' },
  { what: 'no IOMMU unit', text: withTop({ iommus: [] }), message: 'machines/x.json: iommus: at least one IOMMU unit is needed' },
  {
    what: 'unknown unit key',
    text: withTop({ iommus: [{ id: 'dmar0', bus: [0, 255] }] }),
    message: 'machines/x.json: iommus[0].bus: unknown key (expected one of id, buses)',
  },
  { what: 'unit id missing', text: withTop({ iommus: [{ buses: [0, 255] }] }), message: 'machines/x.json: iommus[0].id: missing; expected a non-empty string' },
  {
    what: 'unit buses missing',
    text: withTop({ iommus: [{ id: 'dmar0' }] }),
    message: 'machines/x.json: iommus[0].buses: missing; expected [first, last] with bus numbers 0..255',
  },
  {
    what: 'unit bus out of range',
    text: withTop({ iommus: [{ id: 'dmar0', buses: [0, 256] }] }),
    message: 'machines/x.json: iommus[0].buses: expected [first, last] with bus numbers 0..255, got [0,256]',
  },
  {
    what: 'unit range reversed',
    text: withTop({ iommus: [{ id: 'dmar0', buses: [9, 3] }] }),
    message: 'machines/x.json: iommus[0].buses: first bus 9 is after last bus 3',
  },
  {
    what: 'unit ranges overlap',
    text: withTop({ iommus: [{ id: 'dmar0', buses: [0, 40] }, { id: 'dmar1', buses: [32, 255] }] }),
    message: 'machines/x.json: iommus[1].buses: buses 32..40 are also translated by iommus[0] (dmar0)',
  },
  {
    what: 'unit ranges share one bus',
    text: withTop({ iommus: [{ id: 'dmar0', buses: [0, 32] }, { id: 'dmar1', buses: [32, 255] }] }),
    message: 'machines/x.json: iommus[1].buses: bus 32 is also translated by iommus[0] (dmar0)',
  },
  {
    what: 'unit ids repeat',
    text: withTop({ iommus: [{ id: 'dmar0', buses: [0, 1] }, { id: 'dmar0', buses: [2, 255] }] }),
    message: 'machines/x.json: iommus[1].id: "dmar0" is already used by iommus[0]',
  },
  { what: 'devices missing', text: withTop({ devices: undefined }), message: 'machines/x.json: devices: missing; expected a list of devices' },
  { what: 'devices not a list', text: withDevices({}), message: 'machines/x.json: devices: expected a list of devices, got {}' },
  { what: 'device not an object', text: withDevices([5]), message: 'machines/x.json: devices[0]: expected a device object, got 5' },
  {
    what: 'unknown device key',
    text: withDevices([{ ...dma('dma1', 3), fn: 1 }]),
    message: 'machines/x.json: devices[0].fn: unknown key (expected one of type, id, slot, function, chassis, children)',
  },
  {
    what: 'device type missing',
    text: withDevices([{ id: 'dma1', slot: 3 }]),
    message: 'machines/x.json: devices[0].type: missing; expected one of root-port, switch-upstream, switch-downstream, pcie-pci-bridge, dma-engine',
  },
  {
    what: 'device type unknown',
    text: withDevices([{ type: 'root_port', id: 'rp1', slot: 3 }]),
    message: 'machines/x.json: devices[0].type: expected one of root-port, switch-upstream, switch-downstream, pcie-pci-bridge, dma-engine, got "root_port"',
  },
  { what: 'device id empty', text: withDevices([dma('', 3)]), message: 'machines/x.json: devices[0].id: expected a non-empty string, got ""' },
  {
    what: 'device ids repeat',
    text: withDevices([rp('rp1', 3, [dma('rp1', 0)])]),
    message: 'machines/x.json: devices[0].children[0].id: "rp1" is already used by devices[0]',
  },
  {
    what: 'device id repeats a unit id',
    text: withDevices([dma('dmar0', 3)]),
    message: 'machines/x.json: devices[0].id: "dmar0" is already used by iommus[0]',
  },
  { what: 'slot missing', text: withDevices([{ type: 'dma-engine', id: 'dma1' }]), message: 'machines/x.json: devices[0].slot: missing; expected an integer 0..31' },
  { what: 'slot out of range', text: withDevices([dma('dma1', 32)]), message: 'machines/x.json: devices[0].slot: expected an integer 0..31, got 32' },
  { what: 'slot not an integer', text: withDevices([{ type: 'dma-engine', id: 'dma1', slot: '3' }]), message: 'machines/x.json: devices[0].slot: expected an integer 0..31, got "3"' },
  {
    what: 'function out of range',
    text: withDevices([dma('dma1', 3, { function: 8 })]),
    message: 'machines/x.json: devices[0].function: expected an integer 0..7, got 8',
  },
  { what: 'host bridge slot', text: withDevices([dma('dma1', 0)]), message: 'machines/x.json: devices[0].slot: slot 0 of the root bus is the host bridge' },
  {
    what: 'second slot on a root port link',
    text: withDevices([rp('rp1', 3, [dma('dma1', 1)])]),
    message: 'machines/x.json: devices[0].children[0].slot: only slot 0 exists below a root-port (a PCIe link), got 1',
  },
  {
    what: 'second slot on a downstream port link',
    text: withDevices([
      rp('rp1', 3, [{ type: 'switch-upstream', id: 'up1', slot: 0, children: [{ type: 'switch-downstream', id: 'dn1', slot: 0, children: [dma('dma1', 2)] }] }]),
    ]),
    message: 'machines/x.json: devices[0].children[0].children[0].children[0].slot: only slot 0 exists below a switch-downstream (a PCIe link), got 2',
  },
  {
    what: 'root port below a root port',
    text: withDevices([rp('rp1', 3, [rp('rp2', 0)])]),
    message: 'machines/x.json: devices[0].children[0]: a root-port must sit on the root bus',
  },
  {
    what: 'switch upstream port on the root bus',
    text: withDevices([{ type: 'switch-upstream', id: 'up1', slot: 3 }]),
    message: 'machines/x.json: devices[0]: a switch-upstream must sit under a root-port or switch-downstream',
  },
  {
    what: 'switch downstream port below a root port',
    text: withDevices([rp('rp1', 3, [{ type: 'switch-downstream', id: 'dn1', slot: 0 }])]),
    message: 'machines/x.json: devices[0].children[0]: a switch-downstream must sit under a switch-upstream',
  },
  {
    what: 'switch downstream port on the root bus',
    text: withDevices([{ type: 'switch-downstream', id: 'dn1', slot: 3 }]),
    message: 'machines/x.json: devices[0]: a switch-downstream must sit under a switch-upstream',
  },
  {
    what: 'pcie-pci-bridge on a switch internal bus',
    text: withDevices([rp('rp1', 3, [{ type: 'switch-upstream', id: 'up1', slot: 0, children: [{ type: 'pcie-pci-bridge', id: 'pb1', slot: 0 }] }])]),
    message: 'machines/x.json: devices[0].children[0].children[0]: a pcie-pci-bridge must sit on the root bus or under a root-port or switch-downstream',
  },
  {
    what: 'pcie-pci-bridge below a pcie-pci-bridge',
    text: withDevices([{ type: 'pcie-pci-bridge', id: 'pb1', slot: 3, children: [{ type: 'pcie-pci-bridge', id: 'pb2', slot: 1 }] }]),
    message: 'machines/x.json: devices[0].children[0]: a pcie-pci-bridge must sit on the root bus or under a root-port or switch-downstream',
  },
  {
    what: 'slot and function taken twice',
    text: withDevices([rp('rp1', 3), dma('dma1', 3)]),
    message: 'machines/x.json: devices[1]: slot 3 function 0 on the root bus is already taken by devices[0] (rp1)',
  },
  {
    what: 'slot and function taken twice below a bridge',
    text: withDevices([rp('rp1', 3, [dma('dma1', 0, { function: 2 }), dma('dma2', 0), dma('dma3', 0, { function: 2 })])]),
    message: 'machines/x.json: devices[0].children[2]: slot 0 function 2 on the bus below rp1 is already taken by devices[0].children[0] (dma1)',
  },
  {
    what: 'function without function 0',
    text: withDevices([rp('rp1', 3), dma('dma1', 4, { function: 1 })]),
    message: 'machines/x.json: devices[1]: slot 4 on the root bus has function 1 but no function 0',
  },
  {
    what: 'function without function 0 below a bridge',
    text: withDevices([{ type: 'pcie-pci-bridge', id: 'pb1', slot: 3, children: [dma('dma1', 5, { function: 3 })] }]),
    message: 'machines/x.json: devices[0].children[0]: slot 5 on the bus below pb1 has function 3 but no function 0',
  },
  {
    what: 'children on a dma-engine',
    text: withDevices([{ ...dma('dma1', 3), children: [] }]),
    message: 'machines/x.json: devices[0].children: a dma-engine cannot have children (only bridges can)',
  },
  {
    what: 'children not a list',
    text: withDevices([{ type: 'root-port', id: 'rp1', slot: 3, children: { type: 'dma-engine' } }]),
    message: 'machines/x.json: devices[0].children: expected a list of devices, got {"type":"dma-engine"}',
  },
  {
    what: 'chassis on a dma-engine',
    text: withDevices([dma('dma1', 3, { chassis: 1 })]),
    message: 'machines/x.json: devices[0].chassis: only a root-port or switch-downstream has a chassis',
  },
  {
    what: 'chassis out of range',
    text: withDevices([rp('rp1', 3, [], { chassis: 256 })]),
    message: 'machines/x.json: devices[0].chassis: expected an integer 0..255, got 256',
  },
  {
    what: 'chassis used twice',
    text: withDevices([rp('rp1', 3, [], { chassis: 1 }), rp('rp2', 4, [], { chassis: 1 })]),
    message: 'machines/x.json: devices[1].chassis: chassis 1 is already used by devices[0] (rp1)',
  },
  {
    what: 'more than 255 bridges',
    text: withDevices(tooManyBridges()),
    message: 'machines/x.json: devices: 256 bridges need 257 buses, more than the 256 of a PCI segment (at most 255 bridges)',
  },
  {
    what: 'buses no unit translates for',
    text: withTop({
      iommus: [{ id: 'dmar0', buses: [0, 0] }, { id: 'dmar1', buses: [2, 2] }],
      devices: [rp('rp1', 3), rp('rp2', 4), rp('rp3', 5), rp('rp4', 6)],
    }),
    message: 'machines/x.json: iommus: buses 1, 3..4 are not translated by any unit (the machine has buses 0..4)',
  },
  {
    what: 'one bus no unit translates for',
    text: withTop({ iommus: [{ id: 'dmar0', buses: [0, 0] }, { id: 'dmar1', buses: [2, 255] }], devices: [rp('rp1', 3), rp('rp2', 4)] }),
    message: 'machines/x.json: iommus: bus 1 is not translated by any unit (the machine has buses 0..2)',
  },
];

for (const { what, text, message } of BAD) {
  test(`a description is refused: ${what}`, () => {
    assert.throws(
      () => parseMachineDescription(text, SOURCE),
      (e: unknown) => {
        assert.ok(e instanceof UsageError, `expected a UsageError, got ${String(e)}`);
        if (typeof message === 'string') assert.equal(e.message, message);
        else assert.match(e.message, message);
        return true;
      },
    );
  });
}

test('the base of the bad inputs is itself valid', () => {
  const d = parseMachineDescription(JSON.stringify(base()), SOURCE);
  assert.equal(d.devices.length, 1);
});

test('defaults: no machine type (the machine has its flavour\'s), function 0, no chassis; RAM in bytes or with a suffix', () => {
  const q35 = parseMachineDescription(withDevices([dma('dma1', 3)]), SOURCE);
  assert.equal('machineType' in q35, false);
  assert.deepEqual(q35.devices, [{ kind: 'dma-engine', id: 'dma1', slot: 3, fn: 0, children: [] }]);
  assert.equal('chassis' in q35.devices[0], false);
  assert.equal(parseMachineDescription(withTop({ flavour: 'virt', machineType: 'virt' }), SOURCE).machineType, 'virt');
  assert.equal(parseMachineDescription(withTop({ ram: 33554432 }), SOURCE).ramBytes, 32 * 1024 * 1024);
  assert.equal(parseMachineDescription(withTop({ ram: '16384k' }), SOURCE).ramBytes, 16 * 1024 * 1024);
  assert.equal(parseMachineDescription(withTop({ ram: '4G' }), SOURCE).ramBytes, 4 * 1024 * 1024 * 1024);
  assert.deepEqual(parseMachineDescription(withTop({}), SOURCE).iommus, [{ id: 'dmar0', first: 0, last: 255 }]);
});

test('a missing description file is an IoError naming it', () => {
  const missing = path.join(machinesDir, 'no-such-machine.json');
  assert.throws(() => loadMachineDescription(missing), (e: unknown) => e instanceof IoError && e.message === `${missing}: no such file`);
});

test('every shipped machine loads', () => {
  const files = fs.readdirSync(machinesDir).filter((f) => f.endsWith('.json'));
  assert.ok(files.length >= 4);
  for (const f of files) {
    const d = loadMachineDescription(path.join(machinesDir, f));
    assert.equal(`${d.name}.json`, f, 'a machine is named after its file');
  }
});

test('the shipped machines have the buses, units and engines they promise', () => {
  const expected: Record<string, { buses: number; flavour: string; units: number; engines: number }> = {
    'q35-default': { buses: 9, flavour: 'q35', units: 1, engines: 8 },
    'q35-multi-iommu': { buses: 8, flavour: 'q35', units: 3, engines: 6 },
    'virt-smmuv3': { buses: 6, flavour: 'virt', units: 1, engines: 3 },
    large: { buses: 209, flavour: 'q35', units: 8, engines: 1024 },
  };
  for (const [name, want] of Object.entries(expected)) {
    const d = loadMachineDescription(path.join(machinesDir, `${name}.json`));
    const engines = nodes(d.devices).filter((n) => n.kind === 'dma-engine').length;
    assert.deepEqual({ buses: countBuses(d), flavour: d.flavour, units: d.iommus.length, engines }, want, name);
  }
  assert.equal(loadMachineDescription(path.join(machinesDir, 'large.json')).ramBytes, 1 << 30);
});

test('machines/large.json is what largeMachine() generates', () => {
  const text = fs.readFileSync(path.join(machinesDir, 'large.json'), 'utf8');
  assert.deepEqual(JSON.parse(text), largeMachine());
  assert.equal(text, largeMachineText(), 'regenerate machines/large.json from largeMachineText()');
});
