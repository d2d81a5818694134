// The return-path capability: what goes over the wire both ways, the URIs that cannot have it, a
// destination that fails to load, and the one cut that leaves neither side running.
import fs from 'node:fs';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  assertDestinationGaveUp,
  assertRunsOnIntact,
  ForwardingProxy,
  prepareSource,
  queryStatus,
  queryWorkload,
  ReferenceMachine,
  waitFor,
  waitForMigration,
  withScope,
  writeMachine,
  type MigrateInfo,
} from './harness.js';
import type { QmpClient } from '../../src/qmp/index.js';

/** Turns the return-path capability on (and events, and the given parameters). */
async function prepareReturnPath(client: QmpClient, params: Readonly<Record<string, number>> = {}): Promise<void> {
  await prepareSource(client, params);
  await client.execute('migrate-set-capabilities', { capabilities: [{ capability: 'return-path', state: true }] });
}

const hex = (s: string) => Buffer.from(s.replace(/ /g, ''), 'hex');

test('return-path: off by default; on, the source sends OPEN_RETURN_PATH, PING 1 and PING 2, the destination answers PONG 1, PONG 2 and SHUT 0', { timeout: 30_000 }, () =>
  withScope(async (scope) => {
    const machine = writeMachine(scope.dir, '64M');
    const reference = new ReferenceMachine(machine);
    const source = scope.spawnVm('source', machine, ['--rate', '50']);
    const { vm, uri } = await scope.spawnDestination('destination', machine, 'tcp');
    const [src, dst] = await Promise.all([scope.monitor(source), scope.monitor(vm)]);
    const caps = await src.client.execute<{ capability: string; state: boolean }[]>('query-migrate-capabilities');
    assert.deepEqual(
      caps.find((c) => c.capability === 'return-path'),
      { capability: 'return-path', state: false },
    );
    await prepareReturnPath(src.client);
    const proxy = await ForwardingProxy.start(scope, { port: Number(uri.split(':')[2]) }, { tap: true });
    await src.client.execute('migrate', { uri: proxy.uri });
    const info = await waitForMigration(src.client, 20_000);
    assert.equal(info.status, 'completed', info['error-desc']);
    assert.equal(await queryStatus(src.client), 'postmigrate');

    // QEMU's return-path messages: be16 type, be16 length, be32 value.
    assert.deepEqual(proxy.tappedBack(), hex('0002 0004 00000001  0002 0004 00000002  0001 0004 00000000'));
    const stream = proxy.tapped();
    assert.equal(stream.length, info.ram?.transferred);
    // OPEN_RETURN_PATH and PING 1 right after the configuration record (u8 7, be32 length, the name).
    const configurationEnd = 8 + 5 + stream.readUInt32BE(9);
    assert.equal(stream[8], 0x07);
    assert.deepEqual(stream.subarray(configurationEnd, configurationEnd + 14), hex('08 0001 0000  08 0002 0004 00000001'));
    // PING 2 after the whole state, then EOF and the trailer.
    const end = stream.indexOf(hex('08 0002 0004 00000002 00 06'));
    assert.ok(end > configurationEnd, 'PING 2 before EOF');
    assert.equal(end + 10 + 5 + stream.readUInt32BE(end + 11), stream.length, 'the trailer ends the stream');

    await waitFor('the destination to run', async () => ((await queryStatus(dst.client)) === 'running' ? true : undefined), 10_000);
    assert.equal((await dst.client.execute<MigrateInfo>('query-migrate')).status, 'completed');
    await assertRunsOnIntact(dst.client, reference, 'the destination');
  }),
);

test('return-path: exec: and file: have no way back, so migrate refuses them', { timeout: 15_000 }, () =>
  withScope(async (scope) => {
    const machine = writeMachine(scope.dir, '64M');
    const src = await scope.monitor(scope.spawnVm('source', machine));
    await prepareReturnPath(src.client);
    for (const uri of [`file:${scope.dir}/x.mig`, 'exec:cat > /dev/null']) {
      await assert.rejects(src.client.execute('migrate', { uri }), (e: Error) => {
        assert.match(e.message, new RegExp(`the return-path capability needs a tcp: or unix: URI: ${uri.slice(0, 4)}: has no way back from the destination`));
        return true;
      });
    }
    assert.deepEqual(await src.client.execute('query-migrate'), {});
    assert.equal(await queryStatus(src.client), 'running');
  }),
);

test('return-path: a destination that fails to load sends SHUT 1; the source fails at once and runs on', { timeout: 20_000 }, () =>
  withScope(async (scope) => {
    const machine = writeMachine(scope.dir, '64M');
    const reference = new ReferenceMachine(machine);
    const source = scope.spawnVm('source', machine, ['--rate', '50']);
    // The same machine type with less RAM: the load fails at RAM's block list, after OPEN_RETURN_PATH.
    const smaller = writeMachine(scope.dir, '32M');
    fs.writeFileSync(smaller, JSON.stringify({ ...(JSON.parse(fs.readFileSync(smaller, 'utf8')) as object), name: 'q35-64m' }));
    const { vm, uri } = await scope.spawnDestination('destination', smaller, 'tcp');
    const [src, dst] = await Promise.all([scope.monitor(source), scope.monitor(vm)]);
    await prepareReturnPath(src.client, { 'max-bandwidth': 1_000_000 });
    const proxy = await ForwardingProxy.start(scope, { port: Number(uri.split(':')[2]) }, { tap: true });
    await src.client.execute('migrate', { uri: proxy.uri });
    const info = await waitForMigration(src.client, 5000);
    assert.equal(info.status, 'failed');
    assert.equal(info['error-desc'], 'the destination failed to load the stream (SHUT 1)');
    assert.deepEqual(proxy.tappedBack(), hex('0002 0004 00000001  0001 0004 00000001'));
    await assertDestinationGaveUp({ vm, monitor: dst }, 'wrong machine');
    await assertRunsOnIntact(src.client, reference, 'after SHUT 1');
  }),
);

test(
  'return-path: the one cut that leaves neither side running, just after PONG 2 reached the source: it stays paused with its state, and cont resumes it',
  { timeout: 20_000 },
  () =>
    withScope(async (scope) => {
      const machine = writeMachine(scope.dir, '64M');
      const reference = new ReferenceMachine(machine);
      const source = scope.spawnVm('source', machine, ['--rate', '50']);
      const { vm, uri } = await scope.spawnDestination('destination', machine, 'tcp');
      const [src, dst] = await Promise.all([scope.monitor(source), scope.monitor(vm)]);
      await prepareReturnPath(src.client);
      // PONG 1 and PONG 2 go back, then nothing more either way: the source's EOF never arrives.
      const proxy = await ForwardingProxy.start(scope, { port: Number(uri.split(':')[2]) }, { cutAfterReturned: 16 });
      await src.client.execute('migrate', { uri: proxy.uri });
      const info = await waitForMigration(src.client, 5000);
      assert.equal(info.status, 'failed');
      assert.match(info['error-desc'] ?? '', /^the destination loaded the whole state but did not confirm it \(the guest stays stopped, as the destination may be running it\): /);
      assert.equal(await queryStatus(src.client), 'paused');
      await assertDestinationGaveUp({ vm, monitor: dst }, 'cut after PONG 2');
      // Whoever drives the two sides knows the destination is gone: the source's guest goes on.
      const before = await queryWorkload(src.client);
      await src.client.execute('cont');
      const after = await assertRunsOnIntact(src.client, reference, 'cont after the cut');
      assert.ok(after.step > before.step);
    }),
);
