// README.md's library examples, tested as written: every ```ts block is type-checked against the built
// package and run, after the definitions below for the names it takes as given, and followed by the
// checks below on what it did. A failure names the block and the README line (see support/readme-blocks.ts).
//
// The fixtures are keyed by the heading above each block ("Heading (2)" for a second block under it).
// A block without a fixture still runs, with nothing defined for it.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fixturesDir, repoRoot } from './support/paths.js';
import { runBlockPrograms, typescriptBlocks, type BlockOutcome, type CodeBlock, type Segment } from './support/readme-blocks.js';

interface BlockFixture {
  /** Earlier blocks, by key, whose text runs first, as the README reads on from them. */
  readonly continues?: readonly string[];
  /** Files the block reads, linked into the folder it runs in: name there → path. */
  readonly files?: Readonly<Record<string, string>>;
  /** TypeScript defining the names the block takes as given; runs before it. */
  readonly prelude?: string;
  /** TypeScript checking what the block did; runs after it, in the same module. */
  readonly epilogue?: string;
  /** Checks on what the block printed. */
  readonly stdout?: (stdout: string) => void;
}

const ANALYZED = 'q35-iommu-3rp-switch-bios';

const fixtures: Record<string, BlockFixture> = {
  'Reading streams': {
    files: { 'vm.mig': path.join(fixturesDir, `${ANALYZED}.mig`) },
    // Compared whole, not diffed: the output is about 2 MB.
    stdout: (stdout) =>
      assert.ok(
        stdout === fs.readFileSync(path.join(fixturesDir, `${ANALYZED}.analyze.json`), 'utf8'),
        `it should print what analyze-migration.py -f prints for ${ANALYZED}.mig`,
      ),
  },
  'Describing device state': {},
  'Ordering, snapshots and the load-order guard': {
    continues: ['Describing device state'],
    // 8 MiB of RAM, most of it not zero: the file is written in several chunks, megabytes each, which the
    // WriteStream queues while the next ones are made.
    prelude: `
const guestRam = new Uint8Array(8 << 20).fill(0x5a, 4096, 3 * 4096);
for (let i = 4 * 4096, x = 1; i < guestRam.length; i++) guestRam[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
const iommuState: IommuState = { root: 0x7f000n, csr: new Array<number>(64).fill(0), enabled: true, cache_gen: 0, irq: 5 };
const portState = { secondary: 1, subordinate: 4 };
`,
    epilogue: `
import assert from 'node:assert/strict';
// The IOMMU's post-load ran after the root port was loaded, and read the port's bus number.
assert.equal(iommuState.cache_gen, portState.secondary);
assert.equal(guestRam[4096], 0x5a);
// The file holds what was saved: a second registry loads the same RAM and states from it.
const ram2 = new Uint8Array(guestRam.length);
const iommu2 = {} as IommuState;
const port2 = {};
const reg2 = new SaveRegistry();
reg2.register({ idstr: 'ram', handler: new RamHandler([{ name: 'pc.ram', data: ram2 }]) });
reg2.register({ idstr: 'my-iommu', vmsd: iommu, state: iommu2 });
reg2.register({ idstr: 'root-port', vmsd: rootPort, state: port2 });
await loadSnapshot(reg2, ChunkedSource.fromBytes(readFileSync('vm.mig')));
assert.ok(Buffer.from(ram2).equals(Buffer.from(guestRam)), 'RAM');
assert.deepEqual(port2, portState);
assert.deepEqual(iommu2, iommuState);
`,
    stdout: (stdout) => {
      const labels = stdout.split('\n').flatMap((line) => /^(\S+#\d+) /.exec(line)?.[1] ?? []);
      assert.deepEqual(labels, ['root-port#0', 'my-iommu#0', 'ram#0'], 'the plan it prints: bridge, IOMMU, RAM');
    },
  },
};

/**
 * Checks that a `type X = …; // { … }` line's comment is the type, up to mutual assignability.
 * A block's comments on inferred types are claims too.
 */
function typeCommentChecks(block: CodeBlock): Segment[] {
  return [...block.text.matchAll(/^type (\w+) = [^;]+;\s*\/\/\s*(\{.*\})\s*$/gm)].map((m) => ({
    from: { what: `the check that ${m[1]} is ${m[2]}, as the comment at README.md:${block.line + block.text.slice(0, m.index).split('\n').length - 1} says` },
    text: `const ${m[1]}IsAsCommented: [${m[1]}] extends [${m[2]}] ? ([${m[2]}] extends [${m[1]}] ? true : false) : false = true;`,
  }));
}

const readme = fs.readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
const blocks = typescriptBlocks(readme);
const byKey = new Map(blocks.map((b) => [b.key, b]));
const name = (b: CodeBlock) => `README.md:${b.line} ("${b.key}")`;

function segments(block: CodeBlock): Segment[] {
  const fixture = fixtures[block.key] ?? {};
  const fixtureText = (part: 'prelude' | 'epilogue'): Segment[] =>
    fixture[part] === undefined ? [] : [{ from: { what: `test/readme.test.ts, the ${part} for "${block.key}"` }, text: fixture[part] }];
  return [
    ...(fixture.continues ?? []).flatMap((key): Segment[] => {
      const earlier = byKey.get(key);
      return earlier === undefined ? [] : [{ from: { readmeLine: earlier.line }, text: earlier.text }];
    }),
    ...fixtureText('prelude'),
    { from: { readmeLine: block.line }, text: block.text },
    ...typeCommentChecks(block),
    ...fixtureText('epilogue'),
  ];
}

let outcomes: BlockOutcome[] | undefined;
let cleanup = () => {};
/** Builds and runs every block once, on first use. */
function outcome(i: number): BlockOutcome {
  if (outcomes === undefined) {
    ({ outcomes, cleanup } = runBlockPrograms(
      blocks.map((b) => ({ name: name(b), segments: segments(b), files: fixtures[b.key]?.files })),
    ));
  }
  return outcomes[i];
}
after(() => cleanup());

test('README.md has TypeScript examples, and every fixture here names one of them', () => {
  assert.ok(blocks.length > 0, 'no ```ts blocks found in README.md');
  for (const [key, fixture] of Object.entries(fixtures)) {
    assert.ok(byKey.has(key), `test/readme.test.ts has a fixture for "${key}", but README.md has no ts block under that heading`);
    for (const earlier of fixture.continues ?? []) {
      assert.ok(byKey.has(earlier), `the fixture for "${key}" continues "${earlier}", which README.md has no ts block under`);
    }
  }
});

blocks.forEach((block, i) => {
  test(`${name(block)} type-checks and runs`, () => {
    const result = outcome(i);
    if (!result.ok) assert.fail(result.problem);
    try {
      fixtures[block.key]?.stdout?.(result.stdout);
    } catch (err) {
      assert.fail(`${name(block)} ran, but ${err instanceof Error ? err.message : String(err)}`);
    }
  });
});
