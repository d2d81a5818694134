// README.md's "Layout" lists the folders as they are: every path it names exists, every folder of src/
// is named, and test/ mirrors src/ as it says.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from './support/paths.js';
import { codeBlocks } from './support/readme-blocks.js';

const readme = fs.readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
const layout = codeBlocks(readme).find((b) => b.key === 'Layout');
/** The paths the Layout block names: the first word of each line that does not continue another. */
const named = (layout?.text ?? '').split('\n').flatMap((line) => /^(\S+)/.exec(line)?.[1] ?? []);
const folders = (dir: string) =>
  fs
    .readdirSync(path.join(repoRoot, dir), { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name);

test('README.md has a Layout block', () => {
  assert.ok(layout !== undefined, 'README.md has no code block under "## Layout"');
});

test("every path README.md's Layout names exists", () => {
  const missing = named.filter((p) => !fs.existsSync(path.join(repoRoot, p)));
  assert.deepEqual(missing, [], `README.md:${layout?.line} Layout names paths that do not exist`);
});

test("README.md's Layout names every folder of src/", () => {
  const unnamed = folders('src').filter((f) => !named.includes(`src/${f}/`));
  assert.deepEqual(unnamed, [], `README.md:${layout?.line} Layout leaves out these folders of src/`);
});

test('test/ mirrors src/, as the Layout says', () => {
  const untested = folders('src').filter((f) => !fs.existsSync(path.join(repoRoot, 'test', f)));
  assert.deepEqual(untested, [], 'these folders of src/ have no folder in test/');
});
