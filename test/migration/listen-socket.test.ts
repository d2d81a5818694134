// listenAt binds the migration listener and the QMP server: a unix path is taken over only from a stale
// socket; a file, a directory or a socket another process listens on stays, and the error names it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer, connect, type Server } from 'node:net';
import { listenAt, listenIncoming } from '../../src/migration/index.js';
import { parseMigrationUri } from '../../src/stream/index.js';

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'vmstate-listen-'));
}

/** A node script that listens on the unix socket argv[1] and kills itself, leaving the socket file behind. */
const LISTEN_AND_DIE = "require('net').createServer().listen(process.argv[1], () => process.kill(process.pid, 'SIGKILL'))";

function close(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

test('a stale socket is replaced; the new server accepts connections', async () => {
  const at = path.join(tempDir(), 's');
  assert.equal(spawnSync(process.execPath, ['-e', LISTEN_AND_DIE, at]).signal, 'SIGKILL');
  assert.ok(fs.lstatSync(at).isSocket());
  const server = createServer((s) => s.end('hello'));
  await listenAt(server, { kind: 'unix', path: at });
  const got = await new Promise<string>((resolve) => connect({ path: at }).on('data', (d) => resolve(String(d))));
  assert.equal(got, 'hello');
  await close(server);
});

test('a regular file, a directory, a symbolic link and a live socket at the path stay, and the error names the path', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'precious');
  fs.writeFileSync(file, 'precious\n');
  const sub = path.join(dir, 'sub');
  fs.mkdirSync(sub);
  const link = path.join(dir, 'link');
  fs.symlinkSync(file, link);
  const live = path.join(dir, 'live');
  const owner = createServer();
  await listenAt(owner, { kind: 'unix', path: live });

  const cases: [string, string][] = [
    [file, `${file} is a regular file, not a socket; not removing it`],
    [sub, `${sub} is a directory, not a socket; not removing it`],
    [link, `${link} is a symbolic link, not a socket; not removing it`],
    [live, 'another process is listening on it'],
  ];
  for (const [at, why] of cases) {
    await assert.rejects(listenAt(createServer(), { kind: 'unix', path: at }), { code: 'IO', message: `cannot listen on unix:${at}: ${why}` });
    // The migration listener goes through the same check.
    await assert.rejects(listenIncoming(parseMigrationUri(`unix:${at}`)), { code: 'IO', message: `cannot listen on unix:${at}: ${why}` });
  }
  assert.equal(fs.readFileSync(file, 'utf8'), 'precious\n');
  assert.ok(fs.statSync(sub).isDirectory());
  assert.ok(fs.lstatSync(link).isSymbolicLink());
  // The owner still serves.
  const probe = connect({ path: live });
  await once(probe, 'connect');
  probe.destroy();
  await close(owner);
});

test('a tcp port in use is an IoError naming the address', async () => {
  const owner = createServer();
  await listenAt(owner, { kind: 'tcp', host: '127.0.0.1', port: 0 });
  const port = (owner.address() as { port: number }).port;
  await assert.rejects(listenAt(createServer(), { kind: 'tcp', host: '127.0.0.1', port }), {
    code: 'IO',
    message: `cannot listen on tcp:127.0.0.1:${port}: it is already in use`,
  });
  await close(owner);
});
