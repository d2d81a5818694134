// The QMP server spoken to by hand over raw sockets: exact greeting, negotiation, replies, errors, framing,
// limits and events, as QEMU 7.2 writes them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { startQmpServer, type QmpServer } from '../../src/qmp/index.js';
import { FakeVm } from './fake-vm.js';
import { GREETING, RawQmp, tempUnixAddress } from './raw-socket.js';

/** Runs `body` with a server for a fresh FakeVm on a unix socket, and always closes it. */
async function withServer(body: (server: QmpServer, vm: FakeVm) => Promise<void>): Promise<void> {
  const vm = new FakeVm();
  const { address } = await tempUnixAddress();
  const server = await startQmpServer(address, vm);
  try {
    await body(server, vm);
  } finally {
    await server.close();
  }
}

test('the greeting is QEMU 7.2\'s banner, byte for byte, ending in CRLF', async () => {
  await withServer(async (server) => {
    const raw = await RawQmp.open(server.address);
    assert.equal(await raw.next(), GREETING);
    assert.equal(raw.received, GREETING + '\r\n');
    raw.destroy();
  });
});

test('commands before qmp_capabilities fail as in QEMU; after it they run, and a second negotiation is refused', async () => {
  await withServer(async (server) => {
    const raw = await RawQmp.open(server.address);
    await raw.next();
    const expecting = '{"error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with \'qmp_capabilities\'"}}';
    assert.equal(await raw.request('{"execute": "query-status"}'), expecting);
    assert.equal(await raw.request('{"execute": "no-such-command"}'), expecting);
    assert.equal(await raw.request('{"execute": "qmp_capabilities"}'), '{"return": {}}');
    assert.equal(await raw.request('{"execute": "query-status"}'), '{"return": {"status": "running", "singlestep": false, "running": true}}');
    assert.equal(
      await raw.request('{"execute": "qmp_capabilities"}'),
      '{"error": {"class": "CommandNotFound", "desc": "Capabilities negotiation is already complete, command ignored"}}',
    );
    raw.destroy();
  });
});

test('qmp_capabilities cannot enable capabilities the greeting did not offer', async () => {
  await withServer(async (server) => {
    const raw = await RawQmp.open(server.address);
    await raw.next();
    assert.equal(
      await raw.request('{"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}}'),
      '{"error": {"class": "GenericError", "desc": "Capability oob not available"}}',
    );
    assert.equal(
      await raw.request('{"execute": "qmp_capabilities", "arguments": {"enable": ["x"]}}'),
      '{"error": {"class": "GenericError", "desc": "Parameter \'enable[0]\' does not accept value \'x\'"}}',
    );
    assert.equal(await raw.request('{"execute": "qmp_capabilities", "arguments": {"enable": []}}'), '{"return": {}}');
    raw.destroy();
  });
});

test('id is echoed, whatever its type, on success and on error', async () => {
  await withServer(async (server) => {
    const raw = await RawQmp.negotiated(server.address);
    const status = '"return": {"status": "running", "singlestep": false, "running": true}';
    assert.equal(await raw.request('{"execute": "query-status", "id": "libvirt-7"}'), `{${status}, "id": "libvirt-7"}`);
    assert.equal(await raw.request('{"id": 42, "execute": "query-status"}'), `{${status}, "id": 42}`);
    assert.equal(await raw.request('{"execute": "query-status", "id": {"a": [1, null]}}'), `{${status}, "id": {"a": [1, null]}}`);
    assert.equal(
      await raw.request('{"execute": "nope", "id": "x"}'),
      '{"error": {"class": "CommandNotFound", "desc": "The command nope has not been found"}, "id": "x"}',
    );
    assert.equal(
      await raw.request('{"id": 1}'),
      '{"error": {"class": "GenericError", "desc": "QMP input lacks member \'execute\'"}, "id": 1}',
    );
    raw.destroy();
  });
});

