// migrate_cancel in each status the source can be cancelled in. Whatever the status, the source must
// end `cancelled`, keep running with its state as if no migration had been tried, the destination must
// exit non-zero without ever running, and a later migration to a fresh destination must succeed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  assertDestinationGaveUp,
  assertRunsOnIntact,
  ForwardingProxy,
  migrateToFreshDestination,
  migrationStatuses,
  prepareSource,
  RawQmpConnection,
  ReferenceMachine,
  sleep,
  waitFor,
  waitForMigration,
  withScope,
  writeMachine,
  type MigrateInfo,
  type Monitor,
  type Scope,
  type VmHandle,
} from './harness.js';

interface Setup {
  readonly machine: string;
  readonly reference: ReferenceMachine;
  readonly vm: VmHandle;
  readonly src: Monitor;
}

/** A running 64 MiB source (50 steps/s) with the events capability on. */
async function startSource(scope: Scope, params: Record<string, number>, machine = writeMachine(scope.dir, '64M')): Promise<Setup> {
  const reference = new ReferenceMachine(machine);
  const source = scope.spawnVm('source', machine, ['--rate', '50']);
  const src = await scope.monitor(source);
  await prepareSource(src.client, params);
  await waitFor('the source to run a few steps', async () => ((await src.client.execute<{ step: number }>('x-vmstate-query-workload')).step >= 3 ? true : undefined));
  return { machine, reference, vm: source, src };
}

/** The destination VM, waiting for the migration at `uri`, and its monitor. */
async function startDestination(scope: Scope, s: Setup, transport: 'tcp' | 'unix'): Promise<{ uri: string; dst: Parameters<typeof assertDestinationGaveUp>[0] }> {
  const { vm, uri } = await scope.spawnDestination('destination', s.machine, transport);
  return { uri, dst: { vm, monitor: await scope.monitor(vm) } };
}

/** What every cancel must leave behind (see the file comment). */
async function assertCancelledCleanly(scope: Scope, s: Setup, dst: Parameters<typeof assertDestinationGaveUp>[0], what: string): Promise<void> {
  const info = await waitForMigration(s.src.client, 3000);
  assert.equal(info.status, 'cancelled', `${what}: ended ${info.status} ${info['error-desc'] ?? ''}`);
  const statuses = migrationStatuses(s.src.events);
  assert.deepEqual(statuses.slice(-2), ['cancelling', 'cancelled'], `${what}: MIGRATION events ${statuses.join(' ')}`);
  await assertRunsOnIntact(s.src.client, s.reference, what);
  await assertDestinationGaveUp(dst, what);
  await migrateToFreshDestination(scope, s.src.client, s.machine, s.reference);
}

test('cancel in setup (after the header, throttled): cancelled, the source runs on intact, a new migration succeeds', { timeout: 30_000 }, () =>
  withScope(async (scope) => {
    // 200 bytes/s: the 76 bytes of header and RAM block list keep the source in setup for ~0.4 s.
    const s = await startSource(scope, { 'max-bandwidth': 200 });
    const { uri, dst } = await startDestination(scope, s, 'tcp');
    await s.src.client.execute('migrate', { uri });
    // Connected and sending: bytes are counted while the status is still setup.
    const before = await waitFor('the source to send its header in setup', async () => {
      const i = await s.src.client.execute<MigrateInfo>('query-migrate');
      return i.status === 'setup' && (i.ram?.transferred ?? 0) > 0 ? i : undefined;
    });
    assert.equal(before.status, 'setup');
    await s.src.client.execute('migrate_cancel');
    await assertCancelledCleanly(scope, s, dst, 'cancel in setup');
    assert.deepEqual(migrationStatuses(s.src.events).slice(0, 3), ['setup', 'cancelling', 'cancelled']);
  }),
);

test('cancel in active (max-bandwidth 1 MB/s): cancelled, the guest never stopped, a new migration succeeds', { timeout: 30_000 }, () =>
  withScope(async (scope) => {
    const s = await startSource(scope, { 'max-bandwidth': 1_000_000 });
    const { uri, dst } = await startDestination(scope, s, 'tcp');
    await s.src.client.execute('migrate', { uri });
    await s.src.client.waitForEvent('MIGRATION', (e) => e.data?.status === 'active', 5000);
    await sleep(50);
    assert.equal((await s.src.client.execute<MigrateInfo>('query-migrate')).status, 'active');
    await s.src.client.execute('migrate_cancel');
    await assertCancelledCleanly(scope, s, dst, 'cancel in active');
    assert.deepEqual(migrationStatuses(s.src.events).slice(0, 4), ['setup', 'active', 'cancelling', 'cancelled']);
    const firstAttempt = s.src.events.slice(0, s.src.events.findIndex((e) => e.event === 'MIGRATION' && e.data?.status === 'cancelled'));
    assert.equal(firstAttempt.filter((e) => e.event === 'STOP').length, 0, 'the guest was never stopped');
  }),
);

/**
 * The 64 MiB machine with 16 more root ports, each above an 8-function dma-engine: 128 more PCI Express
 * config spaces of 4 KiB, so the switch-over sends over 500 KiB of device state, more than the sockets
 * between the source and the proxy can hold, however much of the precopy is still queued in them.
 */
