// QmpClient against the real server (and against servers that misbehave): negotiation, replies matched
// by id, errors as QmpError, events, bounded waits, and closing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { IoError } from '../../src/errors.js';
import { QmpClient, QmpError, startQmpServer, type QmpEvent, type QmpServer } from '../../src/qmp/index.js';
import { FakeVm } from './fake-vm.js';
import { tempUnixAddress } from './raw-socket.js';

/** Runs `body` with a server for a fresh FakeVm (unix socket, or tcp on 127.0.0.1 port 0) and a connected client. */
async function withClient(
  body: (client: QmpClient, vm: FakeVm, server: QmpServer) => Promise<void>,
  transport: 'unix' | 'tcp' = 'unix',
): Promise<void> {
  const vm = new FakeVm();
  const address = transport === 'unix' ? (await tempUnixAddress()).address : 'tcp:127.0.0.1:0';
  const server = await startQmpServer(address, vm);
  const client = await QmpClient.connect(server.address, { timeoutMs: 2000 });
  try {
    await body(client, vm, server);
  } finally {
    await client.close();
    await server.close();
  }
}

for (const transport of ['unix', 'tcp'] as const) {
  test(`connect reads the greeting and negotiates; execute returns the reply (${transport})`, async () => {
    await withClient(async (client) => {
      assert.deepEqual(client.greeting, { QMP: { version: { qemu: { micro: 0, minor: 2, major: 7 }, package: 'vmstate' }, capabilities: [] } });
      assert.deepEqual(await client.execute('query-status'), { status: 'running', singlestep: false, running: true });
      assert.deepEqual(await client.execute('stop'), {});
      assert.deepEqual(await client.execute('query-status'), { status: 'paused', singlestep: false, running: false });
    }, transport);
  });
}

test('an error reply rejects with a QmpError carrying class and desc', async () => {
  await withClient(async (client) => {
    await assert.rejects(client.execute('warp'), (e: unknown) => {
      assert.ok(e instanceof QmpError);
      assert.equal(e.errorClass, 'CommandNotFound');
      assert.equal(e.message, 'The command warp has not been found');
      assert.equal(e.code, 'QMP');
      assert.deepEqual(e.toJSON().data, { class: 'CommandNotFound', desc: 'The command warp has not been found' });
      return true;
    });
    await assert.rejects(client.execute('migrate', { uri: 7 }), { errorClass: 'GenericError', message: "Invalid parameter type for 'uri', expected: string" });
    // The connection is still good.
    assert.deepEqual(await client.execute('query-migrate'), {});
  });
});

test('concurrent commands are matched to their replies by id', async () => {
  await withClient(async (client) => {
    const results = await Promise.allSettled([
      client.execute('query-status'),
      client.execute('nope'),
      client.execute('query-migrate-parameters'),
      client.execute('migrate-set-parameters', { 'downtime-limit': 100 }),
      client.execute('query-migrate-parameters'),
    ]);
    assert.deepEqual(results[0], { status: 'fulfilled', value: { status: 'running', singlestep: false, running: true } });
    assert.equal(results[1].status, 'rejected');
    assert.deepEqual(results[2], { status: 'fulfilled', value: { 'max-bandwidth': 134217728, 'downtime-limit': 300 } });
    assert.deepEqual(results[3], { status: 'fulfilled', value: {} });
    assert.deepEqual(results[4], { status: 'fulfilled', value: { 'max-bandwidth': 134217728, 'downtime-limit': 100 } });
  });
});

