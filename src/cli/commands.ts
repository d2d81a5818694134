/** The commands behind `vmstate …`, written against small output callbacks so tests can run them in process. */
import fs from 'node:fs';
import path from 'node:path';
import {
  analyzeStreamJson,
  formatSectionTable,
  listSections,
  openStreamFile,
  parseEdit,
  pyDumps,
  parseVmdesc,
  readVmdescFromFile,
  requireVmdesc,
  rewriteStream,
  type PyJson,
  type SectionRow,
  type StreamFile,
  type Vmdesc,
} from '../analyze/index.js';
import { IoError, UsageError } from '../errors.js';
export type { Output } from './args.js';
import { parseArgs, type Output, type ParsedArgs } from './args.js';
import { ramDirSink } from './ram-dir.js';

const USAGE = `usage: vmstate <command> [options]

commands:
  analyze FILE                 print the stream's device state as JSON (as QEMU's analyze-migration.py -f)
    --desc                     print the VMDESCRIPTION instead (as analyze-migration.py -d desc)
    --ram-dir DIR              also write each RAM block's contents to its own file under DIR
    --vmdesc FILE              describe devices with this VMDESCRIPTION (a stream, or --desc JSON),
                               e.g. to read a stream that was cut short (also for sections, rewrite)
  sections FILE                one line per section: offset, type, id, idstr, instance, version, size
    --json                     the same as a JSON array
  rewrite IN OUT               decode every section and encode it again into OUT
    --set 'IDSTR[#N]:FIELD.PATH=VALUE'   change one value on the way (repeatable)
  order FILE                   check the section order against what QEMU's devices need (bridges before
                               IOMMUs before PCI devices, GICv3 before its ITS, virtio-mem before IOMMUs)
    --json                     the violations as JSON
  plan FILE.json               the save order of the entries in FILE.json, with the reason for each
    --json                     as JSON
    --edges-win                let dependencies override priorities (reported)
  snapshot MACHINE OUT.mig     boot the reference machine (a JSON description, or a name from machines/),
                               run its DMA workload, and save a snapshot
    --steps N                  workload steps before saving (default 10)
    --legacy-order             register bridges as QEMU did before 2018 (the IOMMU then loads first)
  restore OUT.mig MACHINE      load a snapshot into a fresh machine, run more steps, and compare every
                               DMA result and the RAM hash with an uninterrupted run (exit 1 if different)
    --steps N                  steps after the restore (default 10)
    --check-load-order         refuse a device reading state that is not loaded yet (LoadOrderError)
  vm MACHINE --qmp ADDRESS     run one VM process, driven over QMP (unix:PATH or tcp:HOST:PORT)
    --incoming URI|defer       wait for an incoming migration (tcp:, unix:, exec:, file:)
    --rate N                   workload steps per second (default 20)
    --paused                   stay paused after boot or after an incoming migration
    --loader FILE@ADDR         copy a file into guest RAM after boot (QEMU's -device loader)
  migrate --from QMP --to URI  migrate a running VM live, with progress
    --max-bandwidth B          bytes per second (e.g. 100M; 0 = unlimited)
    --downtime-limit MS        the longest pause allowed at switch-over
  demo                         live-migrate the default machine between two processes and verify it
  help                         this text
`;

function expectPositionals(args: ParsedArgs, names: readonly string[], command: string): string[] {
  if (args.positional.length !== names.length) {
    throw new UsageError(`${command} takes ${names.join(' ')} (see vmstate help)`);
  }
  return args.positional;
}

/**
 * The description to decode devices with: --vmdesc FILE if given (a stream whose trailer to use, or JSON
 * as `analyze --desc` prints it), else the stream's own trailer; null if neither exists and !required.
 */
function chooseVmdesc(stream: StreamFile, args: ParsedArgs, required: boolean): Vmdesc | null {
  const from = args.options.get('vmdesc')?.at(-1);
  if (from === undefined) return required ? requireVmdesc(stream).vmdesc : (readVmdescFromFile(stream)?.vmdesc ?? null);
  let head: Buffer;
  try {
    head = fs.readFileSync(from);
  } catch (e) {
    throw new IoError(`${from}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`, { path: from }, e);
  }
  if (head.length >= 4 && head.readUInt32BE(0) === 0x5145564d) {
    const other = openStreamFile(from);
    try {
      return requireVmdesc(other).vmdesc;
    } finally {
      other.close();
    }
  }
  return parseVmdesc(head, 0);
}

