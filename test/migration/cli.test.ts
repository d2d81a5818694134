// The migration commands as users run them: `vmstate migrate` drives a VM over QMP with progress and
// its capture is a stream `vmstate analyze` reads; `vmstate demo` runs the whole story and verifies it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { cliPath } from '../support/paths.js';
import fs from 'node:fs';
import { waitFor, withScope, writeMachine } from './harness.js';

function run(args: string[], timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cliPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

test('vmstate migrate to a file: progress lines, exit 0, and the capture is a QEMU stream analyze reads', { timeout: 60_000 }, () =>
  withScope(async (scope) => {
    const machine = writeMachine(scope.dir, '64M');
    const vm = scope.spawnVm('source', machine, ['--rate', '50']);
    const capture = path.join(scope.dir, 'capture.mig');
    await waitFor('the source QMP socket', () => fs.existsSync(vm.qmp.slice(5)) || undefined, 15_000);
    const r = await run(['migrate', '--from', vm.qmp, '--to', `file:${capture}`, '--max-bandwidth', '0']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.match(lines.at(-1) ?? '', /^\[#{24}\] 100%  completed  sent [\d.]+ MiB  pass \d+  \d+ Mbit\/s  .*downtime \d+ ms$/);
    const analyzed = await run(['analyze', capture]);
    assert.equal(analyzed.code, 0, analyzed.stderr);
    const tree = JSON.parse(analyzed.stdout) as Record<string, unknown>;
    const keys = Object.keys(tree);
    assert.match(keys[0], /^ram \(0\)$/);
    assert.ok(keys.some((k) => k.startsWith('iommu-intel')));
    assert.ok(keys.at(-1)?.startsWith('globalstate'));
    const order = await run(['order', capture]);
    assert.equal(order.code, 0, order.stdout);
    const sections = await run(['sections', '--json', capture]);
    assert.ok((JSON.parse(sections.stdout) as unknown[]).length > 10);
  }),
);

test('vmstate migrate reports a failed migration on stderr and exits 1', { timeout: 60_000 }, () =>
  withScope(async (scope) => {
    const machine = writeMachine(scope.dir, '64M');
    const vm = scope.spawnVm('source', machine);
    await waitFor('the source QMP socket', () => fs.existsSync(vm.qmp.slice(5)) || undefined, 15_000);
    const r = await run(['migrate', '--from', vm.qmp, '--to', 'tcp:127.0.0.1:1']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^vmstate: migration failed: Failed to connect: .*\n$/);
  }),
);

test('vmstate demo migrates the default machine live and verifies it', { timeout: 120_000 }, async () => {
  const r = await run(['demo'], 110_000);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /at switch-over RAM hash and every DMA engine's registers equal on both sides/);
  assert.match(r.stdout, /its RAM equals a machine that never migrated/);
  assert.match(r.stdout, /iommu-intel +after 0000:00:07\.0\/pcie-pci-bridge#0: /);
});

test('vmstate vm never removes what is not a stale socket: a regular file given as --incoming or --qmp stays, with one line naming it', { timeout: 30_000 }, () =>
  withScope(async (scope) => {
    const machine = writeMachine(scope.dir, '64M');
    const precious = path.join(scope.dir, 'precious');
    fs.writeFileSync(precious, 'precious\n');
    const qmp = `unix:${path.join(scope.dir, 'q.qmp')}`;
    const incoming = await run(['vm', machine, '--qmp', qmp, '--incoming', `unix:${precious}`], 20_000);
    assert.equal(incoming.code, 1);
    // The banner (QMP address) may come before or after the failure.
    assert.ok(
      incoming.stderr.split('\n').includes(`vmstate vm: cannot listen on unix:${precious}: ${precious} is a regular file, not a socket; not removing it`),
      incoming.stderr,
    );
    const monitor = await run(['vm', machine, '--qmp', `unix:${precious}`], 20_000);
    assert.equal(monitor.code, 1);
    assert.equal(monitor.stderr, `vmstate: cannot listen on unix:${precious}: ${precious} is a regular file, not a socket; not removing it\n`);
    assert.equal(fs.readFileSync(precious, 'utf8'), 'precious\n');
  }),
);

test('vmstate migrate --return-path: completed once the destination said SHUT 0; refused for a file: URI with one line', { timeout: 60_000 }, () =>
  withScope(async (scope) => {
    const machine = writeMachine(scope.dir, '64M');
    const source = scope.spawnVm('source', machine, ['--rate', '50']);
    const { vm, uri } = await scope.spawnDestination('destination', machine, 'unix', ['--paused']);
    const dst = await scope.monitor(vm);
    await waitFor('the source QMP socket', () => fs.existsSync(source.qmp.slice(5)) || undefined, 15_000);
    const refused = await run(['migrate', '--from', source.qmp, '--to', `file:${path.join(scope.dir, 'x.mig')}`, '--return-path']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^vmstate: .*return-path capability needs a tcp: or unix: URI.*\n$/);
    const r = await run(['migrate', '--from', source.qmp, '--to', uri, '--return-path', '--max-bandwidth', '0']);
    assert.equal(r.code, 0, r.stderr);
    const caps = await dst.client.execute<{ status: string }>('query-migrate');
    assert.equal(caps.status, 'completed');
  }),
);