test('events go to listeners, and waitForEvent finds events that arrived before it was called', async () => {
  await withClient(async (client, vm) => {
    const heard: QmpEvent[] = [];
    const listener = (e: QmpEvent) => heard.push(e);
    client.on('event', listener);
    await client.execute('stop');
    // STOP arrived before the reply to stop; waiting for it now still finds it.
    const stop = await client.waitForEvent('STOP');
    assert.equal(stop.event, 'STOP');
    assert.equal(stop.data, undefined);
    assert.equal(typeof stop.timestamp.seconds, 'number');
    assert.deepEqual(heard.map((e) => e.event), ['STOP']);
    // A consumed event is not found twice.
    await assert.rejects(client.waitForEvent('STOP', undefined, 50), (e: unknown) => e instanceof IoError && /no QMP event STOP/.test(e.message));

    await client.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
    const completed = client.waitForEvent('MIGRATION', (e) => e.data?.status === 'completed');
    await client.execute('migrate', { uri: 'unix:/nowhere' });
    assert.deepEqual((await completed).data, { status: 'completed' });
    assert.deepEqual((await client.waitForEvent('MIGRATION_PASS')).data, { pass: 1 });
    client.off('event', listener);
    vm.emit('RESUME');
    await client.waitForEvent('RESUME');
    assert.deepEqual(heard.map((e) => e.event), ['STOP', 'MIGRATION', 'MIGRATION', 'MIGRATION_PASS', 'MIGRATION']);
  });
});

test('close() rejects pending waits; later commands reject at once', async () => {
  await withClient(async (client) => {
    const waiting = assert.rejects(client.waitForEvent('SHUTDOWN'), { code: 'IO', message: /closed by the client/ });
    await client.close();
    await waiting;
    await assert.rejects(client.execute('query-status'), { code: 'IO' });
  });
});

test('the server going away rejects pending commands with IoError', async () => {
  const vm = new FakeVm();
  const { address } = await tempUnixAddress();
  const server = await startQmpServer(address, vm);
  const client = await QmpClient.connect(server.address);
  const waiting = assert.rejects(client.waitForEvent('STOP'), { code: 'IO', message: /was closed/ });
  await server.close();
  await waiting;
  await assert.rejects(client.execute('query-status'), { code: 'IO' });
  await client.close();
});

/** A server on a unix socket that runs `onConnection` for each client, instead of QMP. */
async function fakeServer(onConnection: (socket: net.Socket) => void): Promise<{ address: string; close: () => Promise<void> }> {
  const { address, path } = await tempUnixAddress();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    onConnection(s);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

test('connect times out on a server that never greets, and a command times out on one that never replies', async () => {
  const silent = await fakeServer(() => {});
  try {
    await assert.rejects(QmpClient.connect(silent.address, { timeoutMs: 100 }), { code: 'IO', message: /sent no greeting within 100 ms/ });
  } finally {
    await silent.close();
  }
  const mute = await fakeServer((s) => {
    s.write('{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": []}}\r\n');
    s.once('data', () => s.write('{"return": {}, "id": 1}\r\n')); // negotiates, then never answers again
  });
  try {
    const client = await QmpClient.connect(mute.address, { timeoutMs: 100 });
    await assert.rejects(client.execute('query-status'), { code: 'IO', message: /query-status got no reply .* within 100 ms/ });
    await client.close();
  } finally {
    await mute.close();
  }
});

test('connect rejects a server that is not QMP, and an address nobody listens on', async () => {
  const http = await fakeServer((s) => s.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
  try {
    await assert.rejects(QmpClient.connect(http.address), { code: 'IO', message: /sent no greeting but: HTTP\/1.1 400/ });
  } finally {
    await http.close();
  }
  const { address } = await tempUnixAddress();
  await assert.rejects(QmpClient.connect(address), { code: 'IO', message: /failed: connect ENOENT/ });
});

test('a refused negotiation rejects connect with the QmpError', async () => {
  const refusing = await fakeServer((s) => {
    s.write('{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": []}}\r\n');
    s.once('data', () => s.write('{"error": {"class": "GenericError", "desc": "busy"}, "id": 1}\r\n'));
  });
  try {
    await assert.rejects(QmpClient.connect(refusing.address), { errorClass: 'GenericError', message: 'busy' });
  } finally {
    await refusing.close();
  }
});
