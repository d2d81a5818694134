/**
 * `vmstate compat SOURCE DEST`: will the stream SOURCE (from the source QEMU) load into the destination
 * QEMU, described by DEST: a stream it wrote with the same devices, its -dump-vmstate JSON, or both?
 * Exit 0 for "will load", 1 otherwise. With --dumps, OLD and NEW are two QEMUs' -dump-vmstate files,
 * compared class by class: exit 1 when there is a break.
 */
import { compareDumps, compareStreams, compareStreamToDump, formatCompat, formatDumpCompat, parseVmstateDump, profileStreamFile, type StreamProfile, type VmstateDump } from '../analyze/index.js';
import { UsageError } from '../errors.js';
import { parseArgs, type Output } from './args.js';
import { readOrFail, startsWithMagic } from './input-file.js';

export async function compatCommand(argv: readonly string[], out: Output): Promise<number> {
  const args = parseArgs(argv, ['json', 'dumps'], []);
  if (args.flags.has('dumps')) {
    if (args.positional.length !== 2) throw new UsageError('compat --dumps takes OLD.json NEW.json (see vmstate help)');
    const report = compareDumps(readDump(args.positional[0]), readDump(args.positional[1]));
    out.stdout(args.flags.has('json') ? JSON.stringify(report, null, 2) + '\n' : formatDumpCompat(report));
    return report.findings.some((f) => f.severity === 'fail') ? 1 : 0;
  }
  if (args.positional.length !== 2 && args.positional.length !== 3) throw new UsageError('compat takes SOURCE DEST (see vmstate help)');
  // DEST: the destination's stream, its -dump-vmstate JSON, or both (in either order); a stream starts
  // with QEVM, anything else is read as a dump (as --vmdesc tells a stream from JSON).
  const [sourcePath, ...destPaths] = args.positional;
  const streams = destPaths.filter(startsWithMagic);
  const dumps = destPaths.filter((p) => !streams.includes(p));
  if (dumps.length > 1 || streams.length > 1) throw new UsageError('compat takes at most one destination stream and one -dump-vmstate file');
  const [source, dest] = await Promise.all([profileStreamFile(sourcePath), streams.length === 1 ? profileStreamFile(streams[0]) : undefined]);
  const report = dumps.length === 1 ? compareStreamToDump(source, readDump(dumps[0]), dest) : compareStreams(source, dest as StreamProfile);
  out.stdout(args.flags.has('json') ? JSON.stringify(report, null, 2) + '\n' : formatCompat(report));
  return report.verdict === 'will load' ? 0 : 1;
}

function readDump(path: string): VmstateDump {
  return parseVmstateDump(readOrFail(path).toString('utf8'), path);
}
