// The JSON fast path (analyzeStreamJson, json-fast-path.ts) must print what the reference renderer prints
// (the value tree, rendered by render-dict.ts), byte for byte: on every fixture, on seeded random
// descriptions and bodies (repeated keys, subsection names that collide, odd sizes, cut bodies), on cut
// streams (the same errors), and, where a key repeats and the fast path leaves the body to the reference,
// what analyze-migration.py itself prints.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ByteReader, ChunkedSource } from '../../src/index.js';
import {
  analyzeStream,
  analyzeStreamJson,
  decodeStruct,
  formatAnalysis,
  listSections,
  openStreamFile,
  renderStruct,
  requireVmdesc,
  type Vmdesc,
  type VmdescField,
  type VmdescStruct,
} from '../../src/analyze/index.js';
import { writeDeviceJson as writeWithPlan } from '../../src/analyze/analyze.js';
import { structPlan } from '../../src/analyze/field-plan.js';
import { PyJsonWriter } from '../../src/analyze/python-json.js';
import { skipStruct } from '../../src/analyze/read-body.js';
import { SCRIPT_7_2, type AnalyzeScript } from '../../src/analyze/script-7.2.js';
import { SCRIPT_10_0 } from '../../src/analyze/script-10.0.js';
import { fixtures } from '../support/fixtures.js';
import { chunkedReads } from '../support/sources.js';
import { analyzeScriptOrSkip, runAnalyzeScript } from '../support/peer.js';
import { seededRandom } from '../support/random.js';

const text = (bytes: Uint8Array) => Buffer.from(bytes).toString('latin1');

/** A body's JSON as analyzeStreamJson writes it: by the fast path, or by the reference renderer. */
function writeDeviceJson(r: ByteReader, desc: VmdescStruct, w: PyJsonWriter, depth: number, script: AnalyzeScript = SCRIPT_7_2): 'fast' | 'reference' {
  return writeWithPlan(r, structPlan(desc, script), w, depth, script);
}

for (const fx of fixtures()) {
  test(`${fx.name}: analyzeStreamJson equals analyze-migration.py, in one read and in tiny ones`, { skip: fx.analyzeJson === null }, async () => {
    const golden = fs.readFileSync(fx.analyzeJson as string, 'utf8');
    const file = openStreamFile(fx.stream);
    const { vmdesc } = requireVmdesc(file);
    try {
      assert.equal(text(await analyzeStreamJson(file.source(), vmdesc, { script: fx.script })), golden);
    } finally {
      file.close();
    }
    // 4 KiB + 3: every device section is cut by a read at some point, so the source must buffer each body whole first.
    const bytes = new Uint8Array(fs.readFileSync(fx.stream));
    const chunked = chunkedReads(bytes, 4099);
    assert.equal(text(await analyzeStreamJson(chunked, vmdesc, { script: fx.script })), golden);
  });
}

/** The outcome of one analysis: its text, or the error's class and message. */
async function outcome(run: () => Promise<string>): Promise<string> {
  try {
    return await run();
  } catch (e) {
    return `${(e as Error).constructor.name}: ${(e as Error).message}`;
  }
}

test('cut streams fail with the same error in both forms', async () => {
  for (const fx of fixtures().filter((f) => f.name.startsWith('q35-minimal') || f.name.startsWith('pc-i440fx'))) {
    const bytes = new Uint8Array(fs.readFileSync(fx.stream));
    const file = openStreamFile(fx.stream);
    const { vmdesc } = requireVmdesc(file);
    const rows = await listSections(file.source(), vmdesc);
    file.close();
    const random = seededRandom(0xc07 ^ bytes.length);
    const cuts = new Set<number>();
    for (const r of rows) cuts.add(r.offset + Math.floor(r.size / 2));
    for (let i = 0; i < 30; i++) cuts.add(Math.floor(random() * bytes.length));
    for (const cut of cuts) {
      const part = bytes.subarray(0, cut);
      const tree = await outcome(async () => formatAnalysis(await analyzeStream(ChunkedSource.fromBytes(part), vmdesc)));
      const json = await outcome(async () => text(await analyzeStreamJson(ChunkedSource.fromBytes(part), vmdesc)));
      assert.equal(json, tree, `${fx.name} cut at ${cut}`);
    }
  }
});