test('malformed requests get QEMU\'s error replies, exactly', async () => {
  await withServer(async (server, vm) => {
    const raw = await RawQmp.negotiated(server.address);
    const generic = (desc: string) => `{"error": {"class": "GenericError", "desc": ${JSON.stringify(desc)}}}`;
    const cases: [string, string][] = [
      // A bare token ends at whitespace (as in QEMU's lexer), hence the newlines.
      ['foo\n', generic("JSON parse error, invalid keyword 'foo'")],
      ['42\n', generic('QMP input must be a JSON object')],
      ['"execute" ', generic('QMP input must be a JSON object')],
      ['[{"execute": "stop"}]', generic('QMP input must be a JSON object')],
      ['{"execute": 1}', generic("QMP input member 'execute' must be a string")],
      ['{"execute": "stop", "arguments": []}', generic("QMP input member 'arguments' must be an object")],
      ['{"execute": "stop", "extra": 1}', generic("QMP input member 'extra' is unexpected")],
      ['{}', generic("QMP input lacks member 'execute'")],
      ['{"execute": "migrate"}', generic("Parameter 'uri' is missing")],
      ['{"execute": "migrate", "arguments": {"uri": 5}}', generic("Invalid parameter type for 'uri', expected: string")],
      ['{"execute": "migrate", "arguments": {"foo": 1}}', generic("Parameter 'uri' is missing")],
      ['{"execute": "migrate", "arguments": {"uri": "tcp:x:1", "foo": 1}}', generic("Parameter 'foo' is unexpected")],
      ['{"execute": "migrate", "arguments": {"uri": "bogus"}}', generic("Parameter 'uri' expects a valid migration protocol")],
      ['{"execute": "migrate-incoming", "arguments": {"uri": "tcp:0:1"}}', generic("'-incoming' was not specified on the command line")],
      ['{"execute": "stop", "arguments": {"now": true}}', generic("Parameter 'now' is unexpected")],
      ['{"execute": "migrate-set-capabilities"}', generic("Parameter 'capabilities' is missing")],
      ['{"execute": "migrate-set-capabilities", "arguments": {"capabilities": {}}}', generic("Invalid parameter type for 'capabilities', expected: array")],
      ['{"execute": "migrate-set-capabilities", "arguments": {"capabilities": [5]}}', generic("Invalid parameter type for 'capabilities[0]', expected: object")],
      [
        '{"execute": "migrate-set-capabilities", "arguments": {"capabilities": [{"capability": "events", "state": "on"}]}}',
        generic("Invalid parameter type for 'capabilities[0].state', expected: boolean"),
      ],
      [
        '{"execute": "migrate-set-capabilities", "arguments": {"capabilities": [{"capability": "events"}]}}',
        generic("Parameter 'capabilities[0].state' is missing"),
      ],
      [
        '{"execute": "migrate-set-capabilities", "arguments": {"capabilities": [{"capability": "warp", "state": true}]}}',
        generic("Parameter 'capability' does not accept value 'warp'"),
      ],
      [
        '{"execute": "migrate-set-capabilities", "arguments": {"capabilities": [{"capability": "multifd", "state": true}]}}',
        generic("Capability 'multifd' is not supported"),
      ],
      ['{"execute": "migrate-set-parameters", "arguments": {"max-bandwidth": "fast"}}', generic("Invalid parameter type for 'max-bandwidth', expected: size")],
      ['{"execute": "migrate-set-parameters", "arguments": {"max-bandwidth": -1}}', generic("Invalid parameter type for 'max-bandwidth', expected: size")],
      ['{"execute": "migrate-set-parameters", "arguments": {"compress-level": 300}}', generic("Parameter 'compress-level' expects uint8")],
      ['{"execute": "migrate-set-parameters", "arguments": {"downtime-limit": 1.5}}', generic("Parameter 'downtime-limit' expects uint64")],
      [
        '{"execute": "migrate-set-parameters", "arguments": {"downtime-limit": 3000000}}',
        generic("Parameter 'downtime_limit' expects an integer in the range of 0 to 2000000 milliseconds"),
      ],
      ['{"execute": "migrate-set-parameters", "arguments": {"speed": 1}}', generic("Parameter 'speed' is unexpected")],
    ];
    for (const [request, reply] of cases) assert.equal(await raw.request(request), reply, request);
    // A JSON syntax error inside an object: the detail comes from the parser, the prefix is QEMU's.
    const broken = JSON.parse(await raw.request('{"execute": "stop",}')) as Record<string, unknown>;
    assert.equal((broken.error as { class: string }).class, 'GenericError');
    assert.match((broken.error as { desc: string }).desc, /^JSON parse error, /);
    // Only the requests that passed the argument checks reached the VM, and the connection still works.
    assert.deepEqual(vm.calls, [
      'migrate(bogus)',
      'migrateIncoming(tcp:0:1)',
      'setCapabilities([{"capability":"multifd","state":true}])',
      'setParameters({"downtime-limit":3000000})',
    ]);
    assert.equal(await raw.request('{"execute": "query-status"}'), '{"return": {"status": "running", "singlestep": false, "running": true}}');
    raw.destroy();
  });
});

