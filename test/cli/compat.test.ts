// `vmstate compat SOURCE DEST` on the committed QEMU 10.0 and 7.2 streams of the same q35 machine (VT-d,
// root ports, a switch, two user netdevs): 7.2 cannot take 10.0's machine type, and would stop next at
// slirp 1, which 7.2 never writes; the text names each finding and the verdict, --json the same as data.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import type { CompatReport } from '../../src/analyze/index.js';
import { runCli } from '../support/cli.js';
import { fixturesDir } from '../support/paths.js';

const from10 = path.join(fixturesDir, 'qemu-10.0', 'q35-iommu-3rp-switch-paused.mig');
const from72 = path.join(fixturesDir, 'q35-iommu-3rp-switch-paused.mig');

test('compat 10.0 -> 7.2: will fail at the configuration (machine type), then at slirp 1; exit 1', () => {
  const r = runCli(['compat', from10, from72]);
  assert.equal(r.status, 1, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  assert.equal(lines[0], "fail  machine-type       configuration @8: Machine type received is 'pc-q35-10.0' and local is 'pc-q35-7.2'");
  assert.match(lines[1], /^fail {2}unknown-section {4}slirp 1 @\d+: Unknown savevm section or instance 'slirp' 1/);
  assert.ok(lines.some((l) => /^note  unused-padding +globalstate 0 .*the same 100 bytes$/.test(l)), 'the split runstate buffer lines up');
  assert.equal(lines.at(-1), "verdict: will fail at configuration, byte offset 8: Machine type received is 'pc-q35-10.0' and local is 'pc-q35-7.2'");

  const json = runCli(['compat', '--json', from10, from72]);
  const report = JSON.parse(json.stdout) as CompatReport;
  assert.equal(report.verdict, 'will fail');
  assert.equal(report.failsAt?.kind, 'machine-type');
  assert.deepEqual(
    report.findings.filter((f) => f.severity === 'fail').map((f) => `${f.kind} ${f.section}`),
    ['machine-type configuration', 'unknown-section slirp', 'field-missing 0000:00:04.0:00.0:00.0:00.0/e1000e'],
  );
});

test('compat with one stream or a missing file: one line on stderr, no stack trace', () => {
  const usage = runCli(['compat', from10]);
  assert.equal(usage.status, 2);
  assert.equal(usage.stderr.trim(), 'vmstate: compat takes SOURCE DEST (see vmstate help)');
  const missing = runCli(['compat', from10, '/nonexistent.mig']);
  assert.notEqual(missing.status, 0);
  assert.equal(missing.stderr.trim().split('\n').length, 1);
  assert.doesNotMatch(missing.stderr, /\n\s+at /);
});

test('explain places the stop QEMU reports (0 when it does, 1 when the text names nothing), --json as data', () => {
  const error = "qemu-system-x86_64: Unknown savevm section or instance 'slirp' 1. Make sure that your current VM setup matches your saved VM setup\nqemu-system-x86_64: load of migration failed: Invalid argument";
  const r = runCli(['explain', from10, '--error', error, '--dest', from72]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^stopped at slirp \(instance 1, section id \d+\), byte offset \d+\n/);
  assert.match(r.stdout, /what differs there \(vmstate compat\):\n {2}fail unknown-section: Unknown savevm section or instance 'slirp' 1/);
  const json = JSON.parse(runCli(['explain', from10, '--json', '--error', error]).stdout) as { stoppedAt: { section: string } };
  assert.equal(json.stoppedAt.section, 'slirp');
  const none = runCli(['explain', from10, '--error', 'load of migration failed: Invalid argument']);
  assert.equal(none.status, 1);
  assert.match(none.stdout, /^the error names no place in the stream\n/);
  assert.equal(runCli(['explain', from10]).stderr.trim(), "vmstate: explain takes SOURCE --error 'TEXT' (see vmstate help)");
});

test('compat --dumps: exit 1 on a break, 0 without, and a dump that is not one is one line', async () => {
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const os = await import('node:os');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vmstate-dumps-cli-'));
  const dump = (fields: object[]) =>
    JSON.stringify({ vmschkmachine: { Name: 'pc' }, dev: { Name: 'dev', version_id: 1, minimum_version_id: 1, Description: { name: 'dev', version_id: 1, minimum_version_id: 1, Fields: fields } } });
  const a = path.join(dir, 'a.json');
  const b = path.join(dir, 'b.json');
  writeFileSync(a, dump([{ field: 'x', version_id: 0, field_exists: false, size: 4 }]));
  writeFileSync(b, dump([{ field: 'x', version_id: 0, field_exists: false, size: 8 }]));
  const broken = runCli(['compat', '--dumps', a, b]);
  assert.equal(broken.status, 1);
  assert.match(broken.stdout, /^fail  field-resized +dev x: x is 4 bytes in the stream, 8 at the destination\n/);
  assert.equal(runCli(['compat', '--dumps', a, a]).status, 0);
  const bad = runCli(['compat', '--dumps', a, path.join(dir, 'missing.json')]);
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /^vmstate: .*missing\.json: no such file$/m);
  assert.equal(bad.stderr.trim().split('\n').length, 1);
});

test('compat SOURCE DEST.json: a dump as the destination, alone or with its stream (either order)', async () => {
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const os = await import('node:os');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vmstate-dump-dest-'));
  // A destination whose hpet takes versions 3 and 4 only: the 10.0 stream's hpet (version 2) is too old.
  const dumpFile = path.join(dir, 'dest.json');
  const hpet = { name: 'hpet', version_id: 4, minimum_version_id: 3, Fields: [] };
  writeFileSync(dumpFile, JSON.stringify({ vmschkmachine: { Name: 'pc-q35-7.2' }, hpet: { Name: 'hpet', version_id: 4, minimum_version_id: 3, Description: hpet } }));
  const alone = runCli(['compat', from10, dumpFile]);
  assert.equal(alone.status, 1);
  assert.match(alone.stdout, /^fail  machine-type +configuration @8: Machine type received is 'pc-q35-10.0' and local is 'pc-q35-7.2'\n/);
  assert.match(alone.stdout, /\nfail  version-too-old +hpet 0 @\d+: hpet: version 2 is older than the oldest the destination loads \(3\)\n/);
  assert.match(alone.stdout, /no destination stream tells its release/);
  for (const order of [[dumpFile, from72], [from72, dumpFile]]) {
    const both = runCli(['compat', from10, ...order]);
    assert.equal(both.status, 1);
    assert.match(both.stdout, /\nfail  unknown-section +slirp 1 /);
    assert.match(both.stdout, /\nfail  version-too-old +hpet 0 /);
  }
});
