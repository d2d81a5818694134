/**
 * `vmstate proxy` against no proxy (issue 15: "a paused 1 GiB guest (900 MiB random data) migrated QEMU ->
 * proxy -> QEMU takes at most 1.2x the time of QEMU -> QEMU directly, median of 5 alternating runs each;
 * with --capture at most 1.5x"). QEMU 7.2 (TCG), 1 GiB guest with the 900 MiB random file loaded, paused
 * (-S), tcp loopback, max-bandwidth unlimited, the destination with -mem-prealloc. Each run: direct,
 * through the proxy, through the proxy with --capture (to the OS temp folder), and through the floor (a
 * relay that moves bytes in the kernel, bench/splice-relay.py), in turn, --runs N times (default 5).
 * Prints the median total-time of each and the ratios.
 */
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { cli, connectQmp, freePort, median, pollMigration, quitAll, randomFile, repo, start, workDir, type MigrateInfo } from './migration-peers.js';

const random = randomFile();
const work = workDir('vmstate-proxy-bench-');
const BASE = ['-machine', 'q35', '-accel', 'tcg', '-m', '1G', '-nodefaults', '-display', 'none', '-device', `loader,file=${random},addr=0x100000,force-raw=on`, '-S'];

type Kind = 'direct' | 'proxy' | 'capture' | 'floor';
const KINDS: readonly Kind[] = ['direct', 'proxy', 'capture', 'floor'];

async function once(kind: Kind): Promise<number> {
  const [front, back] = [await freePort(), await freePort()];
  const sq = `unix:${path.join(work, `src-${kind}.qmp`)}`;
  const dq = `unix:${path.join(work, `dst-${kind}.qmp`)}`;
  const dst = start('qemu-system-x86_64', [...BASE, '-qmp', `${dq},server=on,wait=off`, '-mem-prealloc', '-incoming', `tcp:127.0.0.1:${back}`]);
  const src = start('qemu-system-x86_64', [...BASE, '-qmp', `${sq},server=on,wait=off`]);
  const procs: ChildProcess[] = [src, dst];
  let target = back;
  if (kind !== 'direct') {
    const capture = kind === 'capture' ? ['--capture', path.join(work, 'capture.mig')] : [];
    const proxy =
      kind === 'floor'
        ? start('python3', [path.join(repo, 'bench', 'splice-relay.py'), String(front), String(back)], { pipe: true })
        : start(process.execPath, [cli, 'proxy', '--listen', `tcp:127.0.0.1:${front}`, '--to', `tcp:127.0.0.1:${back}`, ...capture], { pipe: true });
    await new Promise<void>((resolve) => proxy.stderr?.on('data', (d: Buffer) => /listening on/.test(String(d)) && resolve()));
    procs.push(proxy);
    target = front;
  }
  const s = await connectQmp(sq);
  const d = await connectQmp(dq);
  await s.execute('migrate-set-parameters', { 'max-bandwidth': 100 * 2 ** 30 });
  await s.execute('migrate', { uri: `tcp:127.0.0.1:${target}` });
  const info = (await pollMigration(s)) as MigrateInfo;
  await quitAll([s, d], procs);
  if (info.status !== 'completed') throw new Error(`${kind}: the migration ended ${info.status}`);
  return info['total-time'] ?? 0;
}

const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Math.max(1, Number(process.argv[runsArg + 1]) || 1) : 5;
const times: Record<Kind, number[]> = { direct: [], proxy: [], capture: [], floor: [] };
for (let i = 0; i < RUNS; i++) for (const kind of KINDS) times[kind].push(await once(kind));
console.log('vmstate proxy between two QEMU 7.2s (paused 1 GiB guest, 900 MiB random, tcp loopback, unlimited bandwidth)');
console.log(`${RUNS} runs each, alternating      total-time median   each run (ms)`);
for (const kind of KINDS) console.log(`  ${kind.padEnd(28)} ${String(median(times[kind])).padStart(8)} ms   ${times[kind].join(' ')}`);
const ratio = (k: Kind) => median(times[k]) / median(times.direct);
console.log(`  proxy / direct: ${ratio('proxy').toFixed(2)} (target <= 1.2); with --capture: ${ratio('capture').toFixed(2)} (target <= 1.5)`);
console.log(`  floor / direct: ${ratio('floor').toFixed(2)}: no relay does better here; proxy / floor: ${(median(times.proxy) / median(times.floor)).toFixed(2)}`);
