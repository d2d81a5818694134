// compat's findings, one kind at a time, on small hand-made stream profiles: each case changes one thing
// between a source and a destination that are otherwise the same, and names the finding it must give.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareStreams, formatCompat, type CompatFinding, type SectionRow, type StreamIdentity, type StreamProfile, type VmdescDevice, type VmdescField } from '../../src/analyze/index.js';

interface SectionSpec {
  idstr: string;
  instance?: number;
  version?: number;
  /** The device's fields; absent for ram. */
  fields?: VmdescField[];
  subsections?: VmdescDevice['subsections'];
  vmsd?: string;
}

interface Side {
  machine?: string;
  pageSize?: number;
  capabilities?: string[];
  ram?: { name: string; size: number }[];
  atLeast?: string;
  sections?: SectionSpec[];
}

const u32 = (name: string): VmdescField => ({ name, type: 'uint32', size: 4 });
const baseFields = [u32('a'), u32('b'), { name: 'buf', type: 'buffer', size: 8 }];
const baseSections: SectionSpec[] = [{ idstr: 'ram', version: 4 }, { idstr: 'dev', fields: baseFields }, { idstr: 'other', fields: [u32('x')] }];

function profile(side: Side): StreamProfile {
  const sections: SectionRow[] = [];
  const devices: VmdescDevice[] = [];
  let offset = 100;
  let id = 0;
  for (const s of side.sections ?? baseSections) {
    const version = s.version ?? 1;
    sections.push({ offset, type: s.idstr === 'ram' ? 'start' : 'full', sectionId: id++, idstr: s.idstr, instanceId: s.instance ?? 0, version, size: 50 });
    if (s.fields) devices.push({ name: s.idstr, instance_id: s.instance ?? 0, vmsd_name: s.vmsd ?? s.idstr, version, fields: s.fields, subsections: s.subsections });
    offset += 50;
  }
  const identity: StreamIdentity = {
    atLeast: side.atLeast ?? '7.2',
    atMost: null,
    markers: [],
    machineType: { value: side.machine ?? 'pc-q35-7.2', marker: 'test' },
    architecture: null,
    pageSize: { value: side.pageSize ?? 4096, marker: 'test' },
    capabilities: side.capabilities ?? [],
    commands: [],
    ramBlocks: side.ram ?? [{ name: 'pc.ram', size: 64 << 20 }],
    note: null,
  };
  return { identity, sections, vmdesc: { page_size: side.pageSize ?? 4096, devices } };
}

/** The findings other than notes, as kind@section[:field]. */
function notable(findings: readonly CompatFinding[]): string[] {
  return findings.filter((f) => f.severity !== 'note').map((f) => `${f.severity} ${f.kind}@${f.section}${f.field ? `:${f.field}` : ''}`);
}

function compare(source: Side, dest: Side = {}) {
  return compareStreams(profile(source), profile(dest));
}

test('the same streams will load, with no finding', () => {
  const r = compare({});
  assert.equal(r.verdict, 'will load');
  assert.deepEqual(r.findings, []);
  assert.match(formatCompat(r), /verdict: will load\n$/);
});

test('configuration: machine type, page size and capabilities each fail the load at the configuration', () => {
  const r = compare({ machine: 'pc-q35-10.0', pageSize: 16384, capabilities: ['x-ignore-shared'] });
  assert.deepEqual(notable(r.findings), ['fail machine-type@configuration', 'fail page-size@configuration', 'fail capabilities@configuration']);
  assert.equal(r.failsAt?.message, "Machine type received is 'pc-q35-10.0' and local is 'pc-q35-7.2'");
  assert.equal(r.failsAt?.offset, 8);
});

test('sections: one the destination has not, and a version above its own, fail where they are', () => {
  const r = compare({ sections: [...baseSections, { idstr: 'slirp', instance: 1, fields: [] }] }, { sections: [...baseSections, { idstr: 'slirp', fields: [] }] });
  assert.deepEqual(notable(r.findings), ['fail unknown-section@slirp']);
  assert.equal(r.failsAt?.offset, 250);
  const newer = compare({ sections: [{ idstr: 'dev', version: 3, fields: baseFields }] }, { sections: [{ idstr: 'dev', version: 2, fields: baseFields }] });
  assert.deepEqual(notable(newer.findings), ['fail version-too-new@dev']);
  // An older version loads by the destination's version gates: a note, the fields not compared.
  const older = compare({ sections: [{ idstr: 'dev', version: 1, fields: [u32('a')] }] }, { sections: [{ idstr: 'dev', version: 2, fields: baseFields }] });
  assert.equal(older.verdict, 'will load');
  assert.deepEqual(older.findings.map((f) => f.kind), ['version-older']);
});

