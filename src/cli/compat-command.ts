/**
 * `vmstate compat SOURCE DEST`: will the stream SOURCE (from the source QEMU) load into the QEMU that
 * wrote DEST (a stream of the same devices)? Exit 0 for "will load", 1 otherwise. With --dumps, OLD and
 * NEW are two QEMUs' -dump-vmstate files, compared class by class: exit 1 when there is a break.
 */
import { readFileSync } from 'node:fs';
import { compareDumps, compareStreams, formatCompat, formatDumpCompat, openStreamFile, parseVmstateDump, profileStream, requireVmdesc, type StreamProfile, type VmstateDump } from '../analyze/index.js';
import { IoError, UsageError } from '../errors.js';
import { parseArgs, type Output } from './args.js';

export async function compatCommand(argv: readonly string[], out: Output): Promise<number> {
  const args = parseArgs(argv, ['json', 'dumps'], []);
  if (args.flags.has('dumps')) {
    if (args.positional.length !== 2) throw new UsageError('compat --dumps takes OLD.json NEW.json (see vmstate help)');
    const report = compareDumps(readDump(args.positional[0]), readDump(args.positional[1]));
    out.stdout(args.flags.has('json') ? JSON.stringify(report, null, 2) + '\n' : formatDumpCompat(report));
    return report.findings.some((f) => f.severity === 'fail') ? 1 : 0;
  }
  if (args.positional.length !== 2) throw new UsageError('compat takes SOURCE DEST (see vmstate help)');
  const [source, dest] = await Promise.all(args.positional.map(profile));
  const report = compareStreams(source, dest);
  out.stdout(args.flags.has('json') ? JSON.stringify(report, null, 2) + '\n' : formatCompat(report));
  return report.verdict === 'will load' ? 0 : 1;
}

async function profile(path: string): Promise<StreamProfile> {
  const file = openStreamFile(path);
  try {
    return await profileStream(file.source(), requireVmdesc(file).vmdesc);
  } finally {
    file.close();
  }
}

function readDump(path: string): VmstateDump {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new IoError(`cannot read ${path}: ${(e as Error).message}`, { path });
  }
  return parseVmstateDump(text, path);
}
