/** `--vmdesc FILE`, which the stream commands share: the description to decode device sections with. */
import { openStreamFile, parseVmdesc, readVmdescFromFile, requireVmdesc, type StreamFile, type Vmdesc } from '../analyze/index.js';
import type { ParsedArgs } from './args.js';
import { readOrFail, startsWithMagic } from './input-file.js';

/**
 * --vmdesc FILE if given (a stream whose trailer to use, or JSON as `analyze --desc` prints it), else the
 * stream's own trailer; null if neither exists and !required.
 */
export function chooseVmdesc(stream: StreamFile, args: ParsedArgs, required: boolean): Vmdesc | null {
  const from = args.options.get('vmdesc')?.at(-1);
  if (from === undefined) return required ? requireVmdesc(stream).vmdesc : (readVmdescFromFile(stream)?.vmdesc ?? null);
  if (startsWithMagic(from)) {
    const other = openStreamFile(from);
    try {
      return requireVmdesc(other).vmdesc;
    } finally {
      other.close();
    }
  }
  return parseVmdesc(readOrFail(from), 0);
}
