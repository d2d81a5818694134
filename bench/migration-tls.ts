/**
 * TLS's cost on a live migration between two vmstate processes (issue 13: "paused 1 GiB guest over
 * loopback with TLS at least 0.7x of the same without TLS"): a 1 GiB guest holding 900 MiB of random
 * data (`vmstate vm --loader`), paused, tcp loopback, max-bandwidth unlimited, migrated --runs N times
 * (default 3) in plain TCP and over TLS (tls-creds-x509 on both sides, certificates made for the run with
 * openssl, verify-peer on), the two alternating so a change in machine load falls on both. Prints the
 * median total-time and MiB/s of each and the throughput ratio TLS / plain.
 */
import os from 'node:os';
import path from 'node:path';
import { makePki } from '../test/support/pki.js';
import { connectQmp, freePort, machine1G, median, pollMigration, quitAll, randomFile, startVmstate, workDir, type MigrateInfo } from './migration-peers.js';

const random = randomFile();
const work = workDir('vmstate-tls-bench-');
const machine = machine1G(work);
const pki = makePki(work);

interface Result {
  status: string;
  totalMs: number;
  transferred: number;
}

async function once(tls: boolean): Promise<Result> {
  const port = await freePort();
  const sq = `unix:${path.join(work, 'src.qmp')}`;
  const dq = `unix:${path.join(work, 'dst.qmp')}`;
  const creds = (dir: string, endpoint: string) => (tls ? ['-object', `tls-creds-x509,id=tls0,dir=${dir},endpoint=${endpoint}`] : []);
  const dst = startVmstate([machine, '--qmp', dq, ...creds(pki.server, 'server'), ...(tls ? ['-global', 'migration.tls-creds=tls0'] : []), '--mem-prealloc', '--incoming', `tcp:127.0.0.1:${port}`]);
  const src = startVmstate([machine, '--qmp', sq, '--loader', `${random}@0x4000000`, '--paused', ...creds(pki.client, 'client')]);
  const s = await connectQmp(sq);
  const d = await connectQmp(dq);
  await s.execute('migrate-set-parameters', { 'max-bandwidth': 100 * 2 ** 30, ...(tls ? { 'tls-creds': 'tls0' } : {}) });
  await s.execute('migrate', { uri: `tcp:127.0.0.1:${port}` });
  const info = (await pollMigration(s)) as MigrateInfo;
  await quitAll([s, d], [src, dst]);
  return { status: info.status, totalMs: info['total-time'] ?? 0, transferred: info.ram?.transferred ?? 0 };
}

const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Math.max(1, Number(process.argv[runsArg + 1]) || 1) : 3;
const rate = (r: Result) => r.transferred / 2 ** 20 / (r.totalMs / 1000);
const plain: Result[] = [];
const tls: Result[] = [];
for (let i = 0; i < RUNS; i++) {
  plain.push(await once(false));
  tls.push(await once(true));
}
const failed = [...plain, ...tls].filter((r) => r.status !== 'completed').length;
console.log('vmstate live migration over TLS (tcp loopback, max-bandwidth unlimited, paused guest)');
console.log(`  node ${process.version}, ${process.versions.openssl}; 1 GiB guest, 900 MiB random; ${os.cpus().length} CPUs, load ${os.loadavg()[0].toFixed(2)}`);
console.log('');
console.log(`${RUNS} runs each        total-time median   MiB/s median   each run (ms)`);
for (const [name, rs] of [['plain TCP', plain], ['TLS', tls]] as const) {
  console.log(`  ${name.padEnd(12)} ${String(median(rs.map((r) => r.totalMs))).padStart(14)} ms   ${median(rs.map(rate)).toFixed(0).padStart(12)}   ${rs.map((r) => r.totalMs).join(' ')}`);
}
const ratio = median(tls.map(rate)) / median(plain.map(rate));
console.log(`  TLS / plain throughput: ${ratio.toFixed(2)} (target >= 0.7: ${ratio >= 0.7 ? 'MET' : 'MISSED'})${failed ? `; ${failed} migration(s) did not complete` : ''}`);
