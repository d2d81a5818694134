// A migration that breaks under the source: the destination process killed mid-stream, and the
// connection cut by a proxy. The source must end `failed`, run on with its state intact, and migrate
// fine afterwards; a destination that got part of a stream must exit non-zero without ever running.
// With the return path the connection is cut anywhere, both ways, and exactly one side must run.
import fs from 'node:fs';
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { seededRandom } from '../support/random.js';
import {
  assertDestinationGaveUp,
  assertRunsOnIntact,
  ForwardingProxy,
  migrateToFreshDestination,
  migrationStatuses,
  prepareSource,
  queryStatus,
  ReferenceMachine,
  streamSections,
  waitFor,
  waitForMigration,
  within,
  withScope,
  writeMachine,
  type AbortedDestination,
  type MigrateInfo,
  type ProxyOptions,
  type Scope,
} from './harness.js';
import { findVmdescTrailer } from '../../src/savevm/index.js';
import type { QmpClient } from '../../src/qmp/index.js';

/**
 * Migrates a 64 MiB source at 1 MB/s (the ~0.4 MB sent while the guest runs take ~0.4 s) to a
 * destination that `kill` ends once the first RAM pages went; checks the source fails, runs on intact
 * and then migrates to a fresh destination.
 */
async function killDestinationMidStream(kill: (pid: number, source: QmpClient) => Promise<void>): Promise<void> {
  await withScope(async (scope) => {
    const machine = writeMachine(scope.dir, '64M');
    const reference = new ReferenceMachine(machine);
    const source = scope.spawnVm('source', machine, ['--rate', '50']);
    const { vm, uri } = await scope.spawnDestination('destination', machine, 'tcp');
    const [src, dst] = await Promise.all([scope.monitor(source), scope.monitor(vm)]);
    await prepareSource(src.client, { 'max-bandwidth': 1_000_000 });
    await src.client.execute('migrate', { uri });
    await waitFor('the first RAM pages to go', async () => {
      const i = await src.client.execute<MigrateInfo>('query-migrate');
      return i.status === 'active' && (i.ram?.transferred ?? 0) > 100_000 ? true : undefined;
    });
    await kill(vm.child.pid as number, src.client);
    assert.equal(await within(vm.exited, 5000, 'the destination to die'), null);
    const info = await waitForMigration(src.client, 3000);
    assert.equal(info.status, 'failed');
    assert.equal(typeof info['error-desc'], 'string');
    assert.deepEqual(migrationStatuses(src.events), ['setup', 'active', 'failed']);
    assert.equal(src.events.filter((e) => e.event === 'STOP').length, 0, 'the guest was never stopped');
    assert.equal(dst.events.filter((e) => e.event === 'RESUME').length, 0);
    await assertRunsOnIntact(src.client, reference, 'destination killed');
    await migrateToFreshDestination(scope, src.client, machine, reference);
  });
}

test('the destination hangs, then is killed mid-stream: the source fails, runs on intact, a second attempt succeeds', { timeout: 30_000 }, () =>
  // Stopped first, the destination leaves what the source sends next unread, so its death resets the
  // connection (RST).
  killDestinationMidStream(async (pid, source) => {
    process.kill(pid, 'SIGSTOP');
    const sent = async () => (await source.execute<MigrateInfo>('query-migrate')).ram?.transferred ?? 0;
    const atStop = await sent();
    await waitFor('the source to send more to the stopped destination', async () => ((await sent()) > atStop ? true : undefined), 5000);
    process.kill(pid, 'SIGKILL');
  }),
);

test(
  'the destination killed mid-stream after reading all it got: the source fails, runs on intact, a second attempt succeeds',
  { timeout: 30_000 },
  () => killDestinationMidStream(async (pid) => void process.kill(pid, 'SIGKILL')),
);

/** Destinations started at once. */
const BATCH = 6;
/** Paces the source so that the proxy sees bytes about when they are sent. */
const BANDWIDTH = 2_000_000;
/** The return path's bytes: PONG 1, PONG 2, SHUT, 8 each. */
const PONG_2_END = 16;
const RETURN_PATH_BYTES = 24;

