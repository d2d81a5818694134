// The engine against real QEMU tools: 7.2's analyze-migration.py reads a snapshot we write exactly as
// `vmstate analyze` does; `vmstate order` flags QEMU 7.2's own virtio-mem ordering bug in a stream QEMU
// 7.2 writes, and passes QEMU 10.0's, whose virtio-mem state goes early, by 10.0's rules. Fails rather
// than skips when VMSTATE_REQUIRE_QEMU=1.
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
import { migrateToFile, qemu10OrSkip, qemuOrSkip, startQemu } from './support/qemu.js';

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
    assert.match(r.stdout, /^rules of QEMU 7\.2 \(the stream is from QEMU >= 7\.2: machine type pc-q35-7\.2\)\nvirtio-mem before IOMMUs: 0000:00:0[0-9a-f]\.0\/virtio-mem \(\d+\) \[virtio-mem\] at position \d+ should load before iommu-intel \(\d+\) \[iommu-intel\] at position 0: /);
    assert.match(r.stdout, /\n1 violation\(s\) in \d+ device sections\n$/);
  } finally {
    await vm.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('QEMU 10.0 sends virtio-mem early (pc-q35-10.0): order ok by 10.0 rules, flagged by 7.2 ones; pc-q35-7.2 is not sent early', { timeout: 90_000 }, async (t) => {
  const q = qemu10OrSkip(t, 'qemu-system-x86_64');
  if (q === null) return;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmstate-vmem10-'));
  const save = async (machine: string) => {
    const vm = await startQemu({
      binary: q.binary,
      env: q.env,
      args: [
        ...q.args,
        '-machine', `${machine},kernel-irqchip=split`, '-accel', 'tcg', '-m', '64M,maxmem=1G,slots=1', '-nodefaults', '-S',
        '-object', 'memory-backend-ram,id=mem0,size=128M',
        '-device', 'virtio-mem-pci,memdev=mem0,id=vm0,requested-size=0',
        '-device', 'intel-iommu',
      ],
    });
    try {
      const file = path.join(dir, `${machine}.mig`);
      await migrateToFile(vm.qmp, file);
      return file;
    } finally {
      await vm.stop();
    }
  };
  try {
    const early = await save('pc-q35-10.0');
    const own = vmstate('order', early);
    assert.equal(own.code, 0, own.stdout + own.stderr);
    assert.match(own.stdout, /^rules of QEMU 10\.0 \(the stream is from QEMU >= 10\.0: machine type pc-q35-10\.0\)\norder ok: \d+ device sections, 5 rules, no violation\n$/);
    // 7.2 knew no early setup: the early section is a PCI device before the IOMMU, and "virtio-mem" comes after it.
    const old = vmstate('order', '--qemu', '7.2', early);
    assert.equal(old.code, 1);
    assert.match(old.stdout, /^rules of QEMU 7\.2 \(--qemu 7\.2\)\nIOMMUs before PCI devices: iommu-intel \(\d+\) \[iommu-intel\] at position 1 should load before 0000:00:0[0-9a-f]\.0\/virtio-mem-device-early \(\d+\) \[virtio-mem-device-early\] at position 0: /);
    assert.match(old.stdout, /\nvirtio-mem before IOMMUs: 0000:00:0[0-9a-f]\.0\/virtio-mem \(\d+\) \[virtio-mem\] at position \d+ should load before iommu-intel/);
    assert.match(old.stdout, /\n2 violation\(s\) in \d+ device sections\n$/);

    // x-early-migration is off for machine types <= 7.2 (hw_compat_7_2): the bitmap stays in "virtio-mem", after the IOMMU.
    const late = vmstate('order', await save('pc-q35-7.2'));
    assert.equal(late.code, 1);
    assert.match(late.stdout, /^rules of QEMU 9\.1 \(the stream is from QEMU >= 9\.1\.3: .*\)\nvirtio-mem before IOMMUs: 0000:00:0[0-9a-f]\.0\/virtio-mem \(\d+\) \[virtio-mem\] at position \d+ should load before iommu-intel \(\d+\) \[iommu-intel\] at position 0: /);
    assert.match(late.stdout, /\n1 violation\(s\) in \d+ device sections\n$/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
