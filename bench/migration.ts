/**
 * Live migration against QEMU 7.2 (issue: "Live migration between two processes over TCP"), one run:
 *   1. a 1 GiB guest holding 900 MiB of random data (QEMU: `-device loader,file=RANDOM,addr=0x100000,
 *      force-raw=on`; vmstate: `vmstate vm --loader RANDOM@ADDR`), paused, tcp loopback, max-bandwidth
 *      unlimited, --runs N times each, alternating with the loopback limit (one Node process sending the
 *      same 900 MiB to another that discards them): medians of total-time and MiB/s, vmstate against
 *      QEMU and against that limit. Both destinations preallocate their RAM (QEMU's -mem-prealloc,
 *      vmstate vm --mem-prealloc): here, in a virtual machine, faulting in 1 GiB of fresh memory costs
 *      about a second, which would otherwise be most of what is measured, for both;
 *   2. the same guests running, with the same downtime-limit: the downtime of each, median of --runs N
 *      migrations each (default 5), QEMU and vmstate alternating. QEMU's guest is a tiny multiboot kernel
 *      (below) that keeps writing pages at about the rate vmstate's DMA workload dirties them, so both
 *      guests dirty memory alike; each side's dirty-pages-rate is printed to show it.
 * Needs qemu-system-x86_64; the random file is made once under the OS temp folder. `--paused-only` skips 2.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { QmpClient } from '../src/qmp/index.js';
import { dirtyingKernel } from '../test/support/dirtying-kernel.js';
import { connectQmp as connect, freePort, machine1G, median, pollMigration, quitAll, RANDOM_BYTES, randomFile, start, startVmstate, workDir, type MigrateInfo } from './migration-peers.js';

const DOWNTIME_LIMIT = 300;
const random = randomFile();
const work = workDir('vmstate-mig-bench-');
const machine = machine1G(work);

/**
 * The guest's workload: test/support/dirtying-kernel.ts's multiboot kernel writing one word in each of
 * DIRTY_PAGES pages at 0x3e000000 in turn, with a delay loop between writes, forever: about 10 pages a
 * second under TCG here, as vmstate's workload at 200 steps/s. It sits above the 900 MiB of random data.
 */
const KERNEL_AT = 0x3f000000;
const DIRTY_AT = 0x3e000000;
const DIRTY_PAGES = 16;
const DELAY_LOOPS = 22_000_000;
const kernel = path.join(work, 'dirty-pages.bin');
fs.writeFileSync(kernel, dirtyingKernel({ loadAt: KERNEL_AT, dirtyAt: DIRTY_AT, pages: DIRTY_PAGES, delayLoops: DELAY_LOOPS }));

/** How many writes the kernel above has made so far: the sum of its per-page counters (HMP xp). */
async function kernelWrites(qmp: QmpClient): Promise<number> {
  let sum = 0;
  for (let i = 0; i < DIRTY_PAGES; i++) {
    const out = await qmp.execute<string>('human-monitor-command', { 'command-line': `xp /1wx 0x${(DIRTY_AT + i * 4096).toString(16)}` });
    sum += parseInt(out.split(':')[1] ?? '0', 16);
  }
  return sum;
}

interface Result {
  status: string;
  totalMs: number;
  downtimeMs: number;
  transferred: number;
  /**
   * Pages the guest dirties per second: vmstate's highest dirty-pages-rate during the migration; for
   * QEMU the kernel's own count of page writes over the second before it (QEMU computes its
   * dirty-pages-rate only over passes longer than a second, which these are not).
   */
  dirtyRate: number;
}

