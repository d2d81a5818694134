/** The stream commands: analyze, sections, rewrite. Loaded on demand, like every command. */
import {
  ANALYZE_SCRIPTS,
  analyzeStreamJson,
  DEFAULT_SCRIPT,
  formatIdentity,
  formatSectionTable,
  identifyStream,
  listRecords,
  openStreamFile,
  parseEdit,
  pyDumps,
  rewriteStream,
  type PyJson,
  type RecordRow,
  type Vmdesc,
} from '../analyze/index.js';
import { UsageError } from '../errors.js';
import { parseArgs, type Output, type ParsedArgs } from './args.js';
import { ramDirSink } from './ram-dir.js';
import { chooseVmdesc } from './vmdesc-option.js';
import { writeAtomically } from './write-atomically.js';

function expectPositionals(args: ParsedArgs, names: readonly string[], command: string): string[] {
  if (args.positional.length !== names.length) {
    throw new UsageError(`${command} takes ${names.join(' ')} (see vmstate help)`);
  }
  return args.positional;
}

/** Runs one command line; resolves to the exit code. */
export async function analyzeCommand(argv: readonly string[], out: Output): Promise<number> {
  const args = parseArgs(argv, ['desc'], ['ram-dir', 'vmdesc', 'compat']);
  const [file] = expectPositionals(args, ['FILE'], 'analyze');
  const compat = args.options.get('compat')?.at(-1);
  const script = compat === undefined ? DEFAULT_SCRIPT : ANALYZE_SCRIPTS[compat];
  if (script === undefined) throw new UsageError(`--compat ${compat}: expected one of ${Object.keys(ANALYZE_SCRIPTS).join(', ')}`);
  const stream = openStreamFile(file);
  try {
    const vmdesc = chooseVmdesc(stream, args, true) as Vmdesc;
    if (args.flags.has('desc')) {
      out.stdout(pyDumps(vmdesc as unknown as PyJson) + '\n');
      return 0;
    }
    const ramDir = args.options.get('ram-dir')?.at(-1);
    const sink = ramDir === undefined ? undefined : ramDirSink(ramDir, vmdesc.page_size, stream);
    try {
      // Straight from the stream to JSON text: the same text as formatAnalysis(analyzeStream(...)), faster.
      const text = await analyzeStreamJson(stream.source(), vmdesc, { ram: sink, script, note: (line) => out.stderr(`vmstate: note: ${line}\n`) });
      out.stdout(text);
    } finally {
      sink?.close();
    }
    return 0;
  } finally {
    stream.close();
  }
}

export async function identifyCommand(argv: readonly string[], out: Output): Promise<number> {
  const args = parseArgs(argv, ['json'], ['vmdesc']);
  const [file] = expectPositionals(args, ['FILE'], 'identify');
  const stream = openStreamFile(file);
  try {
    const id = await identifyStream(stream.source(), chooseVmdesc(stream, args, false));
    out.stdout(args.flags.has('json') ? JSON.stringify(id, null, 2) + '\n' : formatIdentity(id));
    return 0;
  } finally {
    stream.close();
  }
}

export async function sectionsCommand(argv: readonly string[], out: Output): Promise<number> {
  const args = parseArgs(argv, ['json'], ['vmdesc']);
  const [file] = expectPositionals(args, ['FILE'], 'sections');
  const stream = openStreamFile(file);
  try {
    const rows: RecordRow[] = [];
    const print = () => out.stdout(args.flags.has('json') ? JSON.stringify(rows, null, 2) + '\n' : formatSectionTable(rows));
    try {
      await listRecords(stream.source(), chooseVmdesc(stream, args, false), rows);
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

export async function rewriteCommand(argv: readonly string[], out: Output): Promise<number> {
  const args = parseArgs(argv, [], ['set', 'vmdesc']);
  const [input, output] = expectPositionals(args, ['IN', 'OUT'], 'rewrite');
  const edits = (args.options.get('set') ?? []).map(parseEdit);
  const stream = openStreamFile(input);
  try {
    const vmdesc = chooseVmdesc(stream, args, true) as Vmdesc;
    let result = { bytesWritten: 0, editsApplied: 0 };
    await writeAtomically(output, async (sink) => {
      result = await rewriteStream(stream.source(), vmdesc, sink, edits);
    });
    if (edits.length > 0) out.stderr(`vmstate: wrote ${output} (${result.bytesWritten} bytes, ${result.editsApplied} edit(s))\n`);
    return 0;
  } finally {
    stream.close();
  }
}
