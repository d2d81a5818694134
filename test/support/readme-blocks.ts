// README.md's TypeScript examples as programs: each ```ts block becomes a module in a scratch folder
// where `vmstate` is linked to this package, after the text a test puts before it (definitions for the
// names the example takes as given) and before the text it puts after it (checks on what it did).
// The modules are type-checked together with the project's TypeScript and compiler options, against
// the built declarations (dist/src/index.d.ts), then run one by one with Node. Whatever goes wrong is
// reported at the README line it comes from, or at the piece of test text it comes from.
//
// A generated module is a list of segments, each from the README (with its first line there) or from
// the test (with a name), so a line of the module maps back to where its text was written.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ts from 'typescript';
import { repoRoot } from './paths.js';

/** A fenced code block of a Markdown file. */
export interface CodeBlock {
  /** The word after the opening fence ("ts", "sh", …), or "". */
  readonly lang: string;
  /** The nearest heading above the block; with " (2)", " (3)", … for later blocks of its lang under it. */
  readonly key: string;
  /** 1-based line of the block's first line of code. */
  readonly line: number;
  readonly text: string;
}

/** Every fenced code block of a Markdown text, in order. */
export function codeBlocks(markdown: string): CodeBlock[] {
  const blocks: CodeBlock[] = [];
  const seen = new Map<string, number>();
  let heading = '(before any heading)';
  let open: { lang: string; line: number; lines: string[] } | null = null;
  markdown.split('\n').forEach((text, i) => {
    if (open !== null) {
      if (/^```\s*$/.test(text)) {
        const n = (seen.get(`${open.lang} ${heading}`) ?? 0) + 1;
        seen.set(`${open.lang} ${heading}`, n);
        blocks.push({ lang: open.lang, key: n === 1 ? heading : `${heading} (${n})`, line: open.line, text: open.lines.join('\n') });
        open = null;
      } else open.lines.push(text);
      return;
    }
    const fence = /^```(\S*)/.exec(text);
    if (fence !== null) open = { lang: fence[1], line: i + 2, lines: [] };
    else if (/^#{1,6} /.test(text)) heading = text.replace(/^#+ /, '').trim();
  });
  return blocks;
}

/** The TypeScript examples among a Markdown text's code blocks (```ts or ```typescript). */
export function typescriptBlocks(markdown: string): CodeBlock[] {
  return codeBlocks(markdown).filter((b) => b.lang === 'ts' || b.lang === 'typescript');
}

/** A piece of a generated module: README text (with its first line there) or test text (with a name). */
export interface Segment {
  readonly text: string;
  /** Where it was written: its first line in README.md, or a description of the test text. */
  readonly from: { readonly readmeLine: number } | { readonly what: string };
}

/** A program to build from segments, run in its own folder. */
export interface BlockProgram {
  /** How failures name it. */
  readonly name: string;
  readonly segments: readonly Segment[];
  /** Files to link into its folder (name there → existing path). */
  readonly files?: Readonly<Record<string, string>>;
}

/** What became of a program. */
export type BlockOutcome =
  | { readonly ok: false; readonly problem: string }
  | { readonly ok: true; readonly stdout: string; readonly dir: string };

interface Built {
  readonly program: BlockProgram;
  readonly dir: string;
  readonly file: string;
  /** Per segment: its first line (0-based) in the module. */
  readonly starts: readonly number[];
}

/** A README line, or "<what>, line N", for a 0-based line of a generated module. */
function whereIs(built: Built, line: number): string {
  let s = built.starts.length - 1;
  while (s > 0 && built.starts[s] > line) s--;
  const from = built.program.segments[s].from;
  const within = line - built.starts[s];
  return 'readmeLine' in from ? `README.md:${from.readmeLine + within}` : `${from.what}, line ${within + 1}`;
}

/** Rewrites `FILE:LINE[:COL]` of a generated module (as in a stack trace) to where that line was written. */
function mapLocations(built: Built, text: string): string {
  const file = built.file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return text.replace(new RegExp(`(?:file://)?${file}:(\\d+)(?::(\\d+))?`, 'g'), (_, line: string, col?: string) => {
    const at = whereIs(built, Number(line) - 1);
    return col === undefined ? at : `${at}:${col}`;
  });
}

/**
 * The project's compiler options (tsconfig.json), made to compile the scratch folder in place, with
 * source maps so that a stack trace names lines of the generated .ts modules. An example may declare
 * what it only shows (a type, say), so unused names are allowed there.
 */
function compilerOptions(scratch: string): ts.CompilerOptions {
  const configPath = path.join(repoRoot, 'tsconfig.json');
  const read = ts.readConfigFile(configPath, (p) => ts.sys.readFile(p));
  if (read.error !== undefined) throw new Error(ts.flattenDiagnosticMessageText(read.error.messageText, '\n'));
  const { options } = ts.convertCompilerOptionsFromJson(read.config.compilerOptions, repoRoot, configPath);
  return {
    ...options,
    rootDir: scratch,
    outDir: undefined,
    declaration: false,
    noUnusedLocals: false,
    sourceMap: true,
    typeRoots: [path.join(repoRoot, 'node_modules', '@types')],
  };
}

/**
 * Builds every program in a fresh scratch folder (under the OS temp folder, removed by the returned
 * cleanup), type-checks them together, and runs those that check out, each as `node main.js` in its
 * own folder. Outcomes come in the programs' order.
 */
export function runBlockPrograms(programs: readonly BlockProgram[]): { outcomes: BlockOutcome[]; cleanup: () => void } {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'vmstate-readme-'));
  const cleanup = () => fs.rmSync(scratch, { recursive: true, force: true });
  try {
    // `import … from 'vmstate'` resolves here as in a project that depends on vmstate.
    fs.mkdirSync(path.join(scratch, 'node_modules'));
    fs.symlinkSync(repoRoot, path.join(scratch, 'node_modules', 'vmstate'), 'dir');
    fs.writeFileSync(path.join(scratch, 'package.json'), JSON.stringify({ private: true, type: 'module' }));
    const built = programs.map((program, i): Built => {
      const dir = path.join(scratch, `block-${i + 1}`);
      fs.mkdirSync(dir);
      for (const [name, target] of Object.entries(program.files ?? {})) fs.symlinkSync(target, path.join(dir, name));
      const starts: number[] = [];
      let lines = 0;
      for (const segment of program.segments) {
        starts.push(lines);
        lines += segment.text.split('\n').length;
      }
      const file = path.join(dir, 'main.ts');
      fs.writeFileSync(file, program.segments.map((s) => s.text).join('\n'));
      return { program, dir, file, starts };
    });

    const options = compilerOptions(scratch);
    const tsProgram = ts.createProgram(
      built.map((b) => b.file),
      options,
    );
    const all = ts.getPreEmitDiagnostics(tsProgram);
    const describe = (d: ts.Diagnostic): string => {
      const message = `TS${d.code}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
      if (d.file === undefined || d.start === undefined) return message;
      const { line, character } = d.file.getLineAndCharacterOfPosition(d.start);
      const owner = built.find((b) => path.resolve(b.file) === path.resolve(d.file?.fileName ?? ''));
      const at = owner === undefined ? `${d.file.fileName}:${line + 1}` : whereIs(owner, line);
      return `${at}:${character + 1}: ${message}`;
    };
    // Diagnostics outside every block (a broken declaration file, say) concern them all.
    const elsewhere = all.filter((d) => !built.some((b) => path.resolve(b.file) === path.resolve(d.file?.fileName ?? '')));

    const outcomes = built.map((b): BlockOutcome => {
      const own = all.filter((d) => d.file !== undefined && path.resolve(d.file.fileName) === path.resolve(b.file));
      const errors = [...elsewhere, ...own].filter((d) => d.category === ts.DiagnosticCategory.Error);
      if (errors.length > 0) {
        return { ok: false, problem: `${b.program.name} does not type-check:\n${errors.map(describe).join('\n')}` };
      }
      const source = tsProgram.getSourceFile(b.file);
      const emitted = tsProgram.emit(source);
      if (emitted.emitSkipped) return { ok: false, problem: `${b.program.name}: TypeScript emitted nothing` };
      const run = spawnSync(process.execPath, ['--enable-source-maps', 'main.js'], {
        cwd: b.dir,
        encoding: 'utf8',
        timeout: 60_000,
        maxBuffer: 64 * 1024 * 1024,
      });
      if (run.error !== undefined || run.status !== 0) {
        const why = run.error?.message ?? (run.signal !== null ? `killed by ${run.signal}` : `exit status ${run.status}`);
        return { ok: false, problem: `${b.program.name} failed when run (${why}):\n${mapLocations(b, run.stderr.trim())}` };
      }
      return { ok: true, stdout: run.stdout, dir: b.dir };
    });
    return { outcomes, cleanup };
  } catch (err) {
    cleanup();
    throw err;
  }
}
