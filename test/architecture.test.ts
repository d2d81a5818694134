// The dependency rule from STYLE.md: folders import each other only downwards and only through index.ts,
// and stream/ stays free of node:* so it runs in a browser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from './support/paths.js';

/** Which folders each folder may import. `analyze` sits beside savevm. */
const ALLOWED: Record<string, readonly string[]> = {
  '.': ['.', 'stream', 'savevm', 'ram', 'analyze', 'vmstate', 'machine', 'migration', 'qmp'],
  stream: [],
  vmstate: ['stream'],
  savevm: ['stream', 'vmstate'],
  ram: ['stream', 'savevm'],
  machine: ['stream', 'vmstate', 'savevm', 'ram'],
  v86: ['stream', 'vmstate', 'savevm', 'ram'],
  analyze: ['stream', 'vmstate', 'savevm', 'ram'],
  migration: ['stream', 'vmstate', 'savevm', 'ram', 'machine', 'analyze'],
  qmp: ['stream', 'vmstate', 'savevm', 'ram', 'machine', 'analyze', 'migration'],
  cli: ['stream', 'vmstate', 'savevm', 'ram', 'machine', 'analyze', 'migration', 'qmp'],
};
const BROWSER_SAFE = new Set(['stream', 'vmstate']);

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sourceFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

test('imports under src/ follow the dependency table', () => {
  const src = path.join(repoRoot, 'src');
  const problems: string[] = [];
  for (const file of sourceFiles(src)) {
    const rel = path.relative(src, file);
    const folder = rel.includes(path.sep) ? rel.split(path.sep)[0] : '.';
    const text = fs.readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^(?:import|export)[^'"]*from\s+['"]([^'"]+)['"]/gm)) {
      const spec = m[1];
      if (spec.startsWith('node:')) {
        if (BROWSER_SAFE.has(folder)) problems.push(`${rel}: ${folder}/ must not import ${spec}`);
        continue;
      }
      if (!spec.startsWith('.')) {
        if (folder !== 'cli') problems.push(`${rel}: runtime dependency ${spec} outside cli/`);
        continue;
      }
      const target = path.relative(src, path.resolve(path.dirname(file), spec));
      const targetFolder = target.includes(path.sep) ? target.split(path.sep)[0] : '.';
      if (targetFolder === folder) continue;
      if (targetFolder === '.' && target === 'errors.js') continue;
      if (!(ALLOWED[folder] ?? []).includes(targetFolder)) problems.push(`${rel}: ${folder}/ may not import ${targetFolder}/ (${spec})`);
      else if (path.basename(target) !== 'index.js') problems.push(`${rel}: import ${targetFolder}/ through its index.ts, not ${spec}`);
    }
  }
  assert.deepEqual(problems, []);
});