/** One cut: how the proxy cuts, and which side must end up running when that is known beforehand. */
interface Cut {
  readonly what: string;
  readonly proxy: ProxyOptions;
  /** Without a return path, or where the cut falls is known: the side that must run. */
  readonly runs?: 'source' | 'destination';
  /** Send unthrottled (a cut before the pause at PING 2 must not mistake a paced gap for it). */
  readonly unthrottled?: boolean;
}

/** What a cut series needs to know of the stream the machine sends. */
interface StreamShape {
  /** Bytes, with the return path's three commands (23 bytes) when it is on. */
  readonly size: number;
  /** Where the configuration record ends (OPEN_RETURN_PATH follows it). */
  readonly configurationEnd: number;
  /** Where the switch-over (the first END section) starts. */
  readonly switchover: number;
  /** The first byte the source sends after PONG 2 (EOF) to the end of the stream. */
  readonly afterPong: number;
  /** Where cuts without a return path stay below (four paced RAM sections before the switch-over). */
  readonly maxCutWithout: number;
}

/**
 * The shape of the stream a twin of the source sends, migrating to a file with the same pacing (a
 * file: URI cannot have a return path: its three commands are added by hand).
 */
async function measureStream(scope: Scope, machine: string, returnPath: boolean): Promise<StreamShape> {
  const probe = scope.spawnVm('probe', machine, ['--rate', '50']);
  const probeQmp = await scope.monitor(probe);
  const file = `${scope.dir}/probe.mig`;
  await prepareSource(probeQmp.client, { 'max-bandwidth': BANDWIDTH });
  await probeQmp.client.execute('migrate', { uri: `file:${file}` });
  const probeInfo = await waitForMigration(probeQmp.client, 10_000);
  assert.equal(probeInfo.status, 'completed');
  probe.child.kill('SIGKILL');
  const { rows, size } = await streamSections(file);
  assert.equal(size, probeInfo.ram?.transferred);
  const bytes = fs.readFileSync(file);
  const switchoverRow = rows.findIndex((r) => r.type === 'end' || r.type === 'full');
  assert.ok(switchoverRow >= 5, 'several RAM sections before the switch-over');
  const trailer = findVmdescTrailer(bytes, 0, size);
  assert.ok(trailer > 0, 'the probe has a trailer');
  const extra = returnPath ? 14 : 0;
  return {
    size: size + (returnPath ? 23 : 0),
    configurationEnd: 8 + 5 + bytes.readUInt32BE(9),
    switchover: rows[switchoverRow].offset + extra,
    // EOF and the trailer.
    afterPong: size - trailer + 1,
    maxCutWithout: rows[switchoverRow - 4].offset,
  };
}

/**
 * Migrates `count` times, each time to a new destination through a proxy that cuts as `cuts` says. When
 * the source runs on it must be `failed` and intact, and its destination must exit non-zero without ever
 * running; when the destination runs it must have completed and be intact, the source must not run, and
 * the destination becomes the source of the next migration. Exactly one side runs, every time.
 */
