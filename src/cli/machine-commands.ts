/**
 * `vmstate snapshot` and `vmstate restore`: the reference machine's story in two commands. snapshot boots
 * a machine from its description, runs the workload and saves, as QEMU 7.2 or (`--qemu 10.0`) 10.0 writes
 * a stream; restore loads a snapshot of either into a fresh machine (buses not numbered, IOMMU caches
 * empty, as a destination QEMU starts), runs more steps, and compares every DMA result and the RAM hash
 * with a machine that ran the same steps without interruption.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import { loadMachineDescription, Machine, type DmaResult, type MachineDescription } from '../machine/index.js';
import { QEMU_DIALECTS, type QemuDialect } from '../savevm/index.js';
import { ChunkedSource } from '../stream/index.js';
import { openStreamFile } from '../analyze/index.js';
import { parseArgs, type Output } from './args.js';
import { writeAtomically } from './write-atomically.js';
import { packageRoot } from './package-root.js';

/** The machines shipped in the package's machines/ folder. */
export function machinesDir(): string {
  return join(packageRoot(), 'machines');
}

/** A description by path, or by the name of a shipped machine (`q35-default`). */
export function resolveMachine(arg: string): MachineDescription {
  if (!existsSync(arg) && /^[a-z0-9-]+$/.test(arg) && existsSync(join(machinesDir(), `${arg}.json`))) {
    return loadMachineDescription(join(machinesDir(), `${arg}.json`));
  }
  return loadMachineDescription(arg);
}

/** `--qemu 7.2|10.0`: the release whose streams a machine writes; undefined leaves it to the machine. */
export function qemuOption(args: ReturnType<typeof parseArgs>): QemuDialect | undefined {
  const v = args.options.get('qemu')?.at(-1);
  if (v === undefined) return undefined;
  if (!Object.hasOwn(QEMU_DIALECTS, v)) throw new UsageError(`--qemu ${v}: expected one of ${Object.keys(QEMU_DIALECTS).join(', ')}`);
  return QEMU_DIALECTS[v];
}

function steps(args: ReturnType<typeof parseArgs>, fallback: number): number {
  const v = args.options.get('steps')?.at(-1);
  if (v === undefined) return fallback;
  if (!/^\d+$/.test(v) || Number(v) > 1e6) throw new UsageError(`--steps ${v}: expected a whole number up to 1000000`);
  return Number(v);
}

export async function snapshotCommand(argv: readonly string[], out: Output): Promise<number> {
  const args = parseArgs(argv, ['legacy-order'], ['steps', 'qemu']);
  if (args.positional.length !== 2) throw new UsageError('snapshot takes MACHINE.json OUT.mig (see vmstate help)');
  const [machinePath, target] = args.positional;
  const legacy = args.flags.has('legacy-order');
  const machine = new Machine(resolveMachine(machinePath), { legacyOrder: legacy, dialect: qemuOption(args) });
  machine.boot();
  const n = steps(args, 10);
  const t0 = performance.now();
  machine.run(n);
  const ranMs = performance.now() - t0;
  const t1 = performance.now();
  let order: string[] = [];
  const bytes = await writeAtomically(target, (sink) => {
    order = machine.save(sink).entries.filter((e) => e.vmsd).map((e) => e.idstr);
  });
  const savedMs = performance.now() - t1;
  const d = machine.description;
  out.stdout(
    `${d.name}: ran ${n} steps (${machine.engines.length} dma-engines, ${machine.iommus.length} ${d.flavour === 'q35' ? 'VT-d' : 'SMMUv3'} unit(s)) in ${ranMs.toFixed(0)} ms\n` +
      `saved ${target}: ${bytes} bytes as QEMU ${machine.dialect.version} writes them (${machine.machineType}), RAM then ${order.length} device sections in ${legacy ? 'legacy (pre-2018) order' : 'dependency order'}, ${savedMs.toFixed(0)} ms\n` +
      `order: ${summarizeOrder(order)}\n`,
  );
  return 0;
}

/** The first sections of an order, enough to see bridges, IOMMU and devices. */
function summarizeOrder(order: readonly string[]): string {
  const shown = order.slice(0, 6).join(', ');
  return order.length > 6 ? `${shown}, ... (${order.length - 6} more)` : shown;
}

export async function restoreCommand(argv: readonly string[], out: Output): Promise<number> {
  const args = parseArgs(argv, ['check-load-order'], ['steps']);
  if (args.positional.length !== 2) throw new UsageError('restore takes OUT.mig MACHINE.json (see vmstate help)');
  const [snapshot, machinePath] = args.positional;
  const description = resolveMachine(machinePath);
  const n = steps(args, 10);

  const restored = new Machine(description);
  const file = openStreamFile(snapshot);
  const t0 = performance.now();
  let loaded: number;
  try {
    const src: ChunkedSource = file.source();
    loaded = (await restored.load(src, { checkLoadOrder: args.flags.has('check-load-order') })).loaded.length;
  } finally {
    file.close();
  }
  const loadMs = performance.now() - t0;
  const before = restored.step;
  const after = restored.run(n);

  const reference = new Machine(description);
  reference.boot();
  reference.run(before);
  const expected = reference.run(n);

  const mismatches = compareResults(after, expected, before);
  const hashOk = restored.ramHash() === reference.ramHash();
  out.stdout(`restored ${snapshot} into ${description.name}: ${loaded} sections in ${loadMs.toFixed(0)} ms, at step ${before}\n`);
  if (mismatches.length === 0 && hashOk) {
    out.stdout(`ran ${n} more steps: every DMA result (${restored.engines.length} engines x ${n} steps) and the RAM hash equal the uninterrupted run\n`);
    return 0;
  }
  const faults = after.flat().filter((r) => r.status === 2).length;
  out.stdout(`MISMATCH after restore: ${mismatches.length} of ${restored.engines.length * n} DMA results differ from the uninterrupted run (${faults} faulted); RAM hash ${hashOk ? 'equal' : 'differs'}\n`);
  for (const m of mismatches.slice(0, 5)) out.stdout(`  ${m}\n`);
  if (mismatches.length > 5) out.stdout(`  ... ${mismatches.length - 5} more\n`);
  return 1;
}

function compareResults(got: readonly DmaResult[][], want: readonly DmaResult[][], firstStep: number): string[] {
  const out: string[] = [];
  const status = (s: number) => ['IDLE', 'DONE', 'FAULT'][s] ?? String(s);
  got.forEach((row, i) =>
    row.forEach((r, k) => {
      const w = want[i]?.[k];
      if (w && (w.status !== r.status || w.checksum !== r.checksum)) {
        out.push(`step ${firstStep + i}, ${r.engine}: ${status(r.status)} checksum 0x${r.checksum.toString(16)}, expected ${status(w.status)} checksum 0x${w.checksum.toString(16)}`);
      }
    }),
  );
  return out;
}
