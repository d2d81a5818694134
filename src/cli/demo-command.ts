/**
 * `vmstate demo`: the whole story in one command. It starts a source VM process and a destination
 * waiting on loopback TCP, lets the source's DMA workload run, migrates it live with a progress bar,
 * then checks on the destination that the RAM hash and every device's DMA registers equal what the
 * source had at switch-over, that the workload goes on, and that where it goes equals a machine that
 * never migrated. It prints a summary and cleans up.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { withHugePages } from './huge-pages.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IoError } from '../errors.js';
import { Machine } from '../machine/index.js';
import { QmpClient } from '../qmp/index.js';
import { parseArgs, type Output } from './args.js';
import { resolveMachine } from './machine-commands.js';
import { driveMigration, parseSize } from './migrate-command.js';
import { cliEntry } from './package-root.js';
import { ProgressPrinter } from './progress.js';


/** What x-vmstate-query-workload returns. */
interface Workload {
  step: number;
  'ram-hash': string;
  engines: string;
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

async function connectWhenReady(address: string, child: ChildProcess, log: () => string): Promise<QmpClient> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new IoError(`the VM process exited early (${child.exitCode}): ${log()}`);
    try {
      return await QmpClient.connect(address);
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

function startVm(args: string[]): { child: ChildProcess; log: () => string } {
  const child = spawn(process.execPath, [cliEntry(), 'vm', ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: withHugePages(process.env) });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  return { child, log: () => err.trim() };
}

export async function demoCommand(argv: readonly string[], out: Output): Promise<number> {
  const args = parseArgs(argv, [], ['machine', 'max-bandwidth', 'downtime-limit', 'rate', 'warmup']);
  const machineArg = args.options.get('machine')?.at(-1) ?? 'q35-default';
  const description = resolveMachine(machineArg);
  const dir = mkdtempSync(join(tmpdir(), 'vmstate-demo-'));
  const srcQmp = `unix:${join(dir, 'source.qmp')}`;
  const dstQmp = `unix:${join(dir, 'destination.qmp')}`;
  const port = await freePort();
  const rate = args.options.get('rate')?.at(-1) ?? '50';
  const vms = [
    startVm([machineArg, '--qmp', srcQmp, '--rate', rate]),
    startVm([machineArg, '--qmp', dstQmp, '--incoming', `tcp:127.0.0.1:${port}`, '--paused', '--rate', rate]),
  ];
  const clients: QmpClient[] = [];
  try {
    const src = await connectWhenReady(srcQmp, vms[0].child, vms[0].log);
    clients.push(src);
    const dst = await connectWhenReady(dstQmp, vms[1].child, vms[1].log);
    clients.push(dst);
    out.stdout(`source and destination running ${description.name} (${new Machine(description).engines.length} DMA engines), migrating over tcp:127.0.0.1:${port}\n`);
    await new Promise((r) => setTimeout(r, Number(args.options.get('warmup')?.at(-1) ?? 1000)));
    const before = await src.execute<Workload>('x-vmstate-query-workload');

    const bw = args.options.get('max-bandwidth')?.at(-1);
    const info = await driveMigration(src, {
      to: `tcp:127.0.0.1:${port}`,
      maxBandwidth: bw === undefined ? 0 : parseSize(bw, '--max-bandwidth'),
      downtimeLimitMs: Number(args.options.get('downtime-limit')?.at(-1) ?? 300),
      progress: new ProgressPrinter(out.stdout, process.stdout.isTTY === true, 250),
    });
    if (info.status !== 'completed') {
      out.stderr(`vmstate: demo: migration ${info.status}\n`);
      return 1;
    }
    // The destination loads and stays paused (--paused): compare before it runs.
    await waitFor(async () => (await dst.execute<{ status: string }>('query-status')).status === 'paused', 20_000, 'the destination to finish loading');
    const atSwitchover = await src.execute<Workload>('x-vmstate-query-workload');
    const arrived = await dst.execute<Workload>('x-vmstate-query-workload');
    const same = atSwitchover['ram-hash'] === arrived['ram-hash'] && atSwitchover.engines === arrived.engines && atSwitchover.step === arrived.step;
    await dst.execute('cont');
    await waitFor(async () => (await dst.execute<Workload>('x-vmstate-query-workload')).step >= arrived.step + 5, 20_000, 'the workload to go on');
    await dst.execute('stop');
    const later = await dst.execute<Workload>('x-vmstate-query-workload');
    const reference = new Machine(description);
    reference.boot();
    reference.run(later.step);
    const onTrack = reference.ramHash() === later['ram-hash'];

    const ram = info.ram ?? {};
    const seconds = (info['total-time'] ?? 0) / 1000;
    out.stdout('\nsummary\n');
    out.stdout(`  total time     ${info['total-time']} ms (the source ran steps ${before.step} to ${atSwitchover.step} meanwhile)\n`);
    out.stdout(`  downtime       ${info.downtime} ms\n`);
    out.stdout(`  transferred    ${((ram.transferred ?? 0) / (1 << 20)).toFixed(1)} MiB at ${seconds > 0 ? ((ram.transferred ?? 0) / (1 << 20) / seconds).toFixed(0) : '-'} MiB/s\n`);
    out.stdout(`  passes         ${(ram['dirty-sync-count'] ?? 0) + 1}\n`);
    out.stdout(`  at switch-over RAM hash and every DMA engine's registers ${same ? 'equal on both sides' : 'DIFFER'} (step ${arrived.step})\n`);
    out.stdout(`  afterwards     the destination ran on to step ${later.step}; ${onTrack ? 'its RAM equals a machine that never migrated' : 'its RAM DIFFERS from a machine that never migrated'}\n`);
    out.stdout('  section order (device state, as loaded):\n');
    const m = new Machine(description);
    m.boot();
    const plan = m.registry.plan();
    plan.entries.forEach((e, i) => {
      if (!e.vmsd) return;
      const why = plan.explain(i);
      out.stdout(`    ${e.idstr.padEnd(48)} ${why.slice(1).length ? why[why.length - 1] : why[0]}\n`);
    });
    return same && onTrack ? 0 : 1;
  } finally {
    for (const c of clients) await c.execute('quit').catch(() => undefined);
    for (const c of clients) await c.close().catch(() => undefined);
    for (const vm of vms) if (vm.child.exitCode === null) vm.child.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new IoError(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
