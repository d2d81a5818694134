/**
 * `vmstate explain SOURCE --error TEXT [--dest DEST]`: where in SOURCE the destination QEMU stopped, from
 * its error text, and with DEST (a stream the destination wrote) what differs there. Exit 0 when the text
 * places the stop, 1 when it does not.
 */
import { explainError, formatExplanation, profileStreamFile } from '../analyze/index.js';
import { UsageError } from '../errors.js';
import { parseArgs, type Output } from './args.js';

export async function explainCommand(argv: readonly string[], out: Output): Promise<number> {
  const args = parseArgs(argv, ['json'], ['error', 'dest']);
  const error = args.options.get('error')?.join('\n');
  if (args.positional.length !== 1 || error === undefined) throw new UsageError("explain takes SOURCE --error 'TEXT' (see vmstate help)");
  const destPath = args.options.get('dest')?.at(-1);
  const [source, dest] = await Promise.all([profileStreamFile(args.positional[0]), destPath === undefined ? undefined : profileStreamFile(destPath)]);
  const e = explainError(source, error, dest);
  out.stdout(args.flags.has('json') ? JSON.stringify(e, null, 2) + '\n' : formatExplanation(e));
  return e.stoppedAt === null ? 1 : 0;
}

