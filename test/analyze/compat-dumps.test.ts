// compat --dumps on small hand-made -dump-vmstate files: versions (including a minimum above the old
// version, with no Description to compare), fields a newer version adds (not expected from an old
// stream), trailing fields, conditional fields, unused padding, arrays without counts, classes one build
// lacks (apart from the breaks), and the dump's shape checked as untrusted input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareDumps, compareStreamToDump, formatCompat, formatDumpCompat, parseVmstateDump, type DumpField, type StreamIdentity, type StreamProfile, type VmdescField, type VmdescStruct } from '../../src/analyze/index.js';

const field = (name: string, size: number, more: Partial<DumpField> = {}): DumpField => ({ field: name, version_id: 0, field_exists: false, size, ...more });

/** A dump holding one class `dev` (version v, minimum m) with these fields, plus `extra` classes. */
function dump(v: number, fields: DumpField[], o: { min?: number; extra?: string[]; subsections?: object[] } = {}): string {
  const entry = (name: string, fs: DumpField[]) => ({
    Name: name,
    version_id: v,
    minimum_version_id: o.min ?? 1,
    Description: { name, version_id: v, minimum_version_id: o.min ?? 1, Fields: fs, ...(o.subsections ? { Subsections: o.subsections } : {}) },
  });
  const classes = Object.fromEntries([['dev', entry('dev', fields)], ...(o.extra ?? []).map((n) => [n, entry(n, [])])]);
  return JSON.stringify({ vmschkmachine: { Name: 'pc-q35-7.2' }, ...classes });
}

function compare(old: string, neu: string) {
  return compareDumps(parseVmstateDump(old, 'old.json'), parseVmstateDump(neu, 'new.json'));
}

const kinds = (r: ReturnType<typeof compare>) => r.findings.map((f) => `${f.severity} ${f.kind}${f.field ? ` ${f.field}` : ''}`);

test('versions: above the new one, or below its minimum (no Description needed), break', () => {
  assert.deepEqual(kinds(compare(dump(3, []), dump(2, []))), ['fail version-too-new']);
  assert.deepEqual(kinds(compare(dump(1, [field('a', 4)]), dump(4, [], { min: 2 }))), ['fail version-too-old']);
});

test('a field a newer version added is not expected from an old stream; one added at the old version is', () => {
  const old = dump(1, [field('a', 4)]);
  assert.deepEqual(kinds(compare(old, dump(2, [field('a', 4), field('b', 4, { version_id: 2 })]))), []);
  assert.deepEqual(kinds(compare(old, dump(1, [field('a', 4), field('b', 4)]))), ['fail field-added b']);
  // The checker stops where the source's fields end; a trailing one on either side is reported.
  assert.deepEqual(kinds(compare(dump(1, [field('a', 4), field('z', 2)]), dump(1, [field('a', 4)]))), ['fail field-missing z']);
});

test('behind a test function, an added field is a risk (compat properties turn such fields off), and noted', () => {
  const r = compare(dump(1, [field('a', 4)]), dump(1, [field('a', 4), field('t', 8, { field_exists: true })]));
  assert.deepEqual(kinds(r), ['risk field-added t']);
  assert.equal(r.findings.some((f) => f.severity === 'fail'), false);
});

test('padding and renames line up; without counts an array may be padded whole; with counts lengths compare', () => {
  const r = compare(dump(1, [field('a', 4), field('flags', 1), field('b', 2)]), dump(1, [field('a', 4), field('unused', 5), field('b', 2)]));
  assert.deepEqual(kinds(r), ['note unused-padding flags']);
  assert.deepEqual(kinds(compare(dump(1, [field('n', 1)]), dump(1, [field('n_save', 1)]))), ['note field-renamed n']);
  const counted = compare(dump(1, [field('regs', 4, { num: 16 })]), dump(1, [field('regs', 4, { num: 32 })]));
  assert.deepEqual(kinds(counted), ['fail array-length regs']);
  assert.match(formatDumpCompat(counted), /1 classes compared: 1 break\(s\), 0 risk\(s\)\n$/);
  const uncounted = compare(dump(1, [field('regs', 4)]), dump(1, [field('regs', 4, { num: 32 })]));
  assert.deepEqual(kinds(uncounted), []);
  assert.match(uncounted.notCovered, /array lengths: one dump has no element counts/);
});

test('classes one build lacks are listed apart, and the subsections the new one does not know are risks', () => {
  const r = compare(dump(1, [], { extra: ['gone'], subsections: [{ name: 'dev/sub', version_id: 1, minimum_version_id: 1, Fields: [] }] }), dump(1, [], { extra: ['fresh'] }));
  assert.deepEqual(r.onlyInOld, ['gone']);
  assert.deepEqual(r.onlyInNew, ['fresh']);
  assert.deepEqual(kinds(r), ['risk subsection-unknown dev/sub']);
  assert.match(r.notCovered, /^CPUs and RAM are not in -dump-vmstate/);
});