async function migrate(src: QmpClient, uri: string, downtimeLimit: number): Promise<Result> {
  await src.execute('migrate-set-parameters', { 'max-bandwidth': 100 * 2 ** 30, 'downtime-limit': downtimeLimit });
  await src.execute('migrate', { uri });
  let dirtyRate = 0;
  const info = (await pollMigration(src, { onInfo: (i) => (dirtyRate = Math.max(dirtyRate, i.ram?.['dirty-pages-rate'] ?? 0)) })) as MigrateInfo;
  return { status: info.status, totalMs: info['total-time'] ?? 0, downtimeMs: info.downtime ?? 0, transferred: info.ram?.transferred ?? 0, dirtyRate };
}

async function pair(kind: 'qemu' | 'vmstate', running: boolean): Promise<Result> {
  const port = await freePort();
  const sq = `unix:${path.join(work, `${kind}-src.qmp`)}`;
  const dq = `unix:${path.join(work, `${kind}-dst.qmp`)}`;
  let src: ChildProcess;
  let dst: ChildProcess;
  if (kind === 'qemu') {
    const base = ['-machine', 'q35', '-accel', 'tcg', '-m', '1G', '-nodefaults', '-display', 'none', '-device', `loader,file=${random},addr=0x100000,force-raw=on`];
    if (running) base.push('-kernel', kernel);
    dst = start('qemu-system-x86_64', [...base, '-qmp', `${dq},server=on,wait=off`, '-mem-prealloc', '-incoming', `tcp:127.0.0.1:${port}`]);
    src = start('qemu-system-x86_64', [...base, '-qmp', `${sq},server=on,wait=off`, ...(running ? [] : ['-S'])]);
  } else {
    dst = startVmstate([machine, '--qmp', dq, '--mem-prealloc', '--incoming', `tcp:127.0.0.1:${port}`]);
    src = startVmstate([machine, '--qmp', sq, '--loader', `${random}@0x4000000`, '--rate', '200', ...(running ? [] : ['--paused'])]);
  }
  const s = await connect(sq);
  const d = await connect(dq);
  let guestRate = 0;
  if (running) {
    const t0 = performance.now();
    const w0 = kind === 'qemu' ? await kernelWrites(s) : 0;
    await new Promise((r) => setTimeout(r, 1000));
    if (kind === 'qemu') guestRate = Math.round(((await kernelWrites(s)) - w0) / ((performance.now() - t0) / 1000));
  }
  const r = await migrate(s, `tcp:127.0.0.1:${port}`, DOWNTIME_LIMIT);
  if (kind === 'qemu') r.dirtyRate = guestRate;
  await quitAll([s, d], [src, dst]);
  return r;
}

/**
 * What loopback TCP carries between two Node processes here: a child reads the 900 MiB file into memory,
 * then writes it (4 MiB writes, waiting on drain) to another child that counts and drops what it reads.
 * MiB/s on the receiver's clock, from accepting the connection to the sender's end.
 */
async function loopbackLimit(): Promise<number> {
  const receiver = `const net = require('net'); let n = 0, t0 = 0;
    const s = net.createServer((c) => { t0 = performance.now(); c.on('data', (d) => { n += d.length; });
      c.on('end', () => { process.stdout.write(JSON.stringify({ bytes: n, ms: performance.now() - t0 })); process.exit(0); }); });
    s.listen(0, '127.0.0.1', () => process.stderr.write(s.address().port + '\\n'));`;
  const sender = `const net = require('net'), fs = require('fs'); const data = fs.readFileSync(process.argv[1]);
    const c = net.connect(Number(process.argv[2]), '127.0.0.1', async () => {
      for (let i = 0; i < data.length; i += 4 << 20) if (!c.write(data.subarray(i, i + (4 << 20)))) await new Promise((r) => c.once('drain', r));
      c.end(); });`;
  const r = start(process.execPath, ['-e', receiver], { pipe: true });
  const port = await new Promise<number>((resolve) => r.stderr?.once('data', (d: Buffer) => resolve(Number(String(d).trim()))));
  let out = '';
  r.stdout?.on('data', (d: Buffer) => (out += String(d)));
  start(process.execPath, ['-e', sender, random, String(port)]);
  await new Promise((resolve) => r.once('exit', resolve));
  const { bytes, ms } = JSON.parse(out) as { bytes: number; ms: number };
  if (bytes !== RANDOM_BYTES) throw new Error(`loopback limit: ${bytes} bytes arrived of ${RANDOM_BYTES}`);
  return bytes / 2 ** 20 / (ms / 1000);
}

