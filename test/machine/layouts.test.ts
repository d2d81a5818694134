// Our declarations of QEMU's layouts against real QEMU 7.2 sections: loading a section and saving it
// again gives QEMU's bytes, and the description we write is the one QEMU wrote.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { intelIommuVmsd, pciBusVmsd, pcieRootPortVmsd } from '../../src/machine/index.js';
import type { Vmsd } from '../../src/index.js';
import { fixturesDir } from '../support/paths.js';
import { sectionBody } from '../support/sections.js';
import { load, save } from '../support/vmsd.js';

const BIOS = path.join(fixturesDir, 'q35-iommu-3rp-switch-bios.mig');

async function roundTrip<S extends object>(vmsd: Vmsd<S>, idstr: string, instanceId = 0, local: object = {}): Promise<S> {
  const { body, version, desc } = await sectionBody(BIOS, idstr, instanceId);
  const state = load(vmsd, body, version, local) as S;
  const again = save(vmsd, state);
  assert.deepEqual(again.bytes, [...body], `${idstr}: saved bytes differ from QEMU's`);
  const { name: _n, instance_id: _i, ...qemuDesc } = desc;
  assert.equal(again.desc, JSON.stringify(qemuDesc).replace(/,(["{[])/g, ', $1').replace(/":/g, '": '), `${idstr}: description differs from QEMU's`);
  return state;
}

test('iommu-intel loads from and saves to QEMU 7.2 bytes and description', async () => {
  const s = await roundTrip(intelIommuVmsd, 'iommu-intel');
  assert.equal(s.csr.length, 560);
});

test('pcie-root-port loads from and saves to QEMU 7.2 bytes; SeaBIOS set the secondary bus', async () => {
  const s = await roundTrip(pcieRootPortVmsd, '0000:00:03.0/pcie-root-port', 0, {
    'parent_obj.parent_obj.parent_obj': { config: new Uint8Array(4096) },
    'parent_obj.parent_obj.parent_obj.exp.aer_log': { log_max: 8 },
  });
  const config = s['parent_obj.parent_obj.parent_obj'].config;
  assert.equal(config[0x19], 1, 'secondary bus of the first root port');
});

test('PCIBUS with and without interrupt counters', async () => {
  const root = await roundTrip(pciBusVmsd, 'PCIBUS', 0, { nirq: 8 });
  assert.deepEqual(root.irq_count.length, 8);
  const bridged = await roundTrip(pciBusVmsd, 'PCIBUS', 1, { nirq: 0 });
  assert.deepEqual(bridged.irq_count, []);
});
