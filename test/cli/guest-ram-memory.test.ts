// How a VM process holds its guest RAM: in transparent huge pages (the `vmstate` command sets glibc's
// tunable on its first line), and with --mem-prealloc mapped in full at start-up.
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

/** A field of /proc/PID/smaps_rollup (AnonHugePages, Rss), in KiB. */
function memoryKiB(pid: number, field: string): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  return Number(m?.[1] ?? 0);
}

/** Starts `vmstate vm q35-default ARGS` through the command file and waits for its QMP socket. */
async function startVm(dir: string, args: string[]): Promise<ReturnType<typeof spawn>> {
  const qmp = path.join(dir, `q${args.length}.qmp`);
  // Run as a user runs it: the file itself, its first line choosing how.
  const vm = spawn(cliPath, ['vm', 'q35-default', '--qmp', `unix:${qmp}`, '--paused', ...args], { stdio: 'ignore' });
  for (const t0 = Date.now(); !fs.existsSync(qmp); await new Promise((r) => setTimeout(r, 50))) {
    assert.ok(Date.now() - t0 < 20_000 && vm.exitCode === null, 'the VM process to start');
  }
  return vm;
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
  const vm = await startVm(dir, ['--loader', `${data}@0x1000000`]);
  try {
    const kib = memoryKiB(vm.pid as number, 'AnonHugePages');
    t.diagnostic(`AnonHugePages ${kib} kB after writing 32 MiB of guest RAM`);
    assert.ok(kib >= 16 << 10, `${kib} kB in huge pages`);
  } finally {
    vm.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('--mem-prealloc maps all of guest RAM at start-up; without it, a waiting destination holds little', { timeout: 30_000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmstate-prealloc-'));
  const port = String(40000 + Math.floor(Math.random() * 20000));
  const lazy = await startVm(dir, ['--incoming', `tcp:127.0.0.1:${port}`]);
  const eager = await startVm(dir, ['--incoming', `tcp:127.0.0.1:${Number(port) + 1}`, '--mem-prealloc']);
  try {
    const [l, e] = [memoryKiB(lazy.pid as number, 'Rss'), memoryKiB(eager.pid as number, 'Rss')];
    t.diagnostic(`Rss ${l} kB without, ${e} kB with --mem-prealloc (q35-default: 256 MiB of guest RAM)`);
    assert.ok(e >= l + (240 << 10), `${e} kB against ${l} kB`);
  } finally {
    lazy.kill('SIGKILL');
    eager.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