/** Runs one command line; resolves to the exit code. */
export async function runCommand(argv: readonly string[], out: Output): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'analyze':
      return analyzeCommand(rest, out);
    case 'sections':
      return sectionsCommand(rest, out);
    case 'rewrite':
      return rewriteCommand(rest, out);
    // The other commands load on demand: analyze, the command run most often, then starts without the
    // machine, migration and QMP code (and node:net, node:child_process, node:crypto).
    case 'order':
      return (await import('./order-command.js')).orderCommand(rest, out);
    case 'plan':
      return (await import('./plan-command.js')).planCommand(rest, out);
    case 'snapshot':
      return (await import('./machine-commands.js')).snapshotCommand(rest, out);
    case 'restore':
      return (await import('./machine-commands.js')).restoreCommand(rest, out);
    case 'vm':
      return (await import('./vm-command.js')).vmCommand(rest, out);
    case 'migrate':
      return (await import('./migrate-command.js')).migrateCommand(rest, out);
    case 'demo':
      return (await import('./demo-command.js')).demoCommand(rest, out);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      out.stdout(USAGE);
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command "${command}" (see vmstate help)`);
  }
}

async function analyzeCommand(argv: readonly string[], out: Output): Promise<number> {
  const args = parseArgs(argv, ['desc'], ['ram-dir', 'vmdesc']);
  const [file] = expectPositionals(args, ['FILE'], 'analyze');
  const stream = openStreamFile(file);
  try {
    const vmdesc = chooseVmdesc(stream, args, true) as Vmdesc;
    if (args.flags.has('desc')) {
      out.stdout(pyDumps(vmdesc as unknown as PyJson) + '\n');
      return 0;
    }
    const ramDir = args.options.get('ram-dir')?.at(-1);
    const sink = ramDir === undefined ? undefined : ramDirSink(ramDir, vmdesc.page_size);
    try {
      // Straight from the stream to JSON text: the same text as formatAnalysis(analyzeStream(...)), faster.
      const text = await analyzeStreamJson(stream.source(), vmdesc, { ram: sink });
      out.stdout(text);
    } finally {
      sink?.close();
    }
    return 0;
  } finally {
    stream.close();
  }
}

async function sectionsCommand(argv: readonly string[], out: Output): Promise<number> {
  const args = parseArgs(argv, ['json'], ['vmdesc']);
  const [file] = expectPositionals(args, ['FILE'], 'sections');
  const stream = openStreamFile(file);
  try {
    const rows: SectionRow[] = [];
    const print = () => out.stdout(args.flags.has('json') ? JSON.stringify(rows, null, 2) + '\n' : formatSectionTable(rows));
    try {
      await listSections(stream.source(), chooseVmdesc(stream, args, false), rows);
    } catch (e) {
      print(); // the sections before the failure are worth seeing
      throw e;
    }
    print();
    return 0;
  } finally {
    stream.close();
  }
}

async function rewriteCommand(argv: readonly string[], out: Output): Promise<number> {
  const args = parseArgs(argv, [], ['set', 'vmdesc']);
  const [input, output] = expectPositionals(args, ['IN', 'OUT'], 'rewrite');
  const edits = (args.options.get('set') ?? []).map(parseEdit);
  const stream = openStreamFile(input);
  // Write beside the target and rename at the end, so a failure never leaves half a stream behind.
  const tmp = path.join(path.dirname(path.resolve(output)), `.${path.basename(output)}.${process.pid}.tmp`);
  let fd: number;
  try {
    fd = fs.openSync(tmp, 'w');
  } catch (e) {
    stream.close();
    throw new IoError(`${output}: cannot write (${(e as Error).message})`, { path: output }, e);
  }
  try {
    const vmdesc = chooseVmdesc(stream, args, true) as Vmdesc;
    const result = await rewriteStream(stream.source(), vmdesc, (chunk) => {
      let done = 0;
      while (done < chunk.length) done += fs.writeSync(fd, chunk, done, chunk.length - done);
    }, edits);
    fs.closeSync(fd);
    fs.renameSync(tmp, output);
    if (edits.length > 0) out.stderr(`vmstate: wrote ${output} (${result.bytesWritten} bytes, ${result.editsApplied} edit(s))\n`);
    return 0;
  } catch (e) {
    try {
      fs.closeSync(fd);
    } catch {
      // already closed
    }
    fs.rmSync(tmp, { force: true });
    throw e;
  } finally {
    stream.close();
  }
}
