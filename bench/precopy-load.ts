/**
 * Precopy under load (issue 13, "Load at the limit"): a 1 GiB guest holding 900 MiB of random data that
 * writes guest RAM at a set rate while it migrates over loopback TCP, max-bandwidth unlimited,
 * downtime-limit 300 ms. For each rate (default 1,000, 10,000 and 50,000 pages/s):
 *   - vmstate: `vmstate vm --dirty RATE`, which adds 1 to the first word of each page of a 256 MiB window
 *     in turn (machine/dirtying-workload.ts), in plain TCP and over TLS (tls-creds-x509 on both sides,
 *     certificates made for the run, as bench/migration-tls.ts);
 *   - QEMU 7.2 (TCG): test/support/dirtying-kernel.ts's multiboot kernel doing the same over a 256 MiB
 *     window, its delay loop set for the rate and refined over up to four boots.
 * Each guest's real rate is measured over two seconds before the migration (vmstate: its own count;
 * QEMU: the kernel's count of its writes, read with HMP `xp`); then total time, passes (dirty-sync-count), downtime,
 * bytes, and whether it converged within --timeout seconds (default 60; after that it is cancelled).
 *
 *   node dist/bench/precopy-load.js [--rates 1000,10000,50000] [--timeout 60] [--no-qemu]
 */
import type { ChildProcess } from 'node:child_process';
import type { QmpClient } from '../src/qmp/index.js';
import fs from 'node:fs';
import path from 'node:path';
import { dirtyingKernel } from '../test/support/dirtying-kernel.js';
import { makePki } from '../test/support/pki.js';
import { connectQmp, freePort, machine1G, pollMigration, quitAll, randomFile, start, startVmstate, workDir, type MigrateInfo } from './migration-peers.js';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const RATES = (arg('--rates') ?? '1000,10000,50000').split(',').map(Number);
const TIMEOUT_MS = Number(arg('--timeout') ?? 60) * 1000;
const WITH_QEMU = !process.argv.includes('--no-qemu');
const DOWNTIME_LIMIT = 300;

const random = randomFile();
const work = workDir('vmstate-precopy-load-');
const machine = machine1G(work);
const pki = makePki(work);

// QEMU's guest: the window is 256 MiB (65,536 pages) below the kernel, as vmstate's top quarter is; the
// kernel counts its writes in a word past its code (the window's own counters start out random).
const KERNEL_AT = 0x3f000000;
const COUNT_AT = KERNEL_AT + 0x1000;
const WINDOW_PAGES = 65536;
const WINDOW_AT = KERNEL_AT - WINDOW_PAGES * 4096;

interface Outcome {
  rate: number;
  status: string;
  totalMs: number;
  passes: number;
  downtimeMs: number;
  transferred: number;
}

interface Peer {
  src: QmpClient;
  dst: QmpClient;
  uri: string;
  /** Pages written so far by the guest. */
  written(): Promise<number>;
  close(): Promise<void>;
}

async function word(qmp: QmpClient, addr: number): Promise<number> {
  const out = await qmp.execute<string>('human-monitor-command', { 'command-line': `xp /1wx 0x${addr.toString(16)}` });
  return parseInt(out.split(':')[1] ?? '0', 16);
}

/** A source and a destination started by `startPair(srcQmp, dstQmp, port)`, connected over QMP. */
async function peer(kind: string, startPair: (sq: string, dq: string, port: number) => ChildProcess[], written: (src: QmpClient) => Promise<number>): Promise<Peer> {
  const port = await freePort();
  const sq = `unix:${path.join(work, `${kind}-src.qmp`)}`;
  const dq = `unix:${path.join(work, `${kind}-dst.qmp`)}`;
  const procs = startPair(sq, dq, port);
  const src = await connectQmp(sq);
  const dst = await connectQmp(dq);
  return { src, dst, uri: `tcp:127.0.0.1:${port}`, written: () => written(src), close: () => closeAll(src, dst, procs) };
}

function qemuPeer(delayLoops: number): Promise<Peer> {
  const kernel = path.join(work, `kernel-${delayLoops}.bin`);
  fs.writeFileSync(kernel, dirtyingKernel({ loadAt: KERNEL_AT, dirtyAt: WINDOW_AT, pages: WINDOW_PAGES, delayLoops, flushTlb: true, countAt: COUNT_AT }));
  const base = ['-machine', 'q35', '-accel', 'tcg', '-m', '1G', '-nodefaults', '-display', 'none', '-device', `loader,file=${random},addr=0x100000,force-raw=on`, '-kernel', kernel];
  return peer(
    'qemu',
    (sq, dq, port) => [
      start('qemu-system-x86_64', [...base, '-qmp', `${sq},server=on,wait=off`]),
      start('qemu-system-x86_64', [...base, '-qmp', `${dq},server=on,wait=off`, '-mem-prealloc', '-incoming', `tcp:127.0.0.1:${port}`]),
    ],
    (src) => word(src, COUNT_AT),
  );
}

