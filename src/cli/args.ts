/** Argument parsing shared by the commands: positionals, boolean flags, repeatable valued options. */
import { UsageError } from '../errors.js';

/** Where a command prints. Bytes are written as they are (analyze's JSON is already ASCII bytes). */
export interface Output {
  stdout(s: string | Uint8Array): void;
  stderr(s: string): void;
}

export interface ParsedArgs {
  readonly positional: string[];
  readonly flags: Set<string>;
  readonly options: Map<string, string[]>;
}

/** Splits argv into positionals, boolean flags and (repeatable) valued options; `--` ends options. */
export function parseArgs(argv: readonly string[], booleans: readonly string[], valued: readonly string[]): ParsedArgs {
  const positional: string[] = [];
  const flags = new Set<string>();
  const options = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
      if (booleans.includes(name) && eq < 0) {
        flags.add(name);
      } else if (valued.includes(name)) {
        const value = eq >= 0 ? a.slice(eq + 1) : argv[++i];
        if (value === undefined) throw new UsageError(`option --${name} needs a value`);
        options.set(name, [...(options.get(name) ?? []), value]);
      } else {
        throw new UsageError(`unknown option ${a}`);
      }
    } else {
      positional.push(a);
    }
  }
  return { positional, flags, options };
}
