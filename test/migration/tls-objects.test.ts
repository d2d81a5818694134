// The pieces TLS migrations are configured with, alone: authz objects, -object/-global parsing, object-add's
// argument checks, credentials folders and the distinguished name authz is asked about.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseGlobalOption, parseKeyval, parseObjectOption } from '../../src/cli/keyval.js';
import { UserObjects } from '../../src/cli/user-objects.js';
import { AuthzList, AuthzSimple, distinguishedName, globMatches, TlsCredsX509 } from '../../src/migration/index.js';
import { objectAdd, QmpError, type VmControl } from '../../src/qmp/index.js';
import { CLIENT_DN, makePki } from '../support/pki.js';

test('glob rules: * is any run, ? any one character, the rest literal', () => {
  const cases: [string, string, boolean][] = [
    ['CN=*.example.com,*', 'CN=laptop.example.com,O=Example', true],
    ['*,CN=*.example.com', 'C=GB,O=Example,CN=client.example.com', true],
    ['*,CN=*.example.com', 'C=GB,O=Example,CN=client.example.org', false],
    ['C=G?,*', 'C=GB,O=x', true],
    ['C=G?,*', 'C=G,O=x', false],
    ['*', '', true],
    ['', 'x', false],
    ['a*b*c', 'axxbyyc', true],
    ['a*b*c', 'axxbyy', false],
    ['[abc]', '[abc]', true],
  ];
  for (const [pattern, text, expected] of cases) assert.equal(globMatches(pattern, text), expected, `${pattern} ~ ${text}`);
});

test('authz-list: the first matching rule decides, else the default policy; authz-simple: one identity', () => {
  const list = new AuthzList('a', [
    { match: 'C=GB,O=Example,CN=bad.example.com', policy: 'deny' },
    { match: 'C=GB,O=Example,CN=*', policy: 'allow', format: 'glob' },
  ]);
  assert.equal(list.isAllowed('C=GB,O=Example,CN=bad.example.com'), false);
  assert.equal(list.isAllowed('C=GB,O=Example,CN=good.example.com'), true);
  assert.equal(list.isAllowed('C=FR,O=Example,CN=good.example.com'), false, 'deny by default');
  assert.equal(new AuthzList('b', [{ match: 'x', policy: 'deny' }], 'allow').isAllowed('y'), true);
  assert.equal(new AuthzList('c', [{ match: 'C=*', policy: 'allow' }]).isAllowed('C=GB'), false, 'exact by default: * is literal');
  const simple = new AuthzSimple('s', CLIENT_DN);
  assert.equal(simple.isAllowed(CLIENT_DN), true);
  assert.equal(simple.isAllowed(`${CLIENT_DN} `), false);
});

test('-object and -global as QEMU writes them', () => {
  assert.deepEqual(parseKeyval('tls-creds-x509,id=t,dir=/a,,b,,,endpoint=server', 'qom-type'), [
    ['qom-type', 'tls-creds-x509'],
    ['id', 't'],
    ['dir', '/a,b,'],
    ['endpoint', 'server'],
  ]);
  assert.deepEqual(parseObjectOption('tls-creds-x509,id=t,dir=/p,verify-peer=off,sanity-check=yes'), {
    'qom-type': 'tls-creds-x509',
    id: 't',
    dir: '/p',
    'verify-peer': false,
    'sanity-check': true,
  });
  assert.deepEqual(parseObjectOption('{"qom-type": "authz-list", "id": "a", "rules": [{"match": "x", "policy": "allow"}]}'), {
    'qom-type': 'authz-list',
    id: 'a',
    rules: [{ match: 'x', policy: 'allow' }],
  });
  assert.deepEqual(parseObjectOption('authz-simple,id=a,identity=CN=x,,O=y'), { 'qom-type': 'authz-simple', id: 'a', identity: 'CN=x,O=y' });
  assert.throws(() => parseObjectOption('tls-creds-x509,id=t,verify-peer=maybe'), /Parameter 'verify-peer' expects 'on' or 'off'/);
  assert.throws(() => parseObjectOption('tls-creds-x509,id=t,id=u'), /'id' is given twice/);
  assert.deepEqual(parseGlobalOption('migration.tls-creds=tls0'), ['tls-creds', 'tls0']);
  assert.throws(() => parseGlobalOption('migration.max-bandwidth=1'), /vmstate takes only migration.tls-creds, migration.tls-hostname, migration.tls-authz/);
});