test('a dump of the wrong shape is a typed error naming the file', () => {
  assert.throws(() => parseVmstateDump('[]', 'x.json'), /x.json: not a -dump-vmstate file: not a JSON object/);
  assert.throws(() => parseVmstateDump('{"dev": {"Name": "dev"}}', 'x.json'), /"dev" needs Name, version_id and minimum_version_id/);
  assert.throws(() => parseVmstateDump(dump(1, [{ field: 'a' } as DumpField]), 'x.json'), /a field needs field, version_id, field_exists and size/);
  assert.throws(() => parseVmstateDump('{', 'x.json'), (e: Error & { code?: string }) => e.code === 'STREAM_FORMAT');
});

/** A one-section stream profile: `dev` at `version` with these VMDESCRIPTION fields (and subsections). */
function streamProfile(version: number, fields: VmdescField[], subsections: VmdescStruct[] = []): StreamProfile {
  const identity: StreamIdentity = {
    atLeast: null,
    atMost: null,
    markers: [],
    machineType: { value: 'pc-q35-7.2', marker: 'test' },
    architecture: null,
    pageSize: { value: 4096, marker: 'test' },
    capabilities: [],
    commands: [],
    ramBlocks: [],
    note: null,
  };
  return {
    identity,
    sections: [{ offset: 100, type: 'full', sectionId: 1, idstr: 'dev', instanceId: 0, version, size: 40 }, { offset: 140, type: 'full', sectionId: 2, idstr: 'timer', instanceId: 0, version: 2, size: 20 }],
    vmdesc: { page_size: 4096, devices: [{ name: 'dev', instance_id: 0, vmsd_name: 'dev', version, fields, subsections }] },
  };
}

const u32 = (name: string): VmdescField => ({ name, type: 'uint32', size: 4 });

test('a stream against a dump: the version range, the alternative sent, repeated names, and what no dump holds', () => {
  const parse = (text: string) => parseVmstateDump(text, 'dest.json');
  const dest = parse(dump(3, [field('a', 4), field('cur', 4, { field_exists: true }), field('cur', 4), field('b', 4, { version_id: 3 })], { min: 2 }));
  // Version 2 of the stream: `b` (version 3) is not expected, the first `cur` was not sent (its test said
  // no), and the VMDESCRIPTION names the one sent cur[1], as QEMU names a repeated field.
  const ok = compareStreamToDump(streamProfile(2, [u32('a'), u32('cur[1]')]), dest);
  assert.equal(ok.verdict, 'will load', JSON.stringify(ok.findings));
  assert.deepEqual(ok.findings.map((f) => f.kind), ['not-in-source']);
  assert.match(ok.findings[0].message, /1 section\(s\) are no device class's, so not in the dump \(timer\)/);
  assert.equal(ok.orderRulesKnown, false);
  assert.match(formatCompat(ok), /no destination stream tells its release/);
  const old = compareStreamToDump(streamProfile(1, [u32('a')]), dest);
  assert.deepEqual(old.findings.filter((f) => f.severity === 'fail').map((f) => f.kind), ['version-too-old']);
  const wrong = compareStreamToDump(streamProfile(2, [u32('a'), { name: 'cur[1]', type: 'uint64', size: 8 }]), dest);
  assert.deepEqual(wrong.findings.filter((f) => f.severity === 'fail').map((f) => `${f.kind} ${f.field}`), ['field-resized cur[1]']);
});

test('a subsection the dump does not know fails for sure; one it knows is no risk', () => {
  const sub = { vmsd_name: 'dev/extra', version: 1, fields: [u32('e')] };
  const unknown = compareStreamToDump(streamProfile(1, [u32('a')], [sub]), parseVmstateDump(dump(1, [field('a', 4)]), 'd.json'));
  assert.deepEqual(unknown.findings.filter((f) => f.severity !== 'note').map((f) => `${f.severity} ${f.kind}`), ['fail subsection-unknown']);
  assert.match(unknown.failsAt?.message ?? '', /which the destination does not know \(its -dump-vmstate has no such subsection\)/);
  const known = compareStreamToDump(
    streamProfile(1, [u32('a')], [sub]),
    parseVmstateDump(dump(1, [field('a', 4)], { subsections: [{ name: 'dev/extra', version_id: 1, minimum_version_id: 1, Fields: [field('e', 4)] }] }), 'd.json'),
  );
  assert.equal(known.verdict, 'will load', JSON.stringify(known.findings));
});
