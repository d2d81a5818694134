// A plain live migration between two VM processes over loopback TCP. The source is driven with QMP
// spoken by hand (RawQmpConnection: JSON lines over the socket), the destination with QmpClient.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { queryStatus, queryWorkload, RawQmpConnection, ReferenceMachine, waitFor, withScope, writeMachine, type MigrateInfo, type Workload } from './harness.js';

/** The members of QEMU's MigrationInfo (qapi/migration.json) a completed precopy reports. */
const INFO_NUMBERS = ['total-time', 'downtime', 'setup-time'] as const;
const RAM_NUMBERS = ['transferred', 'remaining', 'total', 'duplicate', 'normal', 'normal-bytes', 'dirty-sync-count', 'mbps', 'pages-per-second', 'dirty-pages-rate'] as const;

test('a plain migration completes: equal state at switch-over, the destination runs on, QEMU-shaped query-migrate and events', { timeout: 60_000 }, () =>
  withScope(async (scope) => {
    const machine = writeMachine(scope.dir, '64M');
    const reference = new ReferenceMachine(machine);
    const source = scope.spawnVm('source', machine, ['--rate', '50']);
    const { vm: destination, uri } = await scope.spawnDestination('destination', machine, 'tcp', ['--paused']);
    const src = await RawQmpConnection.connect(source.qmp);
    scope.defer(() => src.close());
    const dst = await scope.monitor(destination);

    // The source's workload has been going for a while before the migration starts.
    await waitFor('the source to run 10 steps', async () => ((await src.execute<Workload>('x-vmstate-query-workload')).step >= 10 ? true : undefined));
    assert.deepEqual(await src.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] }), {});
    assert.deepEqual(await src.execute('migrate', { uri }), {});

    const info = await waitFor(
      'the migration to end',
      async () => {
        const i = await src.execute<MigrateInfo>('query-migrate');
        return i.status === 'completed' || i.status === 'failed' || i.status === 'cancelled' ? i : undefined;
      },
      20_000,
    );
    assert.equal(info.status, 'completed', `migration ended ${info.status}: ${info['error-desc'] ?? ''}`);
    assert.equal((await src.execute<{ status: string }>('query-status')).status, 'postmigrate');

    // query-migrate has QEMU's members, with plausible values.
    for (const k of INFO_NUMBERS) assert.equal(typeof info[k], 'number', `query-migrate ${k}`);
    assert.ok(info.ram, 'query-migrate ram');
    for (const k of RAM_NUMBERS) assert.equal(typeof info.ram[k], 'number', `query-migrate ram.${k}`);
    const ram = info.ram;
    assert.equal(ram.total, 64 << 20);
    assert.equal(ram.remaining, 0);
    assert.equal(ram['normal-bytes'], ram.normal * 4096);
    assert.ok(ram.duplicate + ram.normal >= (64 << 20) / 4096, `every page sent at least once (duplicate ${ram.duplicate} + normal ${ram.normal})`);
    assert.ok(ram['dirty-sync-count'] >= 1);
    assert.ok(ram.mbps > 0 && ram['pages-per-second'] > 0);
    assert.ok(ram.transferred > ram['normal-bytes'], 'transferred counts the whole stream');
    assert.ok((info['total-time'] ?? 0) >= (info.downtime ?? 0) && (info['total-time'] ?? 0) >= (info['setup-time'] ?? 0));

    // The destination loaded everything and stays paused (--paused): the state equals the source's at
    // switch-over (the source is stopped in postmigrate) and a machine that never migrated.
    await waitFor('the destination to finish loading', async () => ((await queryStatus(dst.client)) === 'paused' ? true : undefined), 10_000);
    const atSwitchover = await src.execute<Workload>('x-vmstate-query-workload');
    const arrived = await queryWorkload(dst.client);
    assert.deepEqual(arrived, atSwitchover);
    assert.ok(arrived.step >= 10);
    assert.deepEqual(arrived, reference.at(arrived.step));
    const incoming = await dst.client.execute<MigrateInfo>('query-migrate');
    assert.equal(incoming.status, 'completed');
    assert.equal(incoming.ram?.transferred, ram.transferred, 'the destination received every byte the source counted');

    // Events on the source: MIGRATION setup -> active -> device -> completed, the guest stopped
    // (STOP) before the device state went, and no RESUME afterwards.
    const names = src.events.map((e) => (e.event === 'MIGRATION' ? `MIGRATION:${String(e.data?.status)}` : e.event)).filter((n) => n !== 'MIGRATION_PASS');
    assert.deepEqual(names, ['MIGRATION:setup', 'MIGRATION:active', 'STOP', 'MIGRATION:device', 'MIGRATION:completed']);

    // The destination goes on from there: RESUME, running, steps increasing, on the reference's track.
    assert.equal(dst.events.filter((e) => e.event === 'RESUME').length, 0, 'no RESUME before cont');
    await dst.client.execute('cont');
    await dst.client.waitForEvent('RESUME', () => true, 5000);
    assert.equal(await queryStatus(dst.client), 'running');
    const later = await waitFor(
      'the destination to run 5 more steps',
      async () => {
        const w = await queryWorkload(dst.client);
        return w.step >= arrived.step + 5 ? w : undefined;
      },
      10_000,
    );
    assert.deepEqual(later, reference.at(later.step));
    // The source stays where it stopped.
    assert.deepEqual(await src.execute<Workload>('x-vmstate-query-workload'), atSwitchover);
  }),
);

test(
  'a second migrate while the first is still connecting is refused: one destination, the source stops (raw QMP, pipelined)',
  { timeout: 30_000 },
  () =>
    withScope(async (scope) => {
      const machine = writeMachine(scope.dir, '64M');
      const source = scope.spawnVm('source', machine, ['--rate', '50']);
      const first = await scope.spawnDestination('first', machine, 'tcp');
      const second = await scope.spawnDestination('second', machine, 'tcp');
      const src = await RawQmpConnection.connect(source.qmp);
      scope.defer(() => src.close());
      const [a, b] = await Promise.all([scope.monitor(first.vm), scope.monitor(second.vm)]);
      // Both requests in one write: the second arrives while the first is connecting (status setup).
      src.send({ execute: 'migrate', arguments: { uri: first.uri }, id: 1 });
      src.send({ execute: 'migrate', arguments: { uri: second.uri }, id: 2 });
      const replies = new Map<unknown, Record<string, unknown>>();
      while (replies.size < 2) {
        const m = await src.nextMessage(5000);
        if ('id' in m) replies.set(m.id, m);
      }
      assert.deepEqual(replies.get(1), { return: {}, id: 1 });
      assert.equal((replies.get(2)?.error as { class?: string } | undefined)?.class, 'GenericError', `the second migrate answered ${JSON.stringify(replies.get(2))}`);
      const info = await waitFor('the migration to end', async () => {
        const i = await src.execute<MigrateInfo>('query-migrate');
        return i.status === 'completed' || i.status === 'failed' || i.status === 'cancelled' ? i : undefined;
      });
      assert.equal(info.status, 'completed');
      await waitFor('the first destination to run', async () => ((await queryStatus(a.client)) === 'running' ? true : undefined));
      // Exactly one copy of the guest runs.
      assert.equal((await src.execute<{ status: string }>('query-status')).status, 'postmigrate');
      assert.equal(await queryStatus(b.client), 'inmigrate');
    }),
);