test("object-add checks arguments with QEMU's messages, and objects are found by id for their endpoint", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmstate-tls-objects-'));
  try {
    const pki = makePki(dir);
    const objects = new UserObjects();
    const vm = { objectAdd: (p: Record<string, unknown>) => objects.add(p) } as unknown as VmControl;
    const add = (args: Record<string, unknown>) => objectAdd.run(vm, args);
    const fails = (args: Record<string, unknown>, message: string) =>
      assert.throws(() => add(args), (e: unknown) => e instanceof QmpError && e.message === message, message);
    fails({ id: 'x' }, "Parameter 'qom-type' is missing");
    fails({ 'qom-type': 'memory-backend-ram', id: 'x' }, "Parameter 'qom-type' does not accept value 'memory-backend-ram'");
    fails({ 'qom-type': 'authz-simple' }, "Parameter 'id' is missing");
    fails({ 'qom-type': 'authz-simple', id: 'a' }, "Parameter 'identity' is missing");
    fails({ 'qom-type': 'tls-creds-x509', id: 't', 'verify-peer': 'on' }, "Invalid parameter type for 'verify-peer', expected: boolean");
    fails({ 'qom-type': 'tls-creds-x509', id: 't', endpoint: 'both' }, "Parameter 'endpoint' does not accept value 'both'");
    fails({ 'qom-type': 'tls-creds-x509', id: 't', colour: 'red' }, "Parameter 'colour' is unexpected");
    fails({ 'qom-type': 'authz-list', id: 'l', rules: [{ match: 'x' }] }, "Parameter 'rules[0].policy' is missing");
    fails({ 'qom-type': 'tls-creds-x509', id: 't', dir: pki.noCert, endpoint: 'server' }, `Unable to access credentials ${path.join(pki.noCert, 'server-cert.pem')}: No such file or directory`);

    add({ 'qom-type': 'tls-creds-x509', id: 'tls0', dir: pki.server, endpoint: 'server' });
    add({ 'qom-type': 'tls-creds-x509', id: 'tls1', dir: pki.noCert });
    add({ 'qom-type': 'authz-simple', id: 'auth0', identity: CLIENT_DN });
    fails({ 'qom-type': 'authz-simple', id: 'auth0', identity: 'x' }, "attempt to add duplicate property 'auth0' to object (type 'container')");
    assert.equal(objects.creds('tls0', 'server').verifyPeer, true, 'verify-peer defaults to on');
    assert.equal(objects.creds('tls1', 'client').hasCertificate, false, 'a client may have no certificate');
    assert.throws(() => objects.creds('tls0', 'client'), /^QmpError: Expected TLS credentials for a client endpoint$/);
    assert.throws(() => objects.creds('auth0', 'client'), /^QmpError: Object with id 'auth0' is not TLS credentials$/);
    assert.throws(() => objects.creds('nope', 'client'), /^QmpError: No TLS credentials with id 'nope'$/);
    assert.equal(objects.authz('auth0').isAllowed(CLIENT_DN), true);
    assert.throws(() => objects.authz('tls0'), /^QmpError: Cannot find QAuthZ object ID tls0$/);
    objects.del('auth0');
    assert.throws(() => objects.del('auth0'), /^QmpError: object 'auth0' not found$/);

    // The name authz is asked about is the subject in certificate order, as QEMU (GnuTLS) writes it.
    assert.equal(distinguishedName(new X509Certificate(fs.readFileSync(path.join(pki.client, 'client-cert.pem')))), CLIENT_DN);
    const garbled = path.join(dir, 'garbled');
    fs.cpSync(pki.server, garbled, { recursive: true });
    fs.writeFileSync(path.join(garbled, 'server-key.pem'), 'not a key\n');
    assert.throws(() => TlsCredsX509.load({ id: 'k', dir: garbled, endpoint: 'server' }), new RegExp(`^UsageError: Cannot load the credentials in ${garbled}: `));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
