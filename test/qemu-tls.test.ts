// TLS migrations between vmstate and real QEMU (7.2 and 10.0), both ways, with the certificates the
// vmstate tests make (support/pki.ts) and QEMU's own configuration: tls-creds-x509 objects, tls-creds and
// tls-authz. The handshake must complete; what follows fails, since vmstate's reference machine and
// QEMU's devices differ, and each side says so in its own words. A QEMU destination's authz-simple
// also settles how QEMU writes a client certificate's subject: it denies vmstate's certificate naming it
// exactly as vmstate's authz objects see it, and allows it when that is its identity.
// Without QEMU these tests skip; with VMSTATE_REQUIRE_QEMU=1 they fail instead.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, prepareSource, queryStatus, waitFor, waitForMigration, withScope, writeMachine } from './migration/harness.js';
import { CLIENT_DN, makePki } from './support/pki.js';
import { qemu10OrSkip, qemuOrSkip, queryMigrate, startQemu, type QemuCommand } from './support/qemu.js';

const VERSIONS = ['7.2', '10.0'] as const;

function qemuFor(t: TestContext, version: (typeof VERSIONS)[number]): QemuCommand | null {
  if (version === '10.0') return qemu10OrSkip(t, 'qemu-system-x86_64');
  const binary = qemuOrSkip(t, 'qemu-system-x86_64');
  return binary === null ? null : { binary, args: [], env: {} };
}

/** A QEMU option value: commas doubled. */
const optValue = (text: string) => text.replaceAll(',', ',,');

const MACHINE_ARGS = ['-machine', 'q35', '-m', '64', '-nodefaults', '-S'];

for (const version of VERSIONS) {
  test(`QEMU ${version} migrates over TLS into a vmstate destination: the handshake completes, the load fails on QEMU's devices`, { timeout: 90_000 }, async (t) => {
    const qemu = qemuFor(t, version);
    if (qemu === null) return;
    await withScope(async (scope) => {
      const pki = makePki(scope.dir);
      const machine = writeMachine(scope.dir, '64M');
      const { vm: destination, uri } = await scope.spawnDestination('destination', machine, 'tcp', [
        '-object', `tls-creds-x509,id=tls0,dir=${optValue(pki.server)},endpoint=server`,
        '-object', `authz-simple,id=auth0,identity=${optValue(CLIENT_DN)}`,
        '-global', 'migration.tls-creds=tls0',
        '-global', 'migration.tls-authz=auth0',
      ]);
      const source = await startQemu({
        binary: qemu.binary,
        env: qemu.env,
        args: [...qemu.args, ...MACHINE_ARGS, '-object', `tls-creds-x509,id=tls0,dir=${optValue(pki.client)},endpoint=client`],
      });
      scope.defer(() => source.stop());
      await source.qmp.execute('migrate-set-parameters', { 'tls-creds': 'tls0' });
      await source.qmp.execute('migrate', { uri });

      const code = await waitFor('the vmstate destination to give up on the load', () => (destination.child.exitCode ?? undefined), 30_000);
      assert.equal(code, 1, destination.log());
      const log = destination.log();
      assert.doesNotMatch(log, /refused the migration/, 'the TLS handshake and the authz check passed');
      // QEMU's stream came through TLS and was read up to what the reference machine does not have.
      assert.match(log, /vmstate vm: incoming migration failed: ram: unknown RAM block "[^"]+"/);
      const info = await queryMigrate(source.qmp);
      assert.ok(info.status === 'failed' || info.status === 'completed' || info.status === 'active', `QEMU's migration: ${JSON.stringify(info)}`);
      // A write error after the destination gave up ("Cannot write to TLS channel") may follow; no
      // handshake or certificate failure may come before it.
      assert.doesNotMatch(source.stderr(), /handshake|certificate|authoriz/i, source.stderr());
    });
  });

  test(`vmstate migrates over TLS into a QEMU ${version} destination: authz sees the DN vmstate sees, the handshake completes, QEMU's load fails`, { timeout: 90_000 }, async (t) => {
    const qemu = qemuFor(t, version);
    if (qemu === null) return;
    await withScope(async (scope) => {
      const pki = makePki(scope.dir);
      const machine = writeMachine(scope.dir, '64M');
      const destination = await startQemu({
        binary: qemu.binary,
        env: qemu.env,
        args: [
          ...qemu.args, ...MACHINE_ARGS, '-incoming', 'defer',
          '-object', `tls-creds-x509,id=tls0,dir=${optValue(pki.server)},endpoint=server`,
          '-object', 'authz-simple,id=nobody,identity=CN=nobody',
          '-object', `authz-simple,id=auth0,identity=${optValue(CLIENT_DN)}`,
        ],
      });
      scope.defer(() => destination.stop());
      const port = await freePort();
      await destination.qmp.execute('migrate-set-parameters', { 'tls-creds': 'tls0', 'tls-authz': 'nobody' });
      await destination.qmp.execute('migrate-incoming', { uri: `tcp:127.0.0.1:${port}` });

      const source = scope.spawnVm('source', machine, ['-object', `tls-creds-x509,id=tls0,dir=${optValue(pki.client)},endpoint=client`]);
      const src = await scope.monitor(source);
      await prepareSource(src.client);
      await src.client.execute('migrate-set-parameters', { 'tls-creds': 'tls0' });

      // Denied: QEMU names the certificate's subject, and it is the DN vmstate's authz objects match.
      await src.client.execute('migrate', { uri: `tcp:127.0.0.1:${port}` });
      assert.equal((await waitForMigration(src.client)).status, 'failed');
      assert.equal(await queryStatus(src.client), 'running');
      await waitFor('QEMU to refuse the client', () => (/authz check for .* is denied/.test(destination.stderr()) ? true : undefined));
      assert.match(destination.stderr(), new RegExp(`TLS x509 authz check for ${CLIENT_DN} is denied`));

      // Allowed: the handshake completes and QEMU reads vmstate's stream, which its devices cannot load.
      await destination.qmp.execute('migrate-set-parameters', { 'tls-authz': 'auth0' });
      await src.client.execute('migrate', { uri: `tcp:127.0.0.1:${port}` });
      await src.client.execute('query-migrate');
      const exited = await waitFor('QEMU to give up on the load', () => (destination.process.exitCode ?? undefined), 30_000);
      assert.notEqual(exited, 0);
      const stderr = destination.stderr();
      assert.match(stderr, /load of migration failed/);
      assert.equal(stderr.match(/TLS|handshake|certificate/gi)?.length ?? 0, 1, `only the denied attempt's TLS error: ${stderr}`);
    });
  });
}
