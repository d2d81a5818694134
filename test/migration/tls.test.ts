// TLS migrations between two VM processes, configured as QEMU's are: tls-creds-x509 objects (-object or
// object-add), the migration's tls-creds, tls-hostname and tls-authz. Certificates are made per run
// (support/pki.ts). A destination refuses a source whose certificate is missing, from another CA,
// expired or refused by its authz object before reading one byte of the stream, and waits on for the
// right one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { QmpClient } from '../../src/qmp/index.js';
import { cliPath, repoRoot } from '../support/paths.js';
import { codeBlocks } from '../support/readme-blocks.js';
import { CLIENT_DN, INTRUDER_DN, makePki, type Pki } from '../support/pki.js';
import { ForwardingProxy, freePort, prepareSource, queryStatus, queryWorkload, ReferenceMachine, waitFor, waitForMigration, within, withScope, writeMachine, type Scope } from './harness.js';

/** `-object` for credentials in `dir`. */
function credsObject(dir: string, endpoint: 'server' | 'client', id = 'tls0'): string[] {
  return ['-object', `tls-creds-x509,id=${id},dir=${dir.replaceAll(',', ',,')},endpoint=${endpoint}`];
}

/** A destination waiting over TLS on tcp:127.0.0.1:PORT, with extra arguments (an authz object). */
async function tlsDestination(scope: Scope, pki: Pki, machine: string, extra: readonly string[] = []) {
  return scope.spawnDestination('destination', machine, 'tcp', [...credsObject(pki.server, 'server'), '-global', 'migration.tls-creds=tls0', '--paused', ...extra]);
}

test('a TLS migration set up over QMP as for QEMU (object-add, migrate-set-parameters, migrate-incoming) completes, its return path answering through TLS too', { timeout: 90_000 }, () =>
  withScope(async (scope) => {
    const pki = makePki(scope.dir);
    const machine = writeMachine(scope.dir, '64M');
    const reference = new ReferenceMachine(machine);
    const source = scope.spawnVm('source', machine, ['--rate', '50']);
    const destination = scope.spawnVm('destination', machine, ['--incoming', 'defer', '--paused']);
    const src = await scope.monitor(source);
    const dst = await scope.monitor(destination);

    // The destination: server credentials, tls-creds, then listen.
    await dst.client.execute('object-add', { 'qom-type': 'tls-creds-x509', id: 'tls0', dir: pki.server, endpoint: 'server', 'verify-peer': true });
    await dst.client.execute('object-add', { 'qom-type': 'authz-simple', id: 'auth0', identity: CLIENT_DN });
    await dst.client.execute('migrate-set-parameters', { 'tls-creds': 'tls0', 'tls-authz': 'auth0' });
    const uri = `tcp:127.0.0.1:${await freePort()}`;
    await dst.client.execute('migrate-incoming', { uri });
    await waitFor('the destination to listen', () => (destination.log().includes(`waiting for an incoming migration on ${uri} (TLS)`) ? true : undefined));

    // The source: client credentials and tls-creds; its TLS parameters read "" until set, as QEMU's do.
    await prepareSource(src.client);
    const unset = await src.client.execute<Record<string, unknown>>('query-migrate-parameters');
    assert.deepEqual([unset['tls-creds'], unset['tls-hostname'], unset['tls-authz']], ['', '', '']);
    await src.client.execute('object-add', { 'qom-type': 'tls-creds-x509', id: 'tls0', dir: pki.client, endpoint: 'client' });
    await src.client.execute('migrate-set-parameters', { 'tls-creds': 'tls0', 'tls-hostname': 'localhost' });
    await src.client.execute('migrate-set-parameters', { 'tls-hostname': null });
    const set = await src.client.execute<Record<string, unknown>>('query-migrate-parameters');
    assert.deepEqual([set['tls-creds'], set['tls-hostname']], ['tls0', ''], 'null resets a parameter to ""');
    // With the return path, completed means the destination's SHUT 0 came back over the TLS session.
    await src.client.execute('migrate-set-capabilities', { capabilities: [{ capability: 'return-path', state: true }] });
    await src.client.execute('migrate', { uri });
    const info = await waitForMigration(src.client, 30_000);
    assert.equal(info.status, 'completed', info['error-desc']);

    await waitFor('the destination to finish loading', async () => ((await queryStatus(dst.client)) === 'paused' ? true : undefined), 10_000);
    const atSwitchover = await queryWorkload(src.client);
    const arrived = await queryWorkload(dst.client);
    assert.deepEqual(arrived, atSwitchover);
    assert.deepEqual(arrived, reference.at(arrived.step));
    const incoming = await dst.client.execute<{ status: string; ram?: { transferred: number } }>('query-migrate');
    assert.equal(incoming.status, 'completed');
    assert.equal(incoming.ram?.transferred, info.ram?.transferred, 'the destination received, decrypted, every byte the source sent');
    await dst.client.execute('cont');
    assert.equal(await queryStatus(dst.client), 'running');
    await src.client.execute('object-del', { id: 'tls0' });
    await assert.rejects(src.client.execute('migrate-set-parameters', { 'tls-creds': 'tls0' }).then(() => src.client.execute('migrate', { uri })), /No TLS credentials with id 'tls0'/);
  }),
);

