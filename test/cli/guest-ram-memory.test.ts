// Guest RAM in transparent huge pages: the `vmstate` command sets glibc's tunable on its first line, so a
// VM process started by it has its written guest RAM in 2 MiB pages where the kernel offers them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { withHugePages } from '../../src/cli/huge-pages.js';
import { cliPath } from '../support/paths.js';

test('withHugePages adds the tunable to GLIBC_TUNABLES, keeping what is there and a choice already made', () => {
  assert.equal(withHugePages({}).GLIBC_TUNABLES, 'glibc.malloc.hugetlb=1');
  assert.equal(withHugePages({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' }).GLIBC_TUNABLES, 'glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1');
  assert.equal(withHugePages({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0' }).GLIBC_TUNABLES, 'glibc.malloc.hugetlb=0');
  assert.equal(withHugePages({ PATH: '/bin' }).PATH, '/bin');
});

/** AnonHugePages of a process, in KiB. */
function anonHugeKiB(pid: number): number {
  const m = /AnonHugePages:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  return Number(m?.[1] ?? 0);
}

test('a VM process run by the vmstate command has the guest RAM it wrote in huge pages', { timeout: 30_000 }, async (t) => {
  const thp = fs.existsSync('/sys/kernel/mm/transparent_hugepage/enabled') ? fs.readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8') : '[never]';
  if (thp.includes('[never]')) {
    t.diagnostic(`transparent huge pages are off on this host (${thp.trim()}): nothing to check`);
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmstate-thp-'));
  const data = path.join(dir, 'data.bin');
  fs.writeFileSync(data, Buffer.alloc(32 << 20, 0x5a));
  const qmp = path.join(dir, 'q.qmp');
  // Run as a user runs it: the file itself, its first line choosing how.
  const vm = spawn(cliPath, ['vm', 'q35-default', '--qmp', `unix:${qmp}`, '--paused', '--loader', `${data}@0x1000000`], { stdio: 'ignore' });
  try {
    for (const t0 = Date.now(); !fs.existsSync(qmp); await new Promise((r) => setTimeout(r, 50))) {
      assert.ok(Date.now() - t0 < 20_000 && vm.exitCode === null, 'the VM process to start');
    }
    const kib = anonHugeKiB(vm.pid as number);
    t.diagnostic(`AnonHugePages ${kib} kB after writing 32 MiB of guest RAM`);
    assert.ok(kib >= 16 << 10, `${kib} kB in huge pages`);
  } finally {
    vm.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
