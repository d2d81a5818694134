// The machine's snapshots as users meet them: snapshot and restore through the CLI, and the snapshots
// read by vmstate analyze, vmstate order and QEMU 7.2's analyze-migration.py alike; with --qemu 10.0,
// written as QEMU 10.0 writes them and read by 10.0's script alike.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cliPath } from '../support/paths.js';
import { analyzeScript10OrSkip, analyzeScriptOrSkip, runAnalyzeScript } from '../support/peer.js';

function vmstate(...args: string[]) {
  const r = spawnSync(process.execPath, [cliPath, ...args], { encoding: 'utf8', maxBuffer: 256 << 20 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmstate-machine-'));
const good = path.join(dir, 'good.mig');
const legacy = path.join(dir, 'legacy.mig');
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));

test('snapshot and restore: the right order restores a working machine, the pre-2018 order does not', () => {
  const s = vmstate('snapshot', 'q35-default', good, '--steps', '3');
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, /^q35-default: ran 3 steps \(8 dma-engines, 1 VT-d unit\(s\)\)/);
  assert.match(s.stdout, /\norder: 0000:00:03\.0\/pcie-root-port, /);
  const r = vmstate('restore', good, 'q35-default', '--steps', '4', '--check-load-order');
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /at step 3\nran 4 more steps: every DMA result \(8 engines x 4 steps\) and the RAM hash equal the uninterrupted run\n$/);

  assert.equal(vmstate('snapshot', 'q35-default', legacy, '--steps', '3', '--legacy-order').code, 0);
  const broken = vmstate('restore', legacy, 'q35-default', '--steps', '2');
  assert.equal(broken.code, 1);
  assert.match(broken.stdout, /MISMATCH after restore: \d+ of 16 DMA results differ from the uninterrupted run \(\d+ faulted\); RAM hash differs\n/);
  assert.equal(broken.stderr, '');
  const guarded = vmstate('restore', legacy, 'q35-default', '--check-load-order');
  assert.equal(guarded.code, 1);
  assert.equal(guarded.stderr, 'vmstate: iommu-intel#0 (loaded at position 1) read the state of 0000:00:03.0/pcie-root-port#0, which is not in the stream before it\n');
});

test('vmstate order passes our snapshot and flags the legacy one', () => {
  assert.equal(vmstate('order', good).code, 0);
  const bad = vmstate('order', legacy);
  assert.equal(bad.code, 1);
  assert.match(bad.stdout, /^rules of QEMU 7\.2 \(the stream is from QEMU >= 7\.2: machine type pc-q35-7\.2\)\nbridges before IOMMUs: 0000:00:03\.0\/pcie-root-port \(\d+\) \[pcie-root-port\] at position \d+ should load before iommu-intel \(\d+\) \[iommu-intel\] at position 0/);
});

test('a bad machine description is one clear line', () => {
  const bad = path.join(dir, 'bad.json');
  fs.writeFileSync(bad, JSON.stringify({ name: 'x', flavour: 'q35', ram: '64M', iommus: [{ id: 'd', buses: [0, 255] }], devices: [{ type: 'switch-downstream', id: 'a', slot: 3 }] }));
  const r = vmstate('snapshot', bad, path.join(dir, 'x.mig'));
  assert.equal(r.code, 2);
  assert.equal(r.stderr.split('\n').length, 2);
  assert.match(r.stderr, /^vmstate: .*bad\.json: devices\[0\]: /);
});

test('QEMU 7.2 analyze-migration.py reads our machine snapshot exactly as vmstate analyze does', (t) => {
  if (analyzeScriptOrSkip(t) === null) return;
  const peer = runAnalyzeScript(['-f', good]);
  assert.equal(peer.status, 0, peer.stderr);
  const ours = vmstate('analyze', good);
  assert.equal(ours.stdout, peer.stdout);
  const tree = JSON.parse(ours.stdout) as Record<string, Record<string, unknown>>;
  const rp = Object.keys(tree).find((k) => k.startsWith('0000:00:03.0/pcie-root-port'));
  assert.ok(rp);
  const config = (tree[rp]['parent_obj.parent_obj.parent_obj'] as Record<string, string>)['config[1]'].split(' ');
  assert.equal(config[0x19], '01', 'the secondary bus SeaBIOS-style numbering gave the first root port');
  assert.ok(Object.keys(tree).includes('iommu-intel (1)'));
});