test('several requests in one write are answered in order', async () => {
  await withServer(async (server, vm) => {
    const raw = await RawQmp.open(server.address);
    await raw.next();
    await raw.write('{"execute": "qmp_capabilities", "id": 1}{"execute":"stop","id":2}\n{"execute": "query-status", "id": 3}  {"execute": "cont", "id": 4}');
    assert.equal(await raw.next(), '{"return": {}, "id": 1}');
    assert.equal(JSON.parse(await raw.next()).event, 'STOP');
    assert.equal(await raw.next(), '{"return": {}, "id": 2}');
    assert.equal(await raw.next(), '{"return": {"status": "paused", "singlestep": false, "running": false}, "id": 3}');
    assert.equal(JSON.parse(await raw.next()).event, 'RESUME');
    assert.equal(await raw.next(), '{"return": {}, "id": 4}');
    assert.deepEqual(vm.calls, ['stop', 'cont']);
    raw.destroy();
  });
});

test('one request split across many writes, even inside a string and a UTF-8 character, is one request', async () => {
  await withServer(async (server) => {
    const raw = await RawQmp.negotiated(server.address);
    const bytes = Buffer.from('{"execute": "query-status", "id": "brace } bracket ] quote \\" é 🙂"}', 'utf8');
    for (const b of bytes) {
      await raw.write(Uint8Array.of(b));
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(
      await raw.next(),
      '{"return": {"status": "running", "singlestep": false, "running": true}, "id": "brace } bracket ] quote \\" \\u00E9 \\uD83D\\uDE42"}',
    );
    raw.destroy();
  });
});

test('a request over 1 MiB gets an error and its connection is closed; other connections carry on', async () => {
  await withServer(async (server) => {
    const big = await RawQmp.negotiated(server.address);
    const other = await RawQmp.negotiated(server.address);
    // Exactly 1 MiB is still accepted.
    const head = '{"execute": "query-status", "id": "';
    const fits = head + 'x'.repeat(1024 * 1024 - head.length - 2) + '"}';
    assert.equal(Buffer.byteLength(fits), 1024 * 1024);
    const fitsReply = JSON.parse(await big.request(fits)) as Record<string, unknown>;
    assert.equal((fitsReply.id as string).length, 1024 * 1024 - head.length - 2);
    // One byte more is not, even before the request ends.
    await big.write(head + 'x'.repeat(1024 * 1024));
    assert.equal(await big.next(), '{"error": {"class": "GenericError", "desc": "JSON parse error, request exceeds the limit of 1048576 bytes"}}');
    await big.closed;
    assert.equal(await other.request('{"execute": "query-status"}'), '{"return": {"status": "running", "singlestep": false, "running": true}}');
    other.destroy();
  });
});

test('nesting deeper than 1024 brackets is refused and the connection closed', async () => {
  await withServer(async (server) => {
    const raw = await RawQmp.negotiated(server.address);
    await raw.write('{"execute": "stop", "id": ' + '['.repeat(2000));
    assert.equal(await raw.next(), '{"error": {"class": "GenericError", "desc": "JSON parse error, nesting depth limit of 1024 exceeded"}}');
    await raw.closed;
  });
});

test('events reach negotiated connections only, with a timestamp and without data when there is none', async () => {
  await withServer(async (server, vm) => {
    const fresh = await RawQmp.open(server.address);
    assert.equal(await fresh.next(), GREETING);
    const a = await RawQmp.negotiated(server.address);
    const b = await RawQmp.negotiated(server.address);
    const before = Date.now() / 1000;
    vm.emit('STOP');
    vm.emit('RESUME', { reason: 'x' });
    for (const raw of [a, b]) {
      const stop = await raw.next();
      assert.match(stop, /^\{"event": "STOP", "timestamp": \{"seconds": \d+, "microseconds": \d+\}\}$/);
      const { timestamp } = JSON.parse(stop) as { timestamp: { seconds: number; microseconds: number } };
      assert.ok(timestamp.seconds >= Math.floor(before) && timestamp.seconds <= Date.now() / 1000 + 1);
      assert.ok(timestamp.microseconds >= 0 && timestamp.microseconds < 1e6);
      assert.match(await raw.next(), /^\{"event": "RESUME", "data": \{"reason": "x"\}, "timestamp": \{"seconds": \d+, "microseconds": \d+\}\}$/);
    }
    assert.ok(await fresh.quietFor(100), 'an unnegotiated connection gets no events');
    // Once it negotiates, it gets the next ones.
    assert.equal(await fresh.request('{"execute": "qmp_capabilities"}'), '{"return": {}}');
    vm.emit('STOP');
    assert.equal((await fresh.nextJson()).event, 'STOP');
    for (const raw of [a, b, fresh]) raw.destroy();
  });
});

test('MIGRATION and MIGRATION_PASS are sent only while the events capability is on', async () => {
  await withServer(async (server, vm) => {
    const raw = await RawQmp.negotiated(server.address);
    vm.emit('MIGRATION', { status: 'setup' });
    vm.emit('MIGRATION_PASS', { pass: 1 });
    vm.emit('STOP');
    assert.equal((await raw.nextJson()).event, 'STOP', 'the migration events were held back');
    assert.equal(
      await raw.request('{"execute": "migrate-set-capabilities", "arguments": {"capabilities": [{"capability": "events", "state": true}]}}'),
      '{"return": {}}',
    );
    assert.equal(await raw.request('{"execute": "query-migrate-capabilities"}'), '{"return": [{"capability": "events", "state": true}, {"capability": "xbzrle", "state": false}]}');
    await raw.write('{"execute": "migrate", "arguments": {"uri": "tcp:127.0.0.1:4444"}, "id": "m"}');
    const seen: string[] = [];
    for (;;) {
      const message = await raw.nextJson();
      if ('id' in message) {
        assert.deepEqual(message, { return: {}, id: 'm' });
        continue;
      }
      const data = message.data as Record<string, unknown>;
      seen.push(`${message.event as string} ${JSON.stringify(data)}`);
      if (data.status === 'completed') break;
    }
    assert.deepEqual(seen, ['MIGRATION {"status":"setup"}', 'MIGRATION {"status":"active"}', 'MIGRATION_PASS {"pass":1}', 'MIGRATION {"status":"completed"}']);
    assert.equal(
      await raw.request('{"execute": "query-migrate"}'),
      '{"return": {"status": "completed", "total-time": 0, "ram": {"transferred": 0, "remaining": 0, "total": 0}}}',
    );
    raw.destroy();
  });
});

test('the migration parameter commands pass checked values to the VM and report them back', async () => {
  await withServer(async (server, vm) => {
    const raw = await RawQmp.negotiated(server.address);
    assert.equal(await raw.request('{"execute": "migrate-set-parameters", "arguments": {"max-bandwidth": 1048576, "downtime-limit": 50}}'), '{"return": {}}');
    assert.equal(await raw.request('{"execute": "migrate-set-parameters"}'), '{"return": {}}');
    assert.equal(await raw.request('{"execute": "query-migrate-parameters"}'), '{"return": {"max-bandwidth": 1048576, "downtime-limit": 50}}');
    assert.equal(await raw.request('{"execute": "migrate_cancel"}'), '{"return": {}}');
    assert.deepEqual(vm.calls, ['setParameters({"max-bandwidth":1048576,"downtime-limit":50})', 'setParameters({})', 'migrateCancel']);
    raw.destroy();
  });
});

test('object-add and object-del are CommandNotFound for a VM without user objects, whatever the arguments', async () => {
  await withServer(async (server) => {
    const raw = await RawQmp.negotiated(server.address);
    assert.equal(
      await raw.request('{"execute": "object-add", "arguments": {"qom-type": "tls-creds-x509", "id": "tls0", "dir": "/pki", "endpoint": "server"}}'),
      '{"error": {"class": "CommandNotFound", "desc": "The command object-add has not been found"}}',
    );
    assert.equal(await raw.request('{"execute": "object-del", "arguments": {"nope": 1}}'), '{"error": {"class": "CommandNotFound", "desc": "The command object-del has not been found"}}');
    raw.destroy();
  });
});

test('a client going away mid-request affects no other connection', async () => {
  await withServer(async (server, vm) => {
    const leaver = await RawQmp.negotiated(server.address);
    const stayer = await RawQmp.negotiated(server.address);
    await leaver.write('{"execute": "query-st');
    leaver.destroy();
    await leaver.closed;
    vm.emit('STOP');
    assert.equal((await stayer.nextJson()).event, 'STOP');
    assert.equal(await stayer.request('{"execute": "query-status", "id": 1}'), '{"return": {"status": "running", "singlestep": false, "running": true}, "id": 1}');
    stayer.destroy();
  });
});

test('quit replies first, then tells the VM to quit', async () => {
  await withServer(async (server, vm) => {
    const raw = await RawQmp.negotiated(server.address);
    assert.equal(await raw.request('{"execute": "quit"}'), '{"return": {}}');
    for (let i = 0; i < 50 && !vm.quitCalled; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.deepEqual(vm.calls, ['quit']);
    raw.destroy();
  });
});

test('tcp on 127.0.0.1 port 0 reports the bound port', async () => {
  const vm = new FakeVm();
  const server = await startQmpServer('tcp:127.0.0.1:0', vm);
  try {
    assert.match(server.address, /^tcp:127\.0\.0\.1:\d+$/);
    assert.notEqual(server.address, 'tcp:127.0.0.1:0');
    const raw = await RawQmp.negotiated(server.address);
    assert.equal(await raw.request('{"execute": "query-status"}'), '{"return": {"status": "running", "singlestep": false, "running": true}}');
    raw.destroy();
  } finally {
    await server.close();
  }
});

/** A node script that listens on the unix socket argv[1] and kills itself, leaving the socket file behind. */
const LISTEN_AND_DIE = "require('net').createServer().listen(process.argv[1], () => process.kill(process.pid, 'SIGKILL'))";

test('close() drops connections, unsubscribes from the VM and removes the socket; a stale socket file is replaced', async () => {
  const vm = new FakeVm();
  const { address, path } = await tempUnixAddress();
  const first = await startQmpServer(address, vm);
  assert.equal(vm.listenerCount, 1);
  const raw = await RawQmp.negotiated(first.address);
  await first.close();
  await raw.closed;
  assert.equal(vm.listenerCount, 0);
  assert.equal(fs.existsSync(path), false);

  // A socket file left behind by a process that died does not stop the next server.
  const child = spawnSync(process.execPath, ['-e', LISTEN_AND_DIE, path]);
  assert.equal(child.signal, 'SIGKILL');
  assert.equal(fs.statSync(path).isSocket(), true);
  const second = await startQmpServer(address, vm);
  const again = await RawQmp.negotiated(second.address);
  again.destroy();
  await second.close();

  // A regular file is never removed.
  fs.writeFileSync(path, 'not a socket');
  await assert.rejects(startQmpServer(address, vm), {
    code: 'IO',
    message: `cannot listen on unix:${path}: ${path} is a regular file, not a socket; not removing it`,
  });
  assert.equal(fs.readFileSync(path, 'utf8'), 'not a socket');
});

test('a bad address is a UsageError', async () => {
  await assert.rejects(startQmpServer('stdio', new FakeVm()), { code: 'USAGE', message: "QMP address 'stdio': expected unix:PATH or tcp:HOST:PORT" });
  await assert.rejects(startQmpServer('tcp:127.0.0.1:99999', new FakeVm()), { code: 'USAGE' });
});
