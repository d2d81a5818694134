// explain on QEMU's error texts, against committed QEMU streams: each recognised text places the stop at
// the section (and field) it names, a field's byte offset holds the very value QEMU refused, and a text
// not recognised says so and leaves the answer to compat.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { explainError, formatExplanation, profileStreamFile } from '../../src/analyze/index.js';
import { fixturesDir } from '../support/paths.js';


const arm10 = path.join(fixturesDir, 'qemu-10.0', 'aarch64-virt-smmuv3-2rp-paused.mig');
const arm72 = path.join(fixturesDir, 'aarch64-virt-smmuv3-2rp-paused.mig');
const q35 = path.join(fixturesDir, 'q35-iommu-3rp-switch-paused.mig');

test("QEMU 7.2's refusal of 10.0's aarch64 cpu: the section, the field, and the count 274 at the field's offset", async () => {
  // QEMU 7.2's stderr loading a QEMU 10.0 virt-7.2 stream (test/qemu-compat.test.ts sees it for real).
  const stderr = [
    'qemu-system-aarch64: Invalid value 274 expecting positive value <= 258',
    'qemu-system-aarch64: Failed to load cpu:cpreg_vmstate_array_len',
    "qemu-system-aarch64: error while loading state for instance 0x0 of device 'cpu'",
    'qemu-system-aarch64: load of migration failed: Invalid argument',
  ].join('\n');
  const source = await profileStreamFile(arm10);
  const e = explainError(source, stderr, await profileStreamFile(arm72));
  assert.equal(e.recognised, true);
  assert.deepEqual(e.lines.map((l) => l.meaning !== null), [true, true, true, true]);
  const at = e.stoppedAt;
  assert.equal(at?.section, 'cpu');
  assert.equal(at?.offset, source.sections.find((r) => r.idstr === 'cpu')?.offset);
  assert.equal(at?.field, 'cpreg_vmstate_array_len');
  const bytes = readFileSync(arm10);
  assert.equal(bytes.readInt32BE(at?.fieldOffset ?? 0), 274, 'the be32 at the field offset is the count QEMU refused');
  assert.ok(e.findingsThere.some((f) => f.kind === 'array-length' && f.field === 'cpreg_vmstate_indexes'));
  assert.match(formatExplanation(e), /^stopped at cpu \(instance 0, section id \d+\), byte offset \d+, field cpreg_vmstate_array_len at byte offset \d+\n/);
});

test('each recognised text names its place: a section by idstr, by section id, a footer, the configuration, a RAM block', async () => {
  const source = await profileStreamFile(q35);
  const first = (idstr: string) => source.sections.find((r) => r.idstr === idstr && (r.type === 'full' || r.type === 'start'));
  const cases: [string, string, number | undefined][] = [
    ["Unknown savevm section or instance 'slirp' 0. Make sure that your current VM setup matches your saved VM setup", 'slirp', first('slirp')?.offset],
    ["savevm: unsupported version 3 for 'iommu-intel' v1", 'iommu-intel', first('iommu-intel')?.offset],
    ['Missing section footer for 0000:00:1f.0/ICH9LPC', '0000:00:1f.0/ICH9LPC', first('0000:00:1f.0/ICH9LPC')?.offset],
    [`error while loading state section id ${first('ram')?.sectionId}(ram)`, 'ram', first('ram')?.offset],
    ["Machine type received is 'pc-q35-10.0' and local is 'pc-q35-7.2'", 'configuration', 8],
    ['Unknown ramblock "pc.ram", cannot accept migration', 'ram', first('ram')?.offset],
  ];
  for (const [text, section, offset] of cases) {
    const e = explainError(source, `qemu-system-x86_64: ${text}`);
    assert.equal(e.stoppedAt?.section, section, text);
    assert.equal(e.stoppedAt?.offset, offset, text);
  }
});

test('a text not recognised says so; with DEST, compat answers instead', async () => {
  const source = await profileStreamFile(arm10);
  const alone = explainError(source, 'qemu-system-aarch64: something nobody has seen');
  assert.equal(alone.recognised, false);
  assert.equal(alone.stoppedAt, null);
  assert.match(formatExplanation(alone), /^the error text is not recognised\n.*\(not recognised\)\n.*--dest/s);
  const withDest = explainError(source, 'qemu-system-aarch64: something nobody has seen', await profileStreamFile(arm72));
  assert.equal(withDest.compat?.verdict, 'will fail');
  assert.match(formatExplanation(withDest), /compat's verdict: will fail at configuration/);
});