// ---------------------------------------------------------------------------------------------------
// Seeded random descriptions and bodies

const INT_CODECS: readonly (readonly [string, number])[] = [
  ['int8', 1], ['int16', 2], ['int32', 4], ['int64', 8], ['int32 equal', 4], ['int32 le', 4], ['int64 equal', 8],
  ['uint8', 1], ['uint16', 2], ['uint32', 4], ['uint64', 8], ['uint8 equal', 1], ['uint16 equal', 2], ['uint32 equal', 4],
];
/** Few names, so keys repeat often; some need escaping. */
const NAMES = ['a', 'b', 'c', 'regs', 'x[0]', 'q"\\', 'caf\u00e9', 'tab\t', 'sub'];

function generator(seed: number) {
  const rand = seededRandom(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const leaf = (): Omit<VmdescField, 'name'> => {
    const r = rand();
    if (r < 0.55) {
      const [type, size] = pick(INT_CODECS);
      // Sizes QEMU never sends, since the description is untrusted.
      return { type, size: rand() < 0.05 ? pick([0, 3, 16]) : size };
    }
    if (r < 0.7) return { type: 'bool', size: rand() < 0.1 ? pick([0, 2]) : 1 };
    return { type: pick(['buffer', 'timer', 'unused_buffer', 'float64']), size: pick([0, 1, 2, 8, 37, 300]) };
  };
  const struct = (depth: number): VmdescStruct => {
    const fields: VmdescField[] = [];
    const n = Math.floor(rand() * 6);
    for (let i = 0; i < n; i++) {
      const name = pick(NAMES);
      const base: Omit<VmdescField, 'name'> = depth < 3 && rand() < 0.15 ? { type: 'struct', size: 0, struct: struct(depth + 1) } : leaf();
      const r = rand();
      if (r < 0.3) {
        // Long arrays of leaves take the native zero scan; struct arrays are long only at the top.
        const structLens = depth === 0 ? [0, 1, 2, 5, 40] : [0, 1, 2, 5];
        fields.push({ name, ...base, array_len: pick(base.type === 'struct' ? structLens : [0, 1, 2, 5, 40, 300]) });
      } else if (r < 0.4) {
        // Uncompressed array elements, each with its index (one in five skips an index).
        const k = 1 + Math.floor(rand() * 3);
        for (let j = 0; j < k; j++) fields.push({ name, ...base, index: rand() < 0.2 ? j + 1 : j });
      } else {
        fields.push({ name, ...base });
      }
    }
    const subsections = depth < 3 && rand() < 0.35 ? Array.from({ length: 1 + Math.floor(rand() * 2) }, () => ({ vmsd_name: pick(NAMES), ...struct(depth + 1) })) : undefined;
    return subsections ? { fields, subsections } : { fields };
  };
  /** Bytes the description reads: random values, mostly zero as in real dumps, and in some bodies nearly all. */
  const body = (s: VmdescStruct, out: number[], zeros = rand() < 0.5 ? 0.6 : 0.98): void => {
    for (const f of s.fields) {
      for (let k = 0; k < (f.array_len ?? 1); k++) {
        if (f.type === 'struct') body(f.struct as VmdescStruct, out, zeros);
        else for (let i = 0; i < f.size; i++) out.push(rand() < zeros ? 0 : Math.floor(rand() * 256));
      }
    }
    for (const sub of s.subsections ?? []) {
      // The name comes from the stream: usually the description's, sometimes another (maybe a field's).
      const name = rand() < 0.8 ? (sub.vmsd_name ?? '') : pick(NAMES);
      const encoded = [...Buffer.from(name, 'utf8')];
      out.push(0x05, encoded.length, ...encoded, 0, 0, 0, Math.floor(rand() * 4));
      body(sub, out, zeros);
    }
  };
  return { rand, struct, body };
}

/** The value tree's text for a body at depth 1, or its error. */
function treeText(bytes: Uint8Array, desc: VmdescStruct, script: AnalyzeScript = SCRIPT_7_2): { text: string; pos: number } | { error: string } {
  const r = new ByteReader(bytes);
  try {
    const w = new PyJsonWriter();
    w.value(renderStruct(decodeStruct(r, desc, script), script), 1);
    return { text: w.text(), pos: r.pos };
  } catch (e) {
    return { error: `${(e as Error).constructor.name}: ${(e as Error).message}` };
  }
}

/** Where skipStruct ends a body, or its error: it must end where the value tree does, or fail as it does. */
function skipEnd(bytes: Uint8Array, desc: VmdescStruct, script: AnalyzeScript): { pos: number } | { error: string } {
  const r = new ByteReader(bytes);
  try {
    skipStruct(r, structPlan(desc, script));
    return { pos: r.pos };
  } catch (e) {
    return { error: `${(e as Error).constructor.name}: ${(e as Error).message}` };
  }
}

for (const script of [SCRIPT_7_2, SCRIPT_10_0]) test(`${script.name}: the JSON path prints what the value tree prints, and skipStruct ends where it ends, on 3000 seeded random descriptions and bodies`, () => {
  const { rand, struct, body } = generator(0x15eed);
  const routes = { fast: 0, reference: 0, error: 0 };
  for (let i = 0; i < 3000; i++) {
    const desc = struct(0);
    const full: number[] = [];
    body(desc, full);
    // One in four bodies is cut short, to compare the errors too.
    const bytes = new Uint8Array(rand() < 0.25 ? full.slice(0, Math.floor(rand() * full.length)) : full);
    const want = treeText(bytes, desc, script);
    assert.deepEqual(skipEnd(bytes, desc, script), 'text' in want ? { pos: want.pos } : want, `case ${i}: skipStruct`);
    const w = new PyJsonWriter(16);
    w.ascii('before');
    const r = new ByteReader(bytes);
    try {
      const route = writeDeviceJson(r, desc, w, 1, script);
      assert.ok('text' in want, `case ${i}: the tree failed with ${'error' in want ? want.error : ''} but the JSON path did not`);
      assert.equal(w.text(6), want.text, `case ${i}: ${JSON.stringify(desc)}`);
      assert.equal(r.pos, want.pos, `case ${i}: bytes read`);
      routes[route]++;
    } catch (e) {
      if (e instanceof assert.AssertionError) throw e;
      assert.deepEqual({ error: `${(e as Error).constructor.name}: ${(e as Error).message}` }, want, `case ${i}`);
      routes.error++;
    }
  }
  // Each way out must really have been taken, many times.
  assert.ok(routes.fast > 500 && routes.reference > 200 && routes.error > 200, JSON.stringify(routes));
});

test('a long array of structs prints as the value tree prints it, where an element prints true or a negative number', () => {
  // 40 elements of {u32, bool, i8, u16[3], bytes[2]}: 14 bytes each, nearly all zero, as in AHCI's command slots.
  const E = 14;
  const element: VmdescStruct = {
    fields: [
      { name: 'addr', type: 'uint32', size: 4 },
      { name: 'used', type: 'bool', size: 1 },
      { name: 'delta', type: 'int8', size: 1 },
      { name: 'regs', type: 'uint16', size: 2, array_len: 3 },
      { name: 'tag', type: 'buffer', size: 2 },
    ],
  };
  const desc: VmdescStruct = { fields: [{ name: 'slots', type: 'struct', size: E, array_len: 40, struct: element }, { name: 'after', type: 'uint8', size: 1 }] };
  const cases: Record<string, (b: Uint8Array) => void> = {
    'all zero': () => {},
    'digits here and there': (b) => {
      b.set([0x12, 0x34], 5 * E + 2);
      b.set([0xfe], 17 * E + 13);
    },
    'true in element 9': (b) => b.set([1], 9 * E + 4),
    'true in element 0': (b) => b.set([1], 4),
    'negative in elements 30 and 31': (b) => {
      b.set([0x80], 30 * E + 5);
      b.set([0xff], 31 * E + 5);
    },
    'a positive signed value': (b) => b.set([0x7f], 12 * E + 5),
  };
  for (const [what, edit] of Object.entries(cases)) {
    const bytes = new Uint8Array(40 * E + 1);
    bytes[bytes.length - 1] = 0xaa;
    edit(bytes);
    const w = new PyJsonWriter();
    const r = new ByteReader(bytes);
    assert.equal(writeDeviceJson(r, desc, w, 1), 'fast', what);
    assert.deepEqual({ text: w.text(), pos: r.pos }, treeText(bytes, desc), what);
  }
});

test('a repeated key, a subsection named like a field and two subsections of one name go to the reference renderer', () => {
  const u8 = (name: string): VmdescField => ({ name, type: 'uint8', size: 1 });
  const sub = (name: string, ...body: number[]) => [0x05, name.length, ...Buffer.from(name), 0, 0, 0, 1, ...body];
  const cases: { desc: VmdescStruct; bytes: number[]; want: string }[] = [
    // Python's dict keeps "a" where it first appeared and takes the last value.
    { desc: { fields: [u8('a'), u8('b'), u8('a')] }, bytes: [1, 2, 3], want: '{\n        "a": "0x03",\n        "b": "0x02"\n    }' },
    { desc: { fields: [u8('s')], subsections: [{ vmsd_name: 's', fields: [u8('x')] }] }, bytes: [1, ...sub('s', 9)], want: '{\n        "s": {\n            "x": "0x09"\n        }\n    }' },
    {
      desc: { fields: [], subsections: [{ vmsd_name: 't', fields: [u8('x')] }, { vmsd_name: 't', fields: [u8('y')] }] },
      bytes: [...sub('t', 1), ...sub('t', 2)],
      want: '{\n        "t": {\n            "y": "0x02"\n        }\n    }',
    },
    // Elements of one array split by another field gather into one list at the first place.
    {
      desc: { fields: [{ ...u8('r'), index: 0 }, u8('m'), { ...u8('r'), index: 1 }] },
      bytes: [5, 6, 7],
      want: '{\n        "r": [\n            "0x05",\n            "0x07"\n        ],\n        "m": "0x06"\n    }',
    },
  ];
  for (const c of cases) {
    const w = new PyJsonWriter();
    assert.equal(writeDeviceJson(new ByteReader(new Uint8Array(c.bytes)), c.desc, w, 1), 'reference');
    assert.equal(w.text(), c.want);
  }
  // Large structs find a repeated key another way than small ones: 40 keys, the first repeated last or not.
  const many = Array.from({ length: 40 }, (_, i) => u8(`f${i}`));
  for (const [fields, route] of [[[...many, u8('f0')], 'reference'], [[...many, u8('g')], 'fast']] as const) {
    const w = new PyJsonWriter();
    assert.equal(writeDeviceJson(new ByteReader(new Uint8Array(41).fill(1)), { fields }, w, 1), route);
    assert.deepEqual({ text: w.text(), pos: 41 }, treeText(new Uint8Array(41).fill(1), { fields }));
  }
});

// ---------------------------------------------------------------------------------------------------
// Whole streams against analyze-migration.py

const MINIMAL = fixtures().find((f) => f.name === 'q35-minimal-paused');

/** The stream up to its trailer, then a trailer holding `vmdesc`. */
function withTrailer(bytes: Uint8Array, trailerOffset: number, vmdesc: Vmdesc): Uint8Array {
  let json = JSON.stringify(vmdesc);
  // The script finds the JSON by its last NUL and the first brace after it: keep '{' out of the length.
  while ([...beBytes(json.length)].includes(0x7b)) json += ' ';
  return new Uint8Array([...bytes.subarray(0, trailerOffset), 0x06, ...beBytes(json.length), ...Buffer.from(json)]);
}

function beBytes(n: number): Uint8Array {
  return new Uint8Array([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
}

/** Both forms agree; with the script at hand, it agrees too. */
async function assertSameAsScript(t: TestContext, bytes: Uint8Array, vmdesc: Vmdesc, name: string) {
  // The peer is QEMU 7.2's script.
  const json = text(await analyzeStreamJson(ChunkedSource.fromBytes(bytes), vmdesc, { script: SCRIPT_7_2 }));
  assert.equal(json, formatAnalysis(await analyzeStream(ChunkedSource.fromBytes(bytes), vmdesc, { script: SCRIPT_7_2 })));
  if (analyzeScriptOrSkip(t) === null) return json;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmstate-json-'));
  try {
    const file = path.join(dir, `${name}.mig`);
    fs.writeFileSync(file, bytes);
    const script = runAnalyzeScript(['-f', file]);
    assert.equal(script.status, 0, script.stderr);
    assert.equal(json, script.stdout);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return json;
}

/** The minimal fixture's bytes, its trailer's description and offset, and its section table. */
async function minimalStream() {
  const fx = MINIMAL as NonNullable<typeof MINIMAL>;
  const file = openStreamFile(fx.stream);
  try {
    const { vmdesc, offset } = requireVmdesc(file);
    return { bytes: new Uint8Array(fs.readFileSync(fx.stream)), vmdesc, offset, rows: await listSections(file.source(), vmdesc) };
  } finally {
    file.close();
  }
}

test('descriptions whose keys repeat print as analyze-migration.py prints them', { skip: MINIMAL === undefined }, async (t) => {
  const { bytes, vmdesc, offset } = await minimalStream();
  const edited = structuredClone(vmdesc) as unknown as { devices: { name: string; fields: { name: string; index?: number }[]; subsections?: { vmsd_name?: string }[] }[] };
  const device = (name: string) => {
    const d = edited.devices.find((x) => x.name === name);
    assert.ok(d, name);
    return d;
  };
  // apic: its fourth field takes the second field's name.
  const apic = device('apic');
  apic.fields[3].name = apic.fields[1].name;
  // fw_cfg: a field takes the name of the subsection that follows in the stream.
  const fwCfg = device('fw_cfg');
  fwCfg.fields[0].name = fwCfg.subsections?.[0]?.vmsd_name ?? '';
  // globalstate: the two fields become elements 0 and 1 of one array (a list, written directly).
  const gs = device('globalstate');
  gs.fields[0].index = 0;
  gs.fields[1] = { ...gs.fields[1], name: gs.fields[0].name, index: 1 };
  const json = await assertSameAsScript(t, withTrailer(bytes, offset, edited as unknown as Vmdesc), edited as unknown as Vmdesc, 'repeated-keys');
  assert.match(json, /"globalstate \(\d+\)": \{\n {8}"size": \[\n/);
});

test('a section id sent twice keeps its first place with the second body, as analyze-migration.py has it', { skip: MINIMAL === undefined }, async (t) => {
  const { bytes, vmdesc, offset, rows } = await minimalStream();
  // Send the first device section again, with one byte changed, right before EOF.
  const first = rows.find((r) => r.type === 'full');
  assert.ok(first);
  const again = bytes.slice(first.offset, first.offset + first.size);
  const headerLength = 1 + 4 + 1 + first.idstr.length + 4 + 4;
  again[headerLength] ^= 0x01;
  const eof = offset - 1;
  const twice = new Uint8Array([...bytes.subarray(0, eof), ...again, ...bytes.subarray(eof)]);
  const json = await assertSameAsScript(t, twice, vmdesc, 'section-twice');
  const label = `"${first.idstr} (${first.sectionId})"`;
  assert.equal(json.split(label).length, 2, 'the label appears once');
  assert.notEqual(json, text(await analyzeStreamJson(ChunkedSource.fromBytes(bytes), vmdesc, { script: SCRIPT_7_2 })));
});

test('a RAM block listed in a later RAM section joins the sizes already printed, as analyze-migration.py has it', { skip: MINIMAL === undefined }, async (t) => {
  const { bytes, vmdesc, offset, rows } = await minimalStream();
  const ram = rows.find((r) => r.idstr === 'ram' && r.type === 'start');
  assert.ok(ram);
  const id = [...beBytes(ram.sectionId)];
  const be64 = (n: number) => [0, 0, 0, 0, ...beBytes(n)];
  // SECTION_PART: MEM_SIZE listing one more 4 KiB block, EOS, footer.
  const part = [0x02, ...id, ...be64(0x1000 | 0x04), 9, ...Buffer.from('extra.ram'), ...be64(0x1000), ...be64(0x10), 0x7e, ...id];
  const eof = offset - 1;
  const stream = new Uint8Array([...bytes.subarray(0, eof), ...part, ...bytes.subarray(eof)]);
  const json = await assertSameAsScript(t, stream, vmdesc, 'late-ram-block');
  assert.match(json, /"extra\.ram": "0x0000000000001000"\n {8}\}/);
});
