/**
 * `vmstate proxy --listen ADDR --to ADDR [--capture FILE]`: stands between a source QEMU and its
 * destination (see src/migration/proxy.ts). Exit 0 once a whole stream went by, else 1 with one line
 * naming the side that failed.
 */
import { runProxy } from '../migration/index.js';
import { UsageError } from '../errors.js';
import { parseSocketAddress } from '../stream/index.js';
import { parseArgs, type Output } from './args.js';

export async function proxyCommand(argv: readonly string[], out: Output): Promise<number> {
  const args = parseArgs(argv, [], ['listen', 'to', 'capture']);
  const listen = args.options.get('listen')?.at(-1);
  const to = args.options.get('to')?.at(-1);
  if (listen === undefined || to === undefined || args.positional.length > 0) throw new UsageError('proxy takes --listen ADDR --to ADDR (see vmstate help)');
  const result = await runProxy({
    listen: parseSocketAddress(listen, '--listen'),
    to: parseSocketAddress(to, '--to'),
    capture: args.options.get('capture')?.at(-1),
    onListening: (address) => out.stderr(`vmstate proxy: listening on ${address}, relaying to ${to}\n`),
  });
  out.stderr(`vmstate proxy: relayed ${result.bytes} bytes of the stream, ${result.returned} back\n`);
  return 0;
}