test('refused sources: plaintext, no certificate, another CA, expired, authz deny; the destination waits on and takes the right one', { timeout: 120_000 }, () =>
  withScope(async (scope) => {
    const pki = makePki(scope.dir);
    const machine = writeMachine(scope.dir, '64M');
    const authz = JSON.stringify({ 'qom-type': 'authz-list', id: 'auth0', policy: 'deny', rules: [{ match: CLIENT_DN, policy: 'allow' }] });
    const { vm: destination, uri } = await tlsDestination(scope, pki, machine, ['-object', authz, '-global', 'migration.tls-authz=auth0']);
    const dirs = { good: pki.client, nocert: pki.noCert, otherca: pki.otherCa, expired: pki.expired, intruder: pki.intruder };
    const objects = Object.entries(dirs).flatMap(([id, dir]) => credsObject(dir, 'client', id));
    const source = scope.spawnVm('source', machine, ['--rate', '50', ...objects]);
    const src = await scope.monitor(source);
    const dst = await scope.monitor(destination);
    await prepareSource(src.client);

    const refusals: [string, RegExp][] = [
      ['', /TLS handshake failed: /],
      ['nocert', /: No certificate peers; still waiting/],
      ['otherca', /: The certificate hasn't got a known issuer; still waiting/],
      ['expired', /: The certificate has expired; still waiting/],
      ['intruder', new RegExp(`: TLS x509 authz check for ${INTRUDER_DN} is denied; still waiting`)],
    ];
    for (const [creds, reason] of refusals) {
      const what = creds || 'plaintext';
      const logged = destination.log().split('\n').filter((l) => l.includes('refused the migration')).length;
      await src.client.execute('migrate-set-parameters', { 'tls-creds': creds });
      await src.client.execute('migrate', { uri });
      const info = await waitForMigration(src.client, 30_000);
      assert.equal(info.status, 'failed', `${what}: the source's migration should fail`);
      assert.equal(await queryStatus(src.client), 'running', `${what}: the source runs on`);
      const refused = await waitFor(`${what}: the destination to log the refusal`, () => destination.log().split('\n').filter((l) => l.includes('refused the migration')).slice(logged)[0]);
      assert.match(refused, /^vmstate vm: refused the migration from 127\.0\.0\.1:\d+: /);
      assert.match(refused, reason, what);
      // Nothing of the stream was read: the destination is still waiting, with no bytes received.
      assert.deepEqual(await dst.client.execute('query-migrate'), { status: 'setup' }, what);
      assert.equal(await queryStatus(dst.client), 'inmigrate', what);
      assert.equal(destination.child.exitCode, null, `${what}: the destination is still there`);
    }

    await src.client.execute('migrate-set-parameters', { 'tls-creds': 'good' });
    await src.client.execute('migrate', { uri });
    const info = await waitForMigration(src.client, 30_000);
    assert.equal(info.status, 'completed', info['error-desc']);
    await waitFor('the destination to finish loading', async () => ((await queryStatus(dst.client)) === 'paused' ? true : undefined), 10_000);
    assert.deepEqual(await queryWorkload(dst.client), await queryWorkload(src.client));
  }),
);

test('tls-hostname: a unix: URI needs one, a name the certificate lacks fails the source; on the wire only TLS records go', { timeout: 90_000 }, () =>
  withScope(async (scope) => {
    const pki = makePki(scope.dir);
    const machine = writeMachine(scope.dir, '64M');
    const { vm: destination, uri } = await tlsDestination(scope, pki, machine);
    const source = scope.spawnVm('source', machine, ['--rate', '50', ...credsObject(pki.client, 'client')]);
    const src = await scope.monitor(source);
    const dst = await scope.monitor(destination);
    await prepareSource(src.client);
    await src.client.execute('migrate-set-parameters', { 'tls-creds': 'tls0' });
    const proxy = await ForwardingProxy.start(scope, { port: Number(uri.split(':').at(-1)) }, { listenPath: path.join(scope.dir, 'tls.sock'), tap: true });

    // A unix socket has no host name to check the destination's certificate against.
    await src.client.execute('migrate', { uri: proxy.uri });
    let info = await waitForMigration(src.client);
    assert.deepEqual([info.status, info['error-desc']], ['failed', 'No hostname available for TLS']);
    assert.equal(proxy.forwarded, 0);

    // The destination's certificate names localhost and 127.0.0.1, not this.
    await src.client.execute('migrate-set-parameters', { 'tls-hostname': 'elsewhere.example.com' });
    await src.client.execute('migrate', { uri });
    info = await waitForMigration(src.client);
    assert.equal(info.status, 'failed');
    assert.match(info['error-desc'] ?? '', /^Failed to connect: TLS handshake with elsewhere\.example\.com failed: Hostname\/IP does not match certificate's altnames: /);
    assert.equal(await queryStatus(src.client), 'running');
    // A TLS 1.2 client checks the server's certificate after the handshake: it closes before its stream.
    const gaveUp = /refused the migration from 127\.0\.0\.1:\d+: it closed the connection before sending a stream; still waiting/;
    await waitFor('the destination to log the abandoned connection', () => (gaveUp.test(destination.log()) ? true : undefined));
    assert.deepEqual(await dst.client.execute('query-migrate'), { status: 'setup' });

    await src.client.execute('migrate-set-parameters', { 'tls-hostname': 'localhost' });
    assert.equal((await src.client.execute<Record<string, unknown>>('query-migrate-parameters'))['tls-hostname'], 'localhost');
    await src.client.execute('migrate', { uri: proxy.uri });
    info = await waitForMigration(src.client, 30_000);
    assert.equal(info.status, 'completed', info['error-desc']);
    await waitFor('the destination to finish loading', async () => ((await queryStatus(dst.client)) === 'paused' ? true : undefined), 10_000);
    assert.deepEqual(await queryWorkload(dst.client), await queryWorkload(src.client));

    // TLS records only (a handshake record first), and nothing of the stream in clear: no magic, no device names.
    const wire = proxy.tapped();
    assert.equal(wire.length, proxy.forwarded);
    assert.deepEqual([wire[0], wire[1]], [0x16, 0x03], 'a TLS handshake record');
    assert.ok(wire.length > (info.ram?.transferred ?? Infinity), 'the records are a little larger than the stream');
    for (const clear of ['QEVM', 'iommu-intel', 'pc-q35', 'vmdesc']) assert.equal(wire.indexOf(clear), -1, `${clear} on the wire`);
  }),
);

test("README's TLS migration, its three commands as written", { timeout: 90_000 }, () =>
  withScope(async (scope) => {
    const block = codeBlocks(fs.readFileSync(path.join(repoRoot, 'README.md'), 'utf8')).find((b) => b.key === 'Over TLS');
    assert.ok(block, 'README.md has a block under "### Over TLS"');
    const lines = block.text.split('\n').filter((l) => l.trim() !== '');
    assert.equal(lines.length, 3);
    // The certificates the README takes as made, where it looks for them; `vmstate` on PATH.
    makePki(path.join(scope.dir, 'pki'));
    const bin = path.join(scope.dir, 'bin');
    fs.mkdirSync(bin);
    fs.writeFileSync(path.join(bin, 'vmstate'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(cliPath)} "$@"\n`, { mode: 0o755 });
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` };

    const run = (line: string) => {
      const child = spawn('bash', ['-c', `exec ${line.replace(/&\s*$/, '')}`], { cwd: scope.dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      scope.defer(async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        await exited;
      });
      return { output: () => out, exited };
    };
    // Each command once the one before is ready, as whoever types them would.
    const destination = run(lines[0]);
    await waitFor('the destination to listen', () => (/waiting for an incoming migration on tcp:127\.0\.0\.1:4444 \(TLS\)/.test(destination.output()) ? true : undefined), 15_000);
    const source = run(lines[1]);
    await waitFor('the source to take QMP', () => (/QMP on unix:src\.qmp/.test(source.output()) ? true : undefined), 15_000);
    const migrate = run(lines[2]);
    assert.equal(await within(migrate.exited, 60_000, 'vmstate migrate'), 0, migrate.output());
    assert.match(migrate.output(), /100% {2}completed/);

    const dst = await QmpClient.connect(`unix:${path.join(scope.dir, 'dst.qmp')}`);
    scope.defer(() => dst.close());
    await waitFor('the destination to run', async () => ((await queryStatus(dst)) === 'running' ? true : undefined), 10_000);
    assert.equal((await dst.execute<{ status: string }>('query-migrate')).status, 'completed');
  }),
);

test('verify-peer=off: the destination takes a client without a certificate, the source checks no name', { timeout: 90_000 }, () =>
  withScope(async (scope) => {
    const pki = makePki(scope.dir);
    const machine = writeMachine(scope.dir, '64M');
    const { vm: destination, uri } = await scope.spawnDestination('destination', machine, 'tcp', [
      '-object', `tls-creds-x509,id=tls0,dir=${pki.server},endpoint=server,verify-peer=off`,
      '-global', 'migration.tls-creds=tls0',
      '--paused',
    ]);
    const source = scope.spawnVm('source', machine, ['-object', `tls-creds-x509,id=tls0,dir=${pki.noCert},endpoint=client,verify-peer=off`]);
    const src = await scope.monitor(source);
    const dst = await scope.monitor(destination);
    await prepareSource(src.client);
    await src.client.execute('migrate-set-parameters', { 'tls-creds': 'tls0', 'tls-hostname': 'elsewhere.example.com' });
    await src.client.execute('migrate', { uri });
    const info = await waitForMigration(src.client, 30_000);
    assert.equal(info.status, 'completed', info['error-desc']);
    await waitFor('the destination to finish loading', async () => ((await queryStatus(dst.client)) === 'paused' ? true : undefined), 10_000);
    assert.doesNotMatch(destination.log(), /refused/);
  }),
);
