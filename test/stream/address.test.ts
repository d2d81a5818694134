// Socket addresses and migration URIs, parsed once for QMP and for migration: what each form means, that
// it prints back as written, and the exact message for each way to get one wrong.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatMigrationUri, formatSocketAddress, parseMigrationUri, parseSocketAddress } from '../../src/stream/index.js';

test('socket addresses parse and print back; an IPv6 host is bracketed', () => {
  assert.deepEqual(parseSocketAddress('unix:/tmp/q.sock', 'L'), { kind: 'unix', path: '/tmp/q.sock' });
  assert.deepEqual(parseSocketAddress('tcp:127.0.0.1:4444', 'L'), { kind: 'tcp', host: '127.0.0.1', port: 4444 });
  assert.deepEqual(parseSocketAddress('tcp:[::1]:0', 'L'), { kind: 'tcp', host: '::1', port: 0 });
  for (const text of ['unix:/tmp/q.sock', 'unix:relative:with:colons', 'tcp:localhost:65535', 'tcp:[fe80::1]:22', 'tcp:10.0.0.2:0']) {
    assert.equal(formatSocketAddress(parseSocketAddress(text, 'L')), text);
  }
});

test('a bad socket address: a UsageError that starts with the label and says what is wrong', () => {
  const cases: [string, string][] = [
    ['unix:', 'the unix socket path is empty'],
    ['tcp:host', 'expected tcp:HOST:PORT'],
    ['tcp::1', 'the host is empty'],
    ['tcp:[]:1', 'the host is empty'],
    // Without brackets an IPv6 address cannot be told from its port: refused, as QEMU refuses it.
    ['tcp:::1:4444', "host '::1' is not a name, an IPv4 address or an IPv6 address in brackets"],
    ['tcp:[::1:4444', "host '[::1' is not a name, an IPv4 address or an IPv6 address in brackets"],
    ['tcp:h:x', "port 'x' is not a number from 0 to 65535"],
    ['tcp:h:70000', "port '70000' is not a number from 0 to 65535"],
    ['tcp:h:', "port '' is not a number from 0 to 65535"],
    ['stdio', 'expected unix:PATH or tcp:HOST:PORT'],
  ];
  for (const [text, why] of cases) {
    assert.throws(() => parseSocketAddress(text, `QMP address '${text}'`), { code: 'USAGE', message: `QMP address '${text}': ${why}`, data: { address: text } }, text);
  }
});

test('migration URIs: the socket forms, exec: and file:, printed back as written', () => {
  assert.deepEqual(parseMigrationUri('tcp:[::1]:4444'), { kind: 'tcp', host: '::1', port: 4444 });
  assert.deepEqual(parseMigrationUri('unix:/run/m.sock'), { kind: 'unix', path: '/run/m.sock' });
  assert.deepEqual(parseMigrationUri('file:/tmp/a:b.mig'), { kind: 'file', path: '/tmp/a:b.mig' });
  assert.deepEqual(parseMigrationUri('exec:cat > out.mig'), { kind: 'exec', command: 'cat > out.mig' });
  for (const uri of ['tcp:127.0.0.1:0', 'tcp:[::1]:4444', 'unix:/run/m.sock', 'file:/tmp/a:b.mig', 'exec:gzip -c > x.gz']) {
    assert.equal(formatMigrationUri(parseMigrationUri(uri)), uri);
  }
});

test('a bad migration URI names itself and what is wrong', () => {
  const cases: [string, string][] = [
    ['tcp:h', 'expected tcp:HOST:PORT'],
    ['tcp:fe80::1:4444', "host 'fe80::1' is not a name, an IPv4 address or an IPv6 address in brackets"],
    ['unix:', 'the unix socket path is empty'],
    ['file:', 'expected file:PATH'],
    ['exec:  ', 'expected exec:COMMAND'],
    ['rdma:host:4444', 'unknown transport (use tcp:, unix:, exec: or file:)'],
    ['/tmp/no-scheme', 'unknown transport (use tcp:, unix:, exec: or file:)'],
  ];
  for (const [uri, why] of cases) {
    assert.throws(() => parseMigrationUri(uri), { code: 'USAGE', message: `migration URI ${uri}: ${why}` }, uri);
  }
});