const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Math.max(1, Number(process.argv[runsArg + 1]) || 1) : 5;
const PAUSED_ONLY = process.argv.includes('--paused-only');
const pausedQ: Result[] = [];
const pausedV: Result[] = [];
const limits: number[] = [];
for (let i = 0; i < RUNS; i++) {
  pausedQ.push(await pair('qemu', false));
  pausedV.push(await pair('vmstate', false));
  limits.push(await loopbackLimit());
}
const qr: Result[] = [];
const vr: Result[] = [];
for (let i = 0; i < (PAUSED_ONLY ? 0 : RUNS); i++) {
  qr.push(await pair('qemu', true));
  vr.push(await pair('vmstate', true));
}
const failed = [...qr, ...vr].filter((r) => r.status !== 'completed').length;
console.log('vmstate live migration benchmark (tcp loopback, max-bandwidth unlimited)');
console.log(`  node ${process.version}; QEMU 7.2 (TCG); 1 GiB guest, 900 MiB random; downtime-limit ${DOWNTIME_LIMIT} ms`);
console.log('');
const rate = (r: Result) => r.transferred / 2 ** 20 / (r.totalMs / 1000);
const pausedRow = (name: string, rs: Result[]) =>
  console.log(
    `  ${name.padEnd(12)} ${String(median(rs.map((r) => r.totalMs))).padStart(7)} ms  ${median(rs.map(rate)).toFixed(0).padStart(6)}   ${rs.map((r) => rate(r).toFixed(0)).join(' ').padEnd(28)} ${rs.filter((r) => r.status === 'completed').length}/${rs.length} completed`,
  );
console.log(`paused guest (${RUNS} runs each, alternating)   total-time median   MiB/s median   each run (MiB/s)`);
pausedRow('QEMU', pausedQ);
pausedRow('vmstate', pausedV);
const limit = median(limits);
console.log(`  loopback limit (Node to Node, 900 MiB): ${limit.toFixed(0)} MiB/s median; each: ${limits.map((l) => l.toFixed(0)).join(' ')}`);
const vRate = median(pausedV.map(rate));
const qRate = median(pausedQ.map(rate));
console.log(`  vmstate/QEMU MiB/s (medians): ${(vRate / qRate).toFixed(2)} (target >= 1)`);
console.log(`  loopback limit/vmstate MiB/s (medians): ${(limit / vRate).toFixed(2)} (target <= 1.5)`);
if (PAUSED_ONLY) process.exit(0);
console.log(`running guest (${RUNS} migrations each)   downtime median   each run (ms)          total-time median   dirty pages/s (median)`);
const row = (name: string, rs: Result[], what: string) =>
  console.log(
    `  ${name.padEnd(12)} ${String(median(rs.map((r) => r.downtimeMs))).padStart(17)} ms   ${rs.map((r) => r.downtimeMs).join(' ').padEnd(20)} ${String(median(rs.map((r) => r.totalMs))).padStart(8)} ms   ${String(median(rs.map((r) => r.dirtyRate))).padStart(8)}   ${what}`,
  );
row('QEMU', qr, `(multiboot guest writing ${DIRTY_PAGES} pages in turn)`);
row('vmstate', vr, '(DMA workload at 200 steps/s)');
const met = median(vr.map((r) => r.downtimeMs)) <= median(qr.map((r) => r.downtimeMs));
console.log(`  vmstate's downtime no higher than QEMU's (medians): ${met ? 'MET' : 'MISSED'}${failed ? `; ${failed} migration(s) did not complete` : ''}`);
