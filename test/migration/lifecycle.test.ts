// The migration objects in one process, without QMP: one OutgoingMigration (or IncomingMigration) answers
// query-migrate and reports every status from setup on, connecting included; a failure is a MigrationError
// with the phase it happened in and the error under it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { RamHandler, saveSnapshot, SaveRegistry, StreamTruncatedError, UsageError } from '../../src/index.js';
import { DEFAULT_PARAMETERS, IncomingMigration, MigrationError, OutgoingMigration, type MigratableVm, type MigrationStatus } from '../../src/migration/index.js';
import { seededRandom } from '../support/random.js';
import { toyMachine } from '../support/toy-machine.js';

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmstate-lifecycle-'));
  test.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A running VM around `registry` that counts its pauses and resumes. */
class ToyVm implements MigratableVm {
  readonly machineType = 'toy';
  running = true;
  pauses = 0;
  resumes = 0;

  constructor(readonly registry: SaveRegistry) {}

  pause(): void {
    this.running = false;
    this.pauses++;
  }

  resume(): void {
    this.running = true;
    this.resumes++;
  }
}

/** Every status `state` moves to, in order. */
function statusesOf(m: { state: { onChange(l: (s: MigrationStatus) => void): void } }): MigrationStatus[] {
  const seen: MigrationStatus[] = [];
  m.state.onChange((s) => seen.push(s));
  return seen;
}

test('a migration between two registries in one process: every status from setup on, and the state arrives', async () => {
  const dir = tempDir();
  const from = toyMachine({ seed: 7 });
  const to = toyMachine();
  const uri = `unix:${path.join(dir, 'm.sock')}`;
  const incoming = new IncomingMigration(to.registry, 'toy', uri);
  const inStatuses = statusesOf(incoming);
  let loaded!: Promise<MigrationStatus>;
  const listening = new Promise<string>((onListening) => (loaded = incoming.run({ onListening })));
  assert.equal(await listening, uri);

  const vm = new ToyVm(from.registry);
  const outgoing = new OutgoingMigration(vm, uri, { ...DEFAULT_PARAMETERS, maxBandwidth: 0 });
  const outStatuses = statusesOf(outgoing);
  const done = outgoing.run();
  assert.deepEqual(outgoing.info(), { status: 'setup' }, 'connecting: only the status');
  assert.equal(await done, 'completed');
  assert.equal(await loaded, 'completed');
  assert.deepEqual(outStatuses, ['setup', 'active', 'device', 'completed']);
  assert.deepEqual(inStatuses, ['setup', 'active', 'completed']);
  assert.deepEqual({ pauses: vm.pauses, resumes: vm.resumes }, { pauses: 1, resumes: 0 });
  assert.deepEqual(to.ram, from.ram);
  assert.deepEqual(to.nic, from.nic);
  assert.equal(outgoing.error, undefined);
});

test('a connection that cannot be made: setup, then failed with "Failed to connect", a MigrationError of phase setup', async () => {
  const socket = path.join(tempDir(), 'nobody.sock');
  const vm = new ToyVm(toyMachine().registry);
  const m = new OutgoingMigration(vm, `unix:${socket}`, DEFAULT_PARAMETERS);
  const statuses = statusesOf(m);
  assert.equal(await m.run(), 'failed');
  assert.deepEqual(statuses, ['setup', 'failed']);
  assert.deepEqual(m.info(), { status: 'failed', 'error-desc': `Failed to connect: connect ENOENT ${socket}` });
  assert.ok(m.error instanceof MigrationError);
  assert.equal(m.error.phase, 'setup');
  assert.equal((m.error.cause as NodeJS.ErrnoException).code, 'ENOENT');
  assert.deepEqual(m.error.toJSON(), { name: 'MigrationError', code: 'MIGRATION', message: m.error.message, data: { phase: 'setup' } });
});

test('a cancel while connecting: setup, cancelling, cancelled; the connection made is dropped unused', async () => {
  const socket = path.join(tempDir(), 'peer.sock');
  const server = net.createServer();
  const received = new Promise<number>((resolve) =>
    server.once('connection', (s) => {
      let n = 0;
      s.on('data', (d) => (n += d.length));
      s.on('close', () => resolve(n));
    }),
  );
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  const m = new OutgoingMigration(new ToyVm(toyMachine().registry), `unix:${socket}`, DEFAULT_PARAMETERS);
  const statuses = statusesOf(m);
  const done = m.run();
  m.cancel();
  assert.equal(await done, 'cancelled');
  assert.deepEqual(statuses, ['setup', 'cancelling', 'cancelled']);
  assert.deepEqual(m.info(), { status: 'cancelled' });
  assert.equal(m.error, undefined);
  server.close();
  assert.equal(await received, 0, 'bytes the peer got');
});

test('a connection closed by the peer while RAM goes: failed in phase active, the guest never stopped', async () => {
  // 8 MiB of random pages at 1 MB/s: the peer hangs up after 64 KiB, long before the switch-over.
  const next = seededRandom(0x11fe);
  const ram = new Uint8Array(8 << 20).map(() => (next() * 256) | 0);
  const registry = new SaveRegistry();
  registry.register({ idstr: 'ram', handler: new RamHandler([{ name: 'pc.ram', data: ram }]) });
  const socket = path.join(tempDir(), 'peer.sock');
  const server = net.createServer((s) => {
    let n = 0;
    s.on('data', (d) => {
      n += d.length;
      if (n > 64 << 10) s.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  const vm = new ToyVm(registry);
  const m = new OutgoingMigration(vm, `unix:${socket}`, { ...DEFAULT_PARAMETERS, maxBandwidth: 1_000_000 });
  const statuses = statusesOf(m);
  assert.equal(await m.run(), 'failed');
  server.close();
  assert.deepEqual(statuses, ['setup', 'active', 'failed']);
  assert.equal(m.error?.phase, 'active');
  assert.equal(m.info()['error-desc'], m.error?.message);
  assert.deepEqual({ pauses: vm.pauses, resumes: vm.resumes }, { pauses: 0, resumes: 0 });
});

test('the destination: a stream cut short fails in phase load; an address it cannot listen on leaves it in none, phase setup', async () => {
  const dir = tempDir();
  const chunks: Uint8Array[] = [];
  saveSnapshot(toyMachine({ seed: 3 }).registry, (c) => chunks.push(c.slice()), { machineName: 'toy' });
  const whole = Buffer.concat(chunks);
  const cut = path.join(dir, 'cut.mig');
  fs.writeFileSync(cut, whole.subarray(0, whole.length - 40));

  const incoming = new IncomingMigration(toyMachine().registry, 'toy', `file:${cut}`);
  const statuses = statusesOf(incoming);
  assert.equal(await incoming.run(), 'failed');
  assert.deepEqual(statuses, ['setup', 'active', 'failed']);
  assert.equal(incoming.error?.phase, 'load');
  assert.ok(incoming.error?.cause instanceof StreamTruncatedError);
  assert.equal(incoming.info()['error-desc'], incoming.error?.cause.message);

  for (const [uri, cause] of [
    [`unix:${path.join(dir, 'no', 'such', 'dir.sock')}`, Error],
    ['carrier-pigeon:home', UsageError],
  ] as const) {
    const m = new IncomingMigration(toyMachine().registry, 'toy', uri);
    const seen = statusesOf(m);
    assert.equal(await m.run(), 'none', uri);
    assert.deepEqual(seen, [], uri);
    assert.equal(m.error?.phase, 'setup', uri);
    assert.ok(m.error?.cause instanceof cause, uri);
    assert.deepEqual(m.info(), {}, uri);
  }
});
