// Our declaration of QEMU 7.2's "smmuv3" section against a real one: loading the section and saving it
// again gives QEMU's bytes, and the description we write is the one QEMU wrote.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { smmuv3Vmsd, type Smmuv3State } from '../../src/machine/layouts/smmuv3.js';
import { fixturesDir } from '../support/paths.js';
import { sectionBody } from '../support/sections.js';
import { load, save } from '../support/vmsd.js';

const VIRT = path.join(fixturesDir, 'aarch64-virt-smmuv3-2rp-paused.mig');

test('smmuv3 loads from and saves to QEMU 7.2 bytes and description', async () => {
  const { body, version, desc } = await sectionBody(VIRT, 'smmuv3');
  assert.equal(version, 1);
  const state = load(smmuv3Vmsd, body, version) as Smmuv3State;
  const again = save(smmuv3Vmsd, state);
  assert.deepEqual(again.bytes, [...body], "smmuv3: saved bytes differ from QEMU's");
  const { name: _n, instance_id: _i, ...qemuDesc } = desc;
  const qemuText = JSON.stringify(qemuDesc).replace(/,(["{[])/g, ', $1').replace(/":/g, '": ');
  assert.equal(again.desc, qemuText, "smmuv3: description differs from QEMU's");

  // What QEMU 7.2's smmuv3_init_regs leaves in a guest that never ran: no stream table, SMMUEN off,
  // sid_size never set, and SMMU_CMDQS = SMMU_EVENTQS = 19 only in each queue base's LOG2SIZE bits [4:0]
  // (the log2size field is filled when the guest writes the base).
  // features, sid_size/split, cr[3], cr0ack..gerrorn, gerror_irq_cfg0..2, strtab_base(_cfg), eventq_irq_cfg0..2, queues:
  assert.equal(body.length, 4 + 2 + 12 + 5 * 4 + 16 + 12 + 16 + 17 * 2);
  assert.equal(state.sid_size, 0);
  assert.deepEqual(state.cr, [0, 0, 0]);
  assert.equal(state.strtab_base, 0n);
  assert.deepEqual(state.cmdq, { base: 19n, prod: 0, cons: 0, log2size: 0 });
  assert.deepEqual(state.eventq, { base: 19n, prod: 0, cons: 0, log2size: 0 });
});