function vmstatePeer(rate: number, tls: boolean): Promise<Peer> {
  const creds = (dir: string, endpoint: string) => (tls ? ['-object', `tls-creds-x509,id=tls0,dir=${dir},endpoint=${endpoint}`, '-global', 'migration.tls-creds=tls0'] : []);
  return peer(
    'vmstate',
    (sq, dq, port) => [
      startVmstate([machine, '--qmp', dq, ...creds(pki.server, 'server'), '--mem-prealloc', '--incoming', `tcp:127.0.0.1:${port}`]),
      startVmstate([machine, '--qmp', sq, ...creds(pki.client, 'client'), '--loader', `${random}@0x100000`, '--dirty', String(rate)]),
    ],
    async (src) => (await src.execute<{ 'dirtied-pages': number }>('x-vmstate-query-workload'))['dirtied-pages'],
  );
}

async function closeAll(src: QmpClient, dst: QmpClient, procs: ChildProcess[]): Promise<void> {
  await quitAll([src, dst], procs);
  await sleep(300);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Pages a second the guest writes, over `ms`, once it has begun (QEMU's kernel after SeaBIOS). A count is
 * taken as its reply arrives (vmstate reads it after hashing RAM), so the time runs from reply to reply.
 */
async function measuredRate(peer: Peer, ms = 2000): Promise<number> {
  for (const t0 = performance.now(); (await peer.written()) <= 0; await sleep(100)) {
    if (performance.now() - t0 > 30_000) throw new Error('the guest wrote no page in 30 s');
  }
  const w0 = await peer.written();
  const t0 = performance.now();
  await sleep(ms);
  const w1 = await peer.written();
  return (w1 - w0) / ((performance.now() - t0) / 1000);
}

async function migrate(peer: Peer): Promise<Omit<Outcome, 'rate'>> {
  await peer.src.execute('migrate-set-parameters', { 'max-bandwidth': 100 * 2 ** 30, 'downtime-limit': DOWNTIME_LIMIT });
  await peer.src.execute('migrate', { uri: peer.uri });
  const t0 = performance.now();
  let last: MigrateInfo = { status: 'active' };
  const info = await pollMigration(peer.src, { everyMs: 50, timeoutMs: TIMEOUT_MS, onInfo: (i) => (last = i) });
  const out = { totalMs: last['total-time'] ?? 0, passes: last.ram?.['dirty-sync-count'] ?? 0, downtimeMs: last.downtime ?? 0, transferred: last.ram?.transferred ?? 0 };
  if (info) return { status: info.status, ...out };
  await peer.src.execute('migrate_cancel');
  return { status: `no convergence in ${TIMEOUT_MS / 1000} s`, ...out, totalMs: Math.round(performance.now() - t0) };
}

/**
 * A QEMU guest writing close to `rate` pages a second, its rate measured: the delay loop is set from
 * the kernel's time per loop turn and refined on each boot (at most four) until within 15%.
 */
async function qemuAtRate(rate: number, nsPerLoop: { value: number }): Promise<{ peer: Peer; measured: number }> {
  for (let attempt = 1; ; attempt++) {
    const delay = Math.max(1, Math.round(1e9 / rate / nsPerLoop.value));
    const peer = await qemuPeer(delay);
    const measured = await measuredRate(peer);
    process.stderr.write(`QEMU kernel: delay ${delay}: ${measured.toFixed(0)} pages/s (target ${rate})\n`);
    if (Math.abs(measured - rate) <= rate * 0.15 || attempt === 4) return { peer, measured };
    await peer.close();
    // Time per write = delay x time per turn, the write itself being small against it at these rates.
    nsPerLoop.value = 1e9 / measured / delay;
  }
}

const rows: { peer: string; target: number; measured: number; outcome: Omit<Outcome, 'rate'> }[] = [];
// About 5 ns per turn of the delay loop under TCG here (bench/migration.ts: 22,000,000 turns, ~10 writes/s).
const nsPerLoop = { value: 5 };
for (const rate of RATES) {
  if (WITH_QEMU) {
    const { peer: q, measured } = await qemuAtRate(rate, nsPerLoop);
    rows.push({ peer: 'QEMU 7.2', target: rate, measured, outcome: await migrate(q) });
    await q.close();
  }
  for (const tls of [false, true]) {
    const v = await vmstatePeer(rate, tls);
    const measured = await measuredRate(v);
    rows.push({ peer: tls ? 'vmstate TLS' : 'vmstate', target: rate, measured, outcome: await migrate(v) });
    await v.close();
  }
}

console.log(`precopy under load: 1 GiB guest, 900 MiB random, 256 MiB window written in turn; loopback TCP, unlimited bandwidth, downtime-limit ${DOWNTIME_LIMIT} ms`);
console.log('  target/s   peer         written/s   status                    total ms   passes   downtime ms   MiB sent');
for (const r of rows) {
  const o = r.outcome;
  console.log(
    `  ${String(r.target).padStart(8)}   ${r.peer.padEnd(11)}  ${r.measured.toFixed(0).padStart(9)}   ${o.status.padEnd(24)}  ${String(o.totalMs).padStart(8)}   ${String(o.passes).padStart(6)}   ${String(o.downtimeMs).padStart(11)}   ${(o.transferred / 2 ** 20).toFixed(0).padStart(8)}`,
  );
}