test('fields: missing, added (trailing too), resized, retyped, array lengths and order each fail', () => {
  const cases: [VmdescField[], VmdescField[], string[]][] = [
    [[u32('a'), u32('gone'), u32('b'), baseFields[2]], baseFields, ['fail field-missing@dev:gone']],
    [baseFields, [u32('a'), u32('new'), u32('b'), baseFields[2]], ['fail field-added@dev:new']],
    [baseFields, [...baseFields, u32('tail')], ['fail field-added@dev:tail']],
    [[...baseFields, u32('tail')], baseFields, ['fail field-missing@dev:tail']],
    [[{ name: 'a', type: 'uint64', size: 8 }, u32('b')], [u32('a'), u32('b')], ['fail field-retyped@dev:a']],
    [[{ name: 'a', type: 'buffer', size: 6 }], [{ name: 'a', type: 'buffer', size: 4 }], ['fail field-resized@dev:a']],
    [[{ ...u32('a'), array_len: 274 }], [{ ...u32('a'), array_len: 258 }], ['fail array-length@dev:a']],
    [[u32('b'), u32('a')], [u32('a'), u32('b')], ['fail fields-reordered@dev:b']],
  ];
  for (const [mine, theirs, want] of cases) {
    const r = compare({ sections: [{ idstr: 'dev', fields: mine }] }, { sections: [{ idstr: 'dev', fields: theirs }] });
    assert.deepEqual(notable(r.findings), want, JSON.stringify(mine));
    assert.equal(r.verdict, 'will fail');
  }
});

test('fields that take the same bytes line up: unused padding, a split buffer, a rename, a sign change, a state-sized type', () => {
  const cases: [VmdescField[], VmdescField[], string][] = [
    [[u32('a'), { name: 'unused', type: 'unused_buffer', size: 4 }], [u32('a'), u32('b')], 'unused-padding'],
    [[{ name: 'runstate', type: 'buffer', size: 100 }], [{ name: 'runstate', type: 'buffer', size: 32 }, { name: 'flag', type: 'uint8', size: 1 }, { name: 'unused', type: 'unused_buffer', size: 67 }], 'unused-padding'],
    [[u32('num_timers')], [u32('num_timers_save')], 'field-renamed'],
    [[{ name: 'ports', type: 'int32 equal', size: 4 }], [{ name: 'ports', type: 'uint32 equal', size: 4 }], 'field-retyped'],
    [[{ name: 'virtio', type: 'virtio', size: 45541 }], [{ name: 'virtio', type: 'virtio', size: 45582 }], 'field-resized'],
  ];
  for (const [mine, theirs, kind] of cases) {
    const r = compare({ sections: [{ idstr: 'dev', fields: mine }] }, { sections: [{ idstr: 'dev', fields: theirs }] });
    assert.equal(r.verdict, 'will load', JSON.stringify(r.findings));
    assert.deepEqual(r.findings.map((f) => `${f.severity} ${f.kind}`), [`note ${kind}`]);
  }
});

test('subsections: one the destination never sent is a risk; one both sent is compared field by field', () => {
  const sub = (fields: VmdescField[]) => [{ vmsd_name: 'dev/extra', version: 1, fields }];
  const risk = compare({ sections: [{ idstr: 'dev', fields: baseFields, subsections: sub([u32('e')]) }] }, { sections: [{ idstr: 'dev', fields: baseFields }] });
  assert.deepEqual(notable(risk.findings), ['risk subsection-unknown@dev:dev/extra']);
  assert.equal(risk.verdict, 'will load');
  const differs = compare({ sections: [{ idstr: 'dev', fields: baseFields, subsections: sub([u32('e')]) }] }, { sections: [{ idstr: 'dev', fields: baseFields, subsections: sub([u32('e'), u32('f')]) }] });
  assert.deepEqual(notable(differs.findings), ['fail field-added@dev:dev/extra.f']);
});

test('RAM: a block the destination has not, or of another size, fails; a fw_cfg blob of another size is resized', () => {
  const r = compare({ ram: [{ name: 'pc.ram', size: 128 << 20 }, { name: 'extra', size: 4096 }, { name: '/rom@etc/acpi/tables', size: 0x20000 }] }, { ram: [{ name: 'pc.ram', size: 64 << 20 }, { name: '/rom@etc/acpi/tables', size: 0x10000 }] });
  assert.deepEqual(notable(r.findings), ['fail ram-block-size@ram:pc.ram', 'fail ram-block-missing@ram:extra']);
  assert.equal(r.findings.find((f) => f.field === '/rom@etc/acpi/tables')?.severity, 'note');
  assert.equal(r.failsAt?.message, 'RAM block pc.ram: 0x8000000 bytes in the stream, 0x4000000 at the destination');
});

test('order: an IOMMU before the root port it needs loads, but wrong, by the destination release’s rules', () => {
  const iommu = { idstr: 'iommu-intel', vmsd: 'iommu-intel', fields: [u32('x')] };
  const port = { idstr: '0000:00:02.0/pcie-root-port', vmsd: 'pcie-root-port', fields: [u32('y')] };
  const r = compare({ sections: [iommu, port] }, { sections: [port, iommu] });
  assert.equal(r.verdict, 'will load wrong');
  assert.deepEqual(notable(r.findings), ['wrong order@iommu-intel']);
  assert.equal(r.orderRules, '7.2');
});
