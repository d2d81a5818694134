/**
 * `vmstate compat SOURCE DEST`: will the stream SOURCE (from the source QEMU) load into the destination
 * QEMU, described by DEST: a stream it wrote with the same devices, its -dump-vmstate JSON, or both?
 * Exit 0 for "will load", 1 otherwise. With --dumps, OLD and
 * NEW are two QEMUs' -dump-vmstate files, compared class by class: exit 1 when there is a break.
 */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { compareDumps, compareStreams, compareStreamToDump, formatCompat, formatDumpCompat, parseVmstateDump, profileStreamFile, type StreamProfile, type VmstateDump } from '../analyze/index.js';
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
  if (args.positional.length !== 2 && args.positional.length !== 3) throw new UsageError('compat takes SOURCE DEST (see vmstate help)');
  // DEST: the destination's stream, its -dump-vmstate JSON, or both (in either order).
  const [sourcePath, ...destPaths] = args.positional;
  const dumps = destPaths.filter(isJson);
  const streams = destPaths.filter((p) => !isJson(p));
  if (dumps.length > 1 || streams.length > 1) throw new UsageError('compat takes at most one destination stream and one -dump-vmstate file');
  const [source, dest] = await Promise.all([profileStreamFile(sourcePath), streams.length === 1 ? profileStreamFile(streams[0]) : undefined]);
  const report = dumps.length === 1 ? compareStreamToDump(source, readDump(dumps[0]), dest) : compareStreams(source, dest as StreamProfile);
  out.stdout(args.flags.has('json') ? JSON.stringify(report, null, 2) + '\n' : formatCompat(report));
  return report.verdict === 'will load' ? 0 : 1;
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

/** True if the file's first non-blank byte is `{`: a -dump-vmstate file, not a stream (which starts QEVM). */
function isJson(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new IoError(`cannot read ${path}: ${(e as Error).message}`, { path });
  }
  try {
    const head = new Uint8Array(64);
    const n = readSync(fd, head, 0, head.length, 0);
    const first = head.subarray(0, n).find((b) => b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09);
    return first === 0x7b;
  } finally {
    closeSync(fd);
  }
}
