// The committed streams written by real QEMU: 7.2's in test/fixtures, 10.0's in test/fixtures/qemu-10.0.
// Adding NAME.mig with NAME.analyze.json (and NAME.desc.json) to either adds tests.
import fs from 'node:fs';
import path from 'node:path';
import { SCRIPT_10_0, SCRIPT_7_2, type AnalyzeScript } from '../../src/analyze/index.js';
import { fixturesDir } from './paths.js';

export interface Fixture {
  /** The stream's name; 10.0's are `qemu-10.0/NAME`. */
  readonly name: string;
  /** The QEMU that wrote it. */
  readonly qemu: '7.2' | '10.0';
  /** The analyze-migration.py whose output `analyzeJson` is. */
  readonly script: AnalyzeScript;
  readonly stream: string;
  /** analyze-migration.py -f output (7.2's aarch64: on a copy without configuration subsections). */
  readonly analyzeJson: string | null;
  /** analyze-migration.py -d desc output. */
  readonly descJson: string | null;
}

const SETS = [
  { qemu: '7.2', dir: fixturesDir, prefix: '', script: SCRIPT_7_2 },
  { qemu: '10.0', dir: path.join(fixturesDir, 'qemu-10.0'), prefix: 'qemu-10.0/', script: SCRIPT_10_0 },
] as const;

/** Every fixture, 7.2's first; `qemu` picks one set. */
export function fixtures(qemu?: Fixture['qemu']): Fixture[] {
  return SETS.filter((s) => qemu === undefined || s.qemu === qemu).flatMap((set) =>
    fs
      .readdirSync(set.dir)
      .filter((f) => f.endsWith('.mig'))
      .sort()
      .map((f) => {
        const base = f.slice(0, -'.mig'.length);
        const opt = (suffix: string) => {
          const p = path.join(set.dir, base + suffix);
          return fs.existsSync(p) ? p : null;
        };
        return {
          name: set.prefix + base,
          qemu: set.qemu,
          script: set.script,
          stream: path.join(set.dir, f),
          analyzeJson: opt('.analyze.json'),
          descJson: opt('.desc.json'),
        };
      }),
  );
}
