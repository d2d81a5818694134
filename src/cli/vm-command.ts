/** `vmstate vm MACHINE --qmp ADDRESS [--incoming URI|defer]`: runs one VM process until it is told to quit. */
import { UsageError } from '../errors.js';
import { startQmpServer } from '../qmp/index.js';
import { resolveMachine } from './machine-commands.js';
import { parseArgs, type Output } from './args.js';
import { VmProcess } from './vm-process.js';

export async function vmCommand(argv: readonly string[], out: Output): Promise<number> {
  const args = parseArgs(argv, ['paused', 'check-load-order'], ['qmp', 'incoming', 'rate']);
  if (args.positional.length !== 1) throw new UsageError('vm takes MACHINE (see vmstate help)');
  const qmp = args.options.get('qmp')?.at(-1);
  if (!qmp) throw new UsageError('vm needs --qmp unix:PATH or --qmp tcp:HOST:PORT');
  const rateText = args.options.get('rate')?.at(-1) ?? '20';
  const rate = Number(rateText);
  if (!Number.isFinite(rate) || rate <= 0 || rate > 1000) throw new UsageError(`--rate ${rateText}: expected steps per second, up to 1000`);
  const description = resolveMachine(args.positional[0]);

  let finish: (code: number) => void = () => undefined;
  const done = new Promise<number>((resolve) => (finish = resolve));
  const vm = new VmProcess(description, {
    rate,
    incoming: args.options.get('incoming')?.at(-1),
    startPaused: args.flags.has('paused'),
    checkLoadOrder: args.flags.has('check-load-order'),
    exit: (code) => finish(code),
    log: (line) => out.stderr(`${line}\n`),
  });
  const server = await startQmpServer(qmp, vm);
  out.stderr(`vmstate vm: ${description.name} ${vm.queryStatus().status}, QMP on ${server.address}\n`);
  const code = await done;
  await server.close();
  return code;
}