async function cutSeries(t: TestContext, scope: Scope, machine: string, cuts: readonly Cut[], options: { returnPath: boolean; cutWith: 'reset' | 'close' }): Promise<void> {
  const reference = new ReferenceMachine(machine);
  let source = scope.spawnVm('source', machine, ['--rate', '50']);
  let src = await scope.monitor(source);
  const prepare = async (client: QmpClient) => {
    await prepareSource(client, { 'max-bandwidth': BANDWIDTH });
    if (options.returnPath) await client.execute('migrate-set-capabilities', { capabilities: [{ capability: 'return-path', state: true }] });
  };
  await prepare(src.client);
  const outcomes: string[] = [];
  for (let b = 0; b < cuts.length; b += BATCH) {
    const batch = cuts.slice(b, b + BATCH);
    const destinations: (AbortedDestination & { uri: string })[] = await Promise.all(
      batch.map(async (_, i) => {
        const { vm, uri } = await scope.spawnDestination(`destination-${b + i}`, machine, 'unix');
        return { vm, uri, monitor: await scope.monitor(vm) };
      }),
    );
    for (const [i, cut] of batch.entries()) {
      const what = `cut ${b + i} (${cut.what})`;
      const d = destinations[i];
      const proxy = await ForwardingProxy.start(scope, { path: d.uri.slice('unix:'.length) }, { ...cut.proxy, cutWith: options.cutWith });
      await src.client.execute('migrate-set-parameters', { 'max-bandwidth': cut.unthrottled ? 0 : BANDWIDTH });
      src.events.length = 0;
      await src.client.execute('migrate', { uri: proxy.uri });
      const info = await waitForMigration(src.client, 5000, 10);
      const runs = (await queryStatus(src.client)) === 'running' ? 'source' : 'destination';
      if (cut.runs) assert.equal(runs, cut.runs, `${what}: the ${runs} runs; the source ended ${info.status}: ${info['error-desc'] ?? ''}`);
      if (cut.proxy.cutAfter !== undefined && proxy.cut) assert.equal(proxy.forwarded, cut.proxy.cutAfter, `${what}: bytes forwarded`);
      if (runs === 'source') {
        assert.ok(proxy.cut, `${what}: the source runs on although nothing was cut`);
        assert.equal(info.status, 'failed', `${what}: the source ended ${info.status}`);
        assert.equal(typeof info['error-desc'], 'string', `${what}: error-desc`);
        const code = await assertDestinationGaveUp(d, what);
        const after = await assertRunsOnIntact(src.client, reference, what);
        outcomes.push(`${proxy.forwarded}/${proxy.returned}:source:${code}:${after.step}`);
        continue;
      }
      // The destination runs: it completed, and the source, stopped, says why.
      assert.ok(options.returnPath, `${what}: without a return path the source stopped (${info.status}: ${info['error-desc'] ?? ''})`);
      if (info.status === 'failed') {
        assert.ok(proxy.cut, `${what}: failed without a cut`);
        assert.match(info['error-desc'] ?? '', /^the destination loaded the whole state but did not confirm it/, `${what}: error-desc`);
        assert.equal(await queryStatus(src.client), 'paused', `${what}: the source's run state`);
      } else {
        assert.equal(info.status, 'completed', `${what}: the source ended ${info.status}`);
        assert.equal(await queryStatus(src.client), 'postmigrate', `${what}: the source's run state`);
      }
      const dst = d.monitor.client;
      await waitFor(`${what}: the destination to run`, async () => ((await queryStatus(dst)) === 'running' ? true : undefined), 5000);
      assert.equal((await dst.execute<MigrateInfo>('query-migrate')).status, 'completed', `${what}: the destination's query-migrate`);
      const after = await assertRunsOnIntact(dst, reference, `${what}: the destination`);
      assert.equal(await queryStatus(src.client), runs === 'destination' && info.status === 'failed' ? 'paused' : 'postmigrate', `${what}: the source still stopped`);
      outcomes.push(`${proxy.forwarded}/${proxy.returned}:destination:${info.status}:${after.step}`);
      // The guest lives on there: the next migration starts from it.
      source.child.kill('SIGKILL');
      source = d.vm;
      src = d.monitor;
      await prepare(src.client);
    }
  }
  assert.equal(outcomes.length, cuts.length);
  t.diagnostic(`forwarded/returned:side that runs:exit code or source status:step after = ${outcomes.join(' ')}`);
  // And after all that, the machine still migrates.
  await migrateToFreshDestination(scope, src.client, machine, reference);
}

/**
 * Cuts over the whole of a stream with a return path, seeded: offsets over the stream (half uniform,
 * half log-uniform, so that the header and the first records get cut too) and just after the
 * configuration (OPEN_RETURN_PATH, PING 1); cuts `held` bytes before the pause at PING 2 (in PING 2, the
 * devices, the END section); cuts after PONG 2 (EOF, the trailer, its last byte); cuts on the return
 * path itself (in PONG 1, PONG 2, SHUT, and after SHUT). The one point left out, the return path cut
 * right after PONG 2, leaves neither side running: return-path.test.ts checks it.
 */
