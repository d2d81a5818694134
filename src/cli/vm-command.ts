/**
 * `vmstate vm MACHINE --qmp ADDRESS [--incoming URI|defer] [--qemu 7.2|10.0] [--dirty PAGES/s]
 * [-object SPEC]... [-global migration.tls-creds=ID]...`: runs one VM process until it is told to quit.
 * `--qemu` is the release whose stream its outgoing migrations send; it loads either. `-object` and
 * `-global` are QEMU's (keyval.ts), for TLS: credentials and authorization objects, and the migration's
 * tls-creds/tls-hostname/tls-authz.
 */
import { readFileSync } from 'node:fs';
import { IoError, UsageError } from '../errors.js';
import { MAX_DIRTY_RATE } from '../machine/index.js';
import { startQmpServer } from '../qmp/index.js';
import { qemuOption, resolveMachine } from './machine-commands.js';
import { parseArgs, type Output } from './args.js';
import { parseGlobalOption, parseObjectOption } from './keyval.js';
import { VmProcess } from './vm-process.js';

export async function vmCommand(argv: readonly string[], out: Output): Promise<number> {
  // QEMU spells these with one dash.
  const spelled = argv.map((a) => (a === '-object' || a === '-global' || a === '-mem-prealloc' ? `-${a}` : a));
  const args = parseArgs(spelled, ['paused', 'check-load-order', 'mem-prealloc'], ['qmp', 'incoming', 'rate', 'dirty', 'loader', 'qemu', 'object', 'global']);
  if (args.positional.length !== 1) throw new UsageError('vm takes MACHINE (see vmstate help)');
  const qmp = args.options.get('qmp')?.at(-1);
  if (!qmp) throw new UsageError('vm needs --qmp unix:PATH or --qmp tcp:HOST:PORT');
  const rateText = args.options.get('rate')?.at(-1) ?? '20';
  const rate = Number(rateText);
  if (!Number.isFinite(rate) || rate <= 0 || rate > 1000) throw new UsageError(`--rate ${rateText}: expected steps per second, up to 1000`);
  const dirtyText = args.options.get('dirty')?.at(-1);
  const dirtyRate = dirtyText === undefined ? undefined : Number(dirtyText);
  if (dirtyRate !== undefined && !(Number.isInteger(dirtyRate) && dirtyRate > 0 && dirtyRate <= MAX_DIRTY_RATE)) {
    throw new UsageError(`--dirty ${dirtyText}: expected guest RAM pages written per second, 1 to ${MAX_DIRTY_RATE}`);
  }
  const description = resolveMachine(args.positional[0]);
  const loaders = (args.options.get('loader') ?? []).map(parseLoader);
  const dialect = qemuOption(args);
  const objects = (args.options.get('object') ?? []).map(parseObjectOption);
  const parameters = Object.fromEntries((args.options.get('global') ?? []).map(parseGlobalOption));

  let finish: (code: number) => void = () => undefined;
  const done = new Promise<number>((resolve) => (finish = resolve));
  const vm = new VmProcess(description, {
    rate,
    dirtyRate,
    incoming: args.options.get('incoming')?.at(-1),
    startPaused: args.flags.has('paused'),
    memPrealloc: args.flags.has('mem-prealloc'),
    checkLoadOrder: args.flags.has('check-load-order'),
    loaders,
    dialect,
    objects,
    parameters,
    exit: (code) => finish(code),
    log: (line) => out.stderr(`${line}\n`),
  });
  const server = await startQmpServer(qmp, vm);
  out.stderr(`vmstate vm: ${description.name} ${vm.queryStatus().status}, QMP on ${server.address}\n`);
  const code = await done;
  await server.close();
  return code;
}

/** `FILE@ADDR`: a file copied into guest RAM at a guest-physical address (like QEMU's loader device). */
function parseLoader(spec: string): { data: Uint8Array; addr: number } {
  const at = spec.lastIndexOf('@');
  const addrText = at < 0 ? '' : spec.slice(at + 1);
  if (at <= 0 || !/^(0x[0-9a-f]+|\d+)$/i.test(addrText)) throw new UsageError(`--loader ${spec}: expected FILE@ADDRESS, e.g. random.bin@0x4000000`);
  const file = spec.slice(0, at);
  try {
    return { data: readFileSync(file), addr: Number(addrText) };
  } catch (e) {
    throw new IoError(`--loader ${file}: ${(e as Error).message}`, { path: file }, e);
  }
}
