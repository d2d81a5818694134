// The engine against real QEMU 7.2 tools: analyze-migration.py reads a snapshot we write exactly as
// `vmstate analyze` does, and `vmstate order` flags QEMU 7.2's own virtio-mem ordering bug in a stream
// QEMU writes. Fails rather than skips when VMSTATE_REQUIRE_QEMU=1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  intelIommuVmsd,
  newPciDeviceState,
  pciBusVmsd,
  pcieRootPortVmsd,
} from '../src/machine/index.js';
import { RamHandler, SaveRegistry, saveSnapshot } from '../src/index.js';
import { cliPath } from './support/paths.js';
import { analyzeScriptOrSkip, runAnalyzeScript } from './support/peer.js';
import { migrateToFile, qemuOrSkip, startQemu } from './support/qemu.js';

function vmstate(...args: string[]) {
  const r = spawnSync(process.execPath, [cliPath, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('analyze-migration.py reads a snapshot vmstate writes, exactly as vmstate analyze does', (t) => {
  if (analyzeScriptOrSkip(t) === null) return;
  const registry = new SaveRegistry();
  const ram = new Uint8Array(1 << 20);
  ram.fill(0xa5, 0x3000, 0x5000);
  registry.register({ idstr: 'ram', handler: new RamHandler([{ name: 'pc.ram', data: ram }], { pagesPerIteration: 64 }) });
  const iommu = registry.register({
    idstr: 'iommu-intel',
    vmsd: intelIommuVmsd,
    state: { root: 0x1000n, intr_root: 0n, iq: 0n, intr_size: 0, iq_head: 0, iq_tail: 0, iq_size: 0, next_frcd_reg: 0, csr: new Array<number>(560).fill(0), iq_last_desc_type: 0, dmar_enabled: true, qi_enabled: false, intr_enabled: false, intr_eime: false },
  });
  for (const slot of [3, 4]) {
    const pci = newPciDeviceState(true);
    pci.config.set([0x36, 0x1b, 0x0c, 0x00], 0);
    pci.config[0x19] = slot - 2; // secondary bus
    registry.register({
      idstr: `0000:00:0${slot}.0/pcie-root-port`,
      vmsd: pcieRootPortVmsd,
      state: {
        'parent_obj.parent_obj.parent_obj': pci,
        'parent_obj.parent_obj.parent_obj.exp.aer_log': { log_num: 0, log_max: 8 },
        'parent_obj.parent_obj.parent_obj.parent_obj': { msix: new Uint8Array(17) },
      },
    });
  }
  registry.register({ idstr: 'PCIBUS', vmsd: pciBusVmsd, state: { nirq: 2, irq_count: [1, -1] } });
  assert.equal(iommu.sectionId, 1);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmstate-snap-'));
  try {
    const file = path.join(dir, 'ours.mig');
    const chunks: Buffer[] = [];
    saveSnapshot(registry, (c) => chunks.push(Buffer.from(c)), { machineName: 'pc-q35-7.2' });
    fs.writeFileSync(file, Buffer.concat(chunks));
    const peer = runAnalyzeScript(['-f', file]);
    assert.equal(peer.status, 0, peer.stderr);
    const ours = vmstate('analyze', file);
    assert.equal(ours.code, 0, ours.stderr);
    assert.equal(ours.stdout, peer.stdout);
    const keys = Object.keys(JSON.parse(peer.stdout) as object);
    assert.deepEqual(keys, ['ram (0)', '0000:00:03.0/pcie-root-port (2)', '0000:00:04.0/pcie-root-port (3)', 'iommu-intel (1)', 'PCIBUS (4)']);
    const desc = runAnalyzeScript(['-f', file, '-d', 'desc']);
    assert.equal(vmstate('analyze', '--desc', file).stdout, desc.stdout);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('QEMU 7.2 saves virtio-mem after the IOMMU (its priority sits on an inner VMSD): vmstate order flags it', { timeout: 60_000 }, async (t) => {
  const binary = qemuOrSkip(t, 'qemu-system-x86_64');
  if (binary === null) return;
  const vm = await startQemu({
    binary,
    args: [
      '-machine', 'q35,kernel-irqchip=split', '-accel', 'tcg', '-m', '64M,maxmem=1G,slots=1', '-nodefaults', '-S',
      '-object', 'memory-backend-ram,id=mem0,size=128M',
      '-device', 'virtio-mem-pci,memdev=mem0,id=vm0,requested-size=0',
      '-device', 'intel-iommu',
    ],
  });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmstate-vmem-'));
  try {
    const file = path.join(dir, 'vmem.mig');
    await migrateToFile(vm.qmp, file);
    const r = vmstate('order', file);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /^virtio-mem before IOMMUs: 0000:00:0[0-9a-f]\.0\/virtio-mem \(\d+\) \[virtio-mem\] at position \d+ should load before iommu-intel \(\d+\) \[iommu-intel\] at position 0: /);
    assert.match(r.stdout, /\n1 violation\(s\) in \d+ device sections\n$/);
  } finally {
    await vm.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
