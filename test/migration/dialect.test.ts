// Live migration in QEMU 10.0's dialect: a source started with --qemu 10.0 sends the stream QEMU 10.0
// sends (the stream on the wire is checked through a tapping proxy, and QEMU 10.0's analyze-migration.py
// reads it as vmstate analyze does), and a destination loads either dialect whatever its own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { cliPath } from '../support/paths.js';
import { analyzeScript10OrSkip, runAnalyzeScript } from '../support/peer.js';
import {
  ForwardingProxy,
  prepareSource,
  queryStatus,
  queryWorkload,
  ReferenceMachine,
  waitFor,
  waitForMigration,
  withScope,
  writeMachine,
  type Scope,
} from './harness.js';

/** QEMU_VM_COMMAND (0x08), MIG_CMD_SWITCHOVER_START (be16 11), length (be16 0). */
const SWITCHOVER_START = Buffer.from([0x08, 0x00, 0x0b, 0x00, 0x00]);

/** Record types of the sections table `vmstate sections --json` prints, in stream order. */
function recordKinds(file: string): string[] {
  const r = spawnSync(process.execPath, [cliPath, 'sections', '--json', file], { encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, r.stderr);
  return (JSON.parse(r.stdout) as { type: string; idstr?: string; name?: string }[]).map((row) => `${row.type} ${row.idstr ?? row.name ?? ''}`.trim());
}

/**
 * Migrates a running source (started with `sourceArgs`) through a tapping proxy to a paused destination
 * (started with `destinationArgs`); checks the destination holds the source's state at switch-over and a
 * never-migrated machine's; returns the stream as it went over the wire, saved in the scope's folder.
 */
async function migrateTapped(scope: Scope, sourceArgs: readonly string[], destinationArgs: readonly string[]): Promise<string> {
  const machine = writeMachine(scope.dir, '64M');
  const reference = new ReferenceMachine(machine);
  const source = scope.spawnVm('source', machine, ['--rate', '50', ...sourceArgs]);
  const { vm: destination, uri } = await scope.spawnDestination('destination', machine, 'tcp', ['--paused', ...destinationArgs]);
  const src = await scope.monitor(source);
  const dst = await scope.monitor(destination);
  const proxy = await ForwardingProxy.start(scope, { port: Number(uri.split(':').at(-1)) }, { tap: true });
  await waitFor('the source to run 5 steps', async () => ((await queryWorkload(src.client)).step >= 5 ? true : undefined));
  await prepareSource(src.client, { 'max-bandwidth': 0 });
  await src.client.execute('migrate', { uri: proxy.uri });
  const info = await waitForMigration(src.client);
  assert.equal(info.status, 'completed', `migration ended ${info.status}: ${info['error-desc'] ?? ''}; destination: ${destination.log()}`);
  await waitFor('the destination to finish loading', async () => ((await queryStatus(dst.client)) === 'paused' ? true : undefined), 10_000);
  const arrived = await queryWorkload(dst.client);
  assert.deepEqual(arrived, await queryWorkload(src.client), 'the destination holds the source\'s state at switch-over');
  assert.deepEqual(arrived, reference.at(arrived.step));
  const file = path.join(scope.dir, 'wire.mig');
  fs.writeFileSync(file, proxy.tapped());
  return file;
}

test('vmstate vm --qemu 10.0 to vmstate vm --qemu 10.0: QEMU 10.0\'s stream on the wire, the state arrives whole', { timeout: 60_000 }, (t) =>
  withScope(async (scope) => {
    const file = await migrateTapped(scope, ['--qemu', '10.0'], ['--qemu', '10.0']);
    const kinds = recordKinds(file);
    assert.equal(kinds[0], 'configuration pc-q35-10.0');
    const end = kinds.indexOf('end ram');
    assert.deepEqual(kinds.slice(end - 2, end + 1), ['part ram', 'command SWITCHOVER_START', 'end ram']);
    assert.equal(kinds.filter((k) => k.startsWith('command')).length, 1);
    const desc = spawnSync(process.execPath, [cliPath, 'analyze', '--desc', file], { encoding: 'utf8', maxBuffer: 64 << 20 });
    assert.deepEqual(Object.keys(JSON.parse(desc.stdout) as object), ['configuration', 'page_size', 'devices']);

    const script = analyzeScript10OrSkip(t);
    if (script === null) return;
    const peer = runAnalyzeScript(['-f', file], { script });
    assert.equal(peer.status, 0, peer.stderr.slice(0, 2000));
    const ours = spawnSync(process.execPath, [cliPath, 'analyze', file], { encoding: 'utf8', maxBuffer: 256 << 20 });
    assert.equal(ours.stdout, peer.stdout, 'vmstate analyze prints what QEMU 10.0\'s analyze-migration.py prints');
  }),
);

test('either dialect loads into a destination of the other: 10.0 into a default (7.2) VM, 7.2 into a --qemu 10.0 VM', { timeout: 60_000 }, async () => {
  await withScope(async (scope) => {
    const kinds = recordKinds(await migrateTapped(scope, ['--qemu', '10.0'], []));
    assert.ok(kinds.includes('command SWITCHOVER_START'));
  });
  await withScope(async (scope) => {
    const file = await migrateTapped(scope, [], ['--qemu', '10.0']);
    const kinds = recordKinds(file);
    assert.equal(kinds[0], 'configuration pc-q35-7.2');
    assert.equal(fs.readFileSync(file).indexOf(SWITCHOVER_START), -1);
  });
});
