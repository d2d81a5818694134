// The committed QEMU 7.2 streams: adding NAME.mig with NAME.analyze.json (and NAME.desc.json) adds tests.
import fs from 'node:fs';
import path from 'node:path';
import { fixturesDir } from './paths.js';

export interface Fixture {
  readonly name: string;
  readonly stream: string;
  /** analyze-migration.py -f output (for aarch64: on a copy without configuration subsections). */
  readonly analyzeJson: string | null;
  /** analyze-migration.py -d desc output. */
  readonly descJson: string | null;
}

export function fixtures(): Fixture[] {
  return fs
    .readdirSync(fixturesDir)
    .filter((f) => f.endsWith('.mig'))
    .sort()
    .map((f) => {
      const name = f.slice(0, -'.mig'.length);
      const opt = (suffix: string) => {
        const p = path.join(fixturesDir, name + suffix);
        return fs.existsSync(p) ? p : null;
      };
      return { name, stream: path.join(fixturesDir, f), analyzeJson: opt('.analyze.json'), descJson: opt('.desc.json') };
    });
}