function writeBigSwitchoverMachine(dir: string): string {
  const file = writeMachine(dir, '64M');
  const json = JSON.parse(fs.readFileSync(file, 'utf8')) as { devices: unknown[] };
  for (let i = 0; i < 16; i++) {
    const children = Array.from({ length: 8 }, (_, fn) => ({ type: 'dma-engine', id: `dmax${i}.${fn}`, slot: 0, function: fn }));
    json.devices.push({ type: 'root-port', id: `rpx${i}`, slot: 9 + i, chassis: 100 + i, children });
  }
  fs.writeFileSync(file, JSON.stringify(json));
  return file;
}

test(
  'cancel in device (switch-over blocked on a slow link): cancelled, the guest resumes, a new migration succeeds',
  { timeout: 30_000 },
  () =>
    withScope(async (scope) => {
      // Unix sockets buffer ~200 KiB, less than the switch-over's device state alone (a quarter of a
      // second at the proxy's 2 MB/s), so behind a proxy that stops forwarding when the switch-over starts,
      // its writes must wait: the source sits in device. The generous downtime limit lets it switch over
      // after one pass, however much the engines dirty.
      const s = await startSource(scope, { 'max-bandwidth': 0, 'downtime-limit': 10_000 }, writeBigSwitchoverMachine(scope.dir));
      const { uri, dst } = await startDestination(scope, s, 'unix');
      const proxy = await ForwardingProxy.start(scope, { path: uri.slice('unix:'.length) }, { listenPath: path.join(scope.dir, 'proxy.sock'), bytesPerSecond: 2_000_000 });
      // Stop forwarding the moment the switch-over starts, so it cannot finish.
      s.src.client.on('event', (e) => {
        if (e.event === 'MIGRATION' && e.data?.status === 'device') proxy.hold();
      });
      await s.src.client.execute('migrate', { uri: proxy.uri });
      await s.src.client.waitForEvent('MIGRATION', (e) => e.data?.status === 'device' || e.data?.status === 'completed', 10_000);
      const inDevice = await s.src.client.execute<MigrateInfo>('query-migrate');
      const runstate = (await s.src.client.execute<{ status: string }>('query-status')).status;
      assert.equal(inDevice.status, 'device', `the switch-over went through (${runstate})`);
      assert.equal(runstate, 'paused');
      await s.src.client.execute('migrate_cancel');
      proxy.release(); // the destination gets what was sent, then the end of the stream
      await assertCancelledCleanly(scope, s, dst, 'cancel in device');
      const statuses = migrationStatuses(s.src.events);
      assert.deepEqual(statuses.slice(0, 5), ['setup', 'active', 'device', 'cancelling', 'cancelled']);
      assert.ok(s.src.events.some((e) => e.event === 'RESUME'), 'the source resumed its guest');
    }),
);

test(
  'cancel in active while the destination reads nothing: cancelled, a new migration succeeds',
  { timeout: 30_000 },
  () =>
    withScope(async (scope) => {
      const s = await startSource(scope, { 'max-bandwidth': 0 });
      const { uri, dst } = await startDestination(scope, s, 'unix');
      const proxy = await ForwardingProxy.start(scope, { path: uri.slice('unix:'.length) }, { listenPath: path.join(scope.dir, 'proxy.sock') });
      proxy.hold(); // the link is up but nothing moves: the source's writes block
      await s.src.client.execute('migrate', { uri: proxy.uri });
      await s.src.client.waitForEvent('MIGRATION', (e) => e.data?.status === 'active', 5000);
      await sleep(200);
      assert.equal((await s.src.client.execute<MigrateInfo>('query-migrate')).status, 'active');
      await s.src.client.execute('migrate_cancel');
      proxy.release();
      await assertCancelledCleanly(scope, s, dst, 'cancel with a stalled destination');
    }),
);

test(
  'cancel right after migrate, while connecting (pipelined over raw QMP): cancelled, the destination never runs',
  { timeout: 30_000 },
  () =>
    withScope(async (scope) => {
      const s = await startSource(scope, {});
      const { uri, dst } = await startDestination(scope, s, 'tcp');
      const raw = await RawQmpConnection.connect(s.vm.qmp);
      scope.defer(() => raw.close());
      // Both requests in one write: the cancel is handled while the source is still connecting (status setup).
      raw.send({ execute: 'migrate', arguments: { uri }, id: 'migrate' });
      raw.send({ execute: 'query-migrate', id: 'query' });
      raw.send({ execute: 'migrate_cancel', id: 'cancel' });
      const replies = new Map<unknown, Record<string, unknown>>();
      while (replies.size < 3) {
        const m = await raw.nextMessage(5000);
        if ('id' in m) replies.set(m.id, m);
      }
      assert.deepEqual(replies.get('migrate'), { return: {}, id: 'migrate' });
      // Usually still connecting (setup); on a fast loopback the connection may already be up (active).
      assert.ok(['setup', 'active'].includes(String((replies.get('query')?.return as MigrateInfo).status)));
      assert.deepEqual(replies.get('cancel'), { return: {}, id: 'cancel' });
      await assertCancelledCleanly(scope, s, dst, 'cancel while connecting');
    }),
);