/** QEMU_VM_COMMAND (0x08), MIG_CMD_SWITCHOVER_START (be16 11), length (be16 0). */
const SWITCHOVER_START = Buffer.from([0x08, 0x00, 0x0b, 0x00, 0x00]);

interface SectionRow {
  readonly offset: number;
  readonly type: string;
  readonly idstr?: string;
  readonly name?: string;
}

test('snapshot --qemu 10.0: the stream QEMU 10.0 writes (pc-q35-10.0, SWITCHOVER_START before RAM\'s END, the configuration described); restore loads it', () => {
  const ten = path.join(dir, 'ten.mig');
  const s = vmstate('snapshot', 'q35-default', ten, '--steps', '3', '--qemu', '10.0');
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, /\nsaved .*ten\.mig: \d+ bytes as QEMU 10\.0 writes them \(pc-q35-10\.0\), RAM then /);
  const rows = JSON.parse(vmstate('sections', '--json', ten).stdout) as SectionRow[];
  assert.deepEqual(rows.slice(0, 1).map((r) => [r.type, r.name]), [['configuration', 'pc-q35-10.0']]);
  const end = rows.findIndex((r) => r.type === 'end');
  assert.deepEqual(rows.slice(end - 2, end + 1).map((r) => [r.type, r.idstr ?? r.name]), [['part', 'ram'], ['command', 'SWITCHOVER_START'], ['end', 'ram']]);
  const bytes = fs.readFileSync(ten);
  assert.equal(bytes.indexOf(SWITCHOVER_START), rows[end].offset - SWITCHOVER_START.length);
  const desc = JSON.parse(vmstate('analyze', '--desc', ten).stdout) as Record<string, unknown>;
  assert.deepEqual(Object.keys(desc), ['configuration', 'page_size', 'devices']);
  assert.match(vmstate('identify', ten).stdout, /^QEMU {10}>= 10\.0\n/);

  const r = vmstate('restore', ten, 'q35-default', '--steps', '4', '--check-load-order');
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /at step 3\nran 4 more steps: every DMA result \(8 engines x 4 steps\) and the RAM hash equal the uninterrupted run\n$/);
  const copy = path.join(dir, 'ten-copy.mig');
  assert.equal(vmstate('rewrite', ten, copy).code, 0);
  assert.ok(fs.readFileSync(copy).equals(bytes), 'rewrite gives the 10.0 stream back byte for byte');

  // The default stays 7.2's, and --qemu 7.2 names it.
  const seven = path.join(dir, 'seven.mig');
  assert.equal(vmstate('snapshot', 'q35-default', seven, '--steps', '3', '--qemu', '7.2').code, 0);
  assert.ok(fs.readFileSync(seven).equals(fs.readFileSync(good)), '--qemu 7.2 writes what the default writes');
  assert.equal(fs.readFileSync(good).indexOf(SWITCHOVER_START), -1);
  const bad = vmstate('snapshot', 'q35-default', path.join(dir, 'x.mig'), '--qemu', '9.2');
  assert.deepEqual([bad.code, bad.stderr], [2, 'vmstate: --qemu 9.2: expected one of 7.2, 10.0\n']);
});

for (const machine of ['q35-default', 'virt-smmuv3']) {
  test(`QEMU 10.0's analyze-migration.py reads our ${machine} snapshot --qemu 10.0 exactly as vmstate analyze does`, (t) => {
    const script = analyzeScript10OrSkip(t);
    if (script === null) return;
    const file = path.join(dir, `${machine}-10.mig`);
    assert.equal(vmstate('snapshot', machine, file, '--steps', '2', '--qemu', '10.0').code, 0);
    for (const args of [['-f', file], ['-d', 'desc', '-f', file]]) {
      const peer = runAnalyzeScript(args, { script });
      assert.equal(peer.status, 0, peer.stderr.slice(0, 2000));
      const ours = vmstate('analyze', ...(args[0] === '-d' ? ['--desc'] : []), file);
      assert.equal(ours.stdout, peer.stdout, `vmstate analyze ${args.join(' ')}`);
    }
  });
}
