// The machine's snapshots as users meet them: snapshot and restore through the CLI, and the snapshots
// read by vmstate analyze, vmstate order and QEMU 7.2's analyze-migration.py alike.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cliPath } from '../support/paths.js';
import { analyzeScriptOrSkip, runAnalyzeScript } from '../support/peer.js';

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
