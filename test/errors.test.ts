// The error set is closed: everything src/ throws or rejects with is a VmstateError subclass, so callers
// can branch on `code`. A scan of the sources keeps it true; it is itself tested on sources that break it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { IoError, LoadError, SaveError, SectionError, UsageError, VmstateError } from '../src/errors.js';
import { repoRoot } from './support/paths.js';

/** JavaScript's own error constructors: src/ must not construct any of them. */
const BUILTIN = new Set(['Error', 'RangeError', 'TypeError', 'SyntaxError', 'ReferenceError', 'EvalError', 'URIError', 'AggregateError']);

/**
 * The places in `files` (name to source text) that construct or throw an error outside the VmstateError
 * family: `new` of a built-in error, `throw new` of any class that does not descend from VmstateError,
 * and a class that extends a built-in error (VmstateError itself excepted).
 */
function foreignErrors(files: ReadonlyMap<string, string>): string[] {
  const parent = new Map<string, string>();
  for (const text of files.values()) {
    for (const m of text.matchAll(/\bclass\s+(\w+)(?:<[^>{]*>)?\s+extends\s+(\w+)/g)) parent.set(m[1], m[2]);
  }
  const isVmstateError = (name: string): boolean => {
    for (let n: string | undefined = name, hops = 0; n !== undefined && hops < 50; n = parent.get(n), hops++) {
      if (n === 'VmstateError') return true;
    }
    return false;
  };
  const problems: string[] = [];
  for (const [file, text] of files) {
    const at = (index: number) => `${file}:${text.slice(0, index).split('\n').length}`;
    for (const m of text.matchAll(/\bclass\s+(\w+)(?:<[^>{]*>)?\s+extends\s+(\w+)/g)) {
      if (BUILTIN.has(m[2]) && m[1] !== 'VmstateError') problems.push(`${at(m.index)}: class ${m[1]} extends ${m[2]}`);
    }
    for (const m of text.matchAll(/\bnew\s+(\w+)\s*\(/g)) {
      if (BUILTIN.has(m[1])) problems.push(`${at(m.index)}: new ${m[1]}`);
    }
    for (const m of text.matchAll(/\bthrow\s+new\s+(\w+)/g)) {
      if (!BUILTIN.has(m[1]) && !isVmstateError(m[1])) problems.push(`${at(m.index)}: throw new ${m[1]}`);
    }
  }
  return problems;
}

function sources(dir: string, out = new Map<string, string>()): Map<string, string> {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) sources(p, out);
    else if (/\.[cm]?ts$/.test(e.name)) out.set(path.relative(repoRoot, p), fs.readFileSync(p, 'utf8'));
  }
  return out;
}

test('src/ throws and rejects only with VmstateError subclasses', () => {
  const files = sources(path.join(repoRoot, 'src'));
  assert.ok(files.size > 50, `read ${files.size} source files`);
  assert.deepEqual(foreignErrors(files), []);
});

test('the scan finds each way out of the closed set', () => {
  const bad = new Map([
    ['a.ts', "export class Fault extends Error {}\nclass Inner extends Fault {}\nthrow new Inner();\n"],
    ['b.ts', "function f() {\n  throw new RangeError('x');\n}\n"],
    ['c.ts', "p.then(() => reject(new Error('closed')));\n"],
    ['d.ts', 'throw new Unknown();\n'],
  ]);
  assert.deepEqual(foreignErrors(bad), [
    'a.ts:1: class Fault extends Error',
    'a.ts:3: throw new Inner',
    'b.ts:2: new RangeError',
    'c.ts:1: new Error',
    'd.ts:1: throw new Unknown',
  ]);
  const good = new Map([
    ['errors.ts', 'export abstract class VmstateError extends Error {}\nexport class UsageError extends VmstateError {}\n'],
    ['e.ts', "class Fault<T> extends UsageError {}\nthrow new Fault();\nthrow new UsageError('x');\n"],
  ]);
  assert.deepEqual(foreignErrors(good), []);
});

test('every error has a literal code, its data and toJSON(); LoadError and SaveError share SectionError', () => {
  const load = new LoadError('incoming value 3 does not match local value 2', 'dev (4)', { incoming: 3 });
  const save = new SaveError('field x should hold a bigint', 'dev');
  for (const e of [load, save]) {
    assert.ok(e instanceof SectionError && e instanceof VmstateError);
  }
  assert.equal(load.message, 'dev (4): incoming value 3 does not match local value 2');
  assert.deepEqual(load.toJSON(), {
    name: 'LoadError',
    code: 'LOAD',
    message: 'dev (4): incoming value 3 does not match local value 2',
    data: { incoming: 3, path: 'dev (4)', reason: 'incoming value 3 does not match local value 2' },
  });
  assert.equal(save.code, 'SAVE');
  assert.equal(new SaveError('no path', '').message, 'no path');
  const cause = new Error('ENOENT');
  assert.equal(new IoError('x: no such file', { path: 'x' }, cause).cause, cause);
  assert.equal(new UsageError('bad').code, 'USAGE');
});