function returnPathCuts(shape: StreamShape, seed: number, counts: { offsets: number; early: number; paused: number; answered: number; returned: number }): Cut[] {
  const next = seededRandom(seed);
  const between = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1));
  const cuts: Cut[] = [];
  for (let i = 0; i < counts.offsets; i++) {
    const at = i % 2 === 0 ? between(1, shape.size) : Math.max(1, Math.floor(Math.exp(next() * Math.log(shape.size))));
    cuts.push({ what: `at byte ${at}`, proxy: { cutAfter: at } });
  }
  for (let i = 0; i < counts.early; i++) {
    const at = shape.configurationEnd + between(0, 14);
    cuts.push({ what: `at byte ${at}, by the return path's commands`, proxy: { cutAfter: at }, runs: 'source' });
  }
  const tail = shape.size - shape.afterPong - shape.switchover;
  for (let i = 0; i < counts.paused; i++) {
    // In PING 2, in the last device sections, anywhere in the switch-over, at the start of the END section.
    const held = i === 0 ? between(1, 9) : i === 1 ? between(10, 4096) : i === counts.paused - 1 ? between(tail - 64, tail) : between(10, tail);
    cuts.push({ what: `${held} bytes before PING 2's end`, proxy: { cutBeforePause: { held, quietMs: 200 } }, runs: 'source', unthrottled: true });
  }
  for (let i = 0; i < counts.answered; i++) {
    const then = i === 0 ? 1 : i === counts.answered - 1 ? shape.afterPong : between(2, shape.afterPong - 1);
    cuts.push({ what: `${then} bytes after PONG 2`, proxy: { cutAfterAnswer: { returned: PONG_2_END, then } }, runs: 'destination' });
  }
  for (let i = 0; i < counts.returned; i++) {
    const back = i % 2 === 0 ? between(1, PONG_2_END - 1) : between(PONG_2_END + 1, RETURN_PATH_BYTES);
    cuts.push({ what: `${back} bytes back`, proxy: { cutAfterReturned: back }, runs: back < PONG_2_END ? 'source' : 'destination' });
  }
  return cuts;
}

test('with the return path, the connection reset anywhere in the stream and on the return path, 23 times: exactly one side runs', { timeout: 150_000 }, (t) =>
  withScope(async (scope) => {
    const machine = writeMachine(scope.dir, '64M');
    const shape = await measureStream(scope, machine, true);
    const cuts = returnPathCuts(shape, 0x5eed_c07, { offsets: 10, early: 2, paused: 4, answered: 3, returned: 4 });
    t.diagnostic(`stream ~${shape.size} bytes, switch-over at ~${shape.switchover}, ${shape.afterPong} bytes after PONG 2`);
    await cutSeries(t, scope, machine, cuts, { returnPath: true, cutWith: 'reset' });
  }),
);

test('with the return path, the connection closed in order (FIN) anywhere, 6 times: exactly one side runs', { timeout: 60_000 }, (t) =>
  withScope(async (scope) => {
    const machine = writeMachine(scope.dir, '64M');
    const shape = await measureStream(scope, machine, true);
    const cuts = returnPathCuts(shape, 0xf1, { offsets: 2, early: 0, paused: 1, answered: 1, returned: 2 });
    await cutSeries(t, scope, machine, cuts, { returnPath: true, cutWith: 'close' });
  }),
);

// Without a return path the source reports completed once its last byte is handed to the kernel, so
// a cut in the switch-over, or just before it, may leave a completed source and a failed destination
// (README); cuts below it fail the source, which runs on, and the destination never runs.
test('without the return path, the connection reset at 4 seeded byte offsets before the switch-over: the source fails and runs on, the destination never runs', { timeout: 60_000 }, (t) =>
  withScope(async (scope) => {
    const machine = writeMachine(scope.dir, '64M');
    const shape = await measureStream(scope, machine, false);
    const next = seededRandom(0x5eed);
    const max = shape.maxCutWithout;
    const cuts: Cut[] = Array.from({ length: 4 }, (_, i) => {
      const at = i % 2 === 0 ? 1 + Math.floor(next() * max) : Math.max(1, Math.floor(Math.exp(next() * Math.log(max))));
      return { what: `at byte ${at}`, proxy: { cutAfter: at }, runs: 'source' };
    });
    await cutSeries(t, scope, machine, cuts, { returnPath: false, cutWith: 'reset' });
  }),
);
