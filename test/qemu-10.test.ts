// QEMU 10.0 beside the distribution's 7.2: scripts/qemu-10.sh fetches Debian's bookworm-backports
// build into a cache folder, and these tests prove it runs. Its x86_64 and aarch64 binaries write
// streams with QEMU_VM_COMMAND SWITCHOVER_START and load them back, and 10.0's own
// analyze-migration.py reads them, as vmstate's analyze does (byte for byte), and vmstate rewrites them
// byte for byte; the same script prints what 7.2's printed on a committed 7.2 stream, and reads the
// streams vmstate writes in 10.0's dialect. Skips when QEMU 10.0 cannot be had, unless
// VMSTATE_REQUIRE_QEMU=1.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { analyzeStreamJson, openStreamFile, requireVmdesc, rewriteStream } from '../src/analyze/index.js';
import { defineVmsd, pointerArray, QEMU_DIALECTS, saveSnapshot, SaveRegistry, struct, u8, u16, array } from '../src/index.js';
import { cliPath, fixturesDir } from './support/paths.js';
import { analyzeScript10OrSkip, runAnalyzeScript } from './support/peer.js';
import { loadFromFile, migrateToFile, qemu10, qemu10OrSkip, startQemu, type JsonValue } from './support/qemu.js';

const TEST_TIMEOUT_MS = 60_000;

/** QEMU_VM_FILE_MAGIC "QEVM", then QEMU_VM_FILE_VERSION 3 (be32). */
const FILE_MAGIC = 'QEVM';
const FILE_VERSION = 3;
/** QEMU_VM_COMMAND (0x08), MIG_CMD_SWITCHOVER_START (be16 0x000b), length (be16 0): QEMU 10.0 machine types send it. */
const SWITCHOVER_START = Buffer.from([0x08, 0x00, 0x0b, 0x00, 0x00]);

/** Arguments after the machine: -S and never run, so the streams are small and quick. */
const common = ['-accel', 'tcg', '-nodefaults', '-display', 'none', '-S'] as const;
/** The machine each binary migrates, and a section its stream must hold besides RAM. */
const machines = [
  { binary: 'qemu-system-x86_64', machine: 'q35', section: '0000:00:1f.0/ICH9LPC (' },
  { binary: 'qemu-system-aarch64', machine: 'virt', section: 'arm_gic (' },
] as const;

const dirs: string[] = [];
after(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

/** query-version's qemu part, as "MAJOR.MINOR.MICRO". */
function versionOf(value: JsonValue): string {
  const qemu = typeof value === 'object' && value !== null && !Array.isArray(value) ? value.qemu : undefined;
  assert.ok(typeof qemu === 'object' && qemu !== null && !Array.isArray(qemu), `query-version returned ${JSON.stringify(value)}`);
  return `${qemu.major}.${qemu.minor}.${qemu.micro}`;
}

for (const { binary, machine, section } of machines) {
  const title = `QEMU 10.0 ${binary} -M ${machine}: the stream has SWITCHOVER_START, loads back, and vmstate reads it as 10.0's analyze-migration.py does`;
  test(title, { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const qemu = qemu10OrSkip(t, binary);
    if (qemu === null) return;
    const script = analyzeScript10OrSkip(t);
    if (script === null) return;
    const args = [...qemu.args, '-M', machine, ...common];
    const dir = await mkdtemp(path.join(os.tmpdir(), 'vmstate-qemu10-'));
    dirs.push(dir);
    const file = path.join(dir, `${machine}.mig`);

    const vm = await startQemu({ binary: qemu.binary, args, env: qemu.env });
    try {
      assert.equal(versionOf(await vm.qmp.execute('query-version')), qemu10().version, 'not the QEMU scripts/qemu-10.sh names');
      await migrateToFile(vm.qmp, file);
    } finally {
      await vm.stop();
    }
    const bytes = await readFile(file);
    assert.equal(bytes.toString('latin1', 0, 4), FILE_MAGIC);
    assert.equal(bytes.readUInt32BE(4), FILE_VERSION);
    assert.ok(bytes.indexOf(SWITCHOVER_START) > 8, 'no QEMU_VM_COMMAND SWITCHOVER_START in the stream');

    const loaded = await loadFromFile(qemu.binary, args, file, { env: qemu.env });
    try {
      assert.equal(loaded.migration.status, 'completed');
    } finally {
      await loaded.stop();
    }

    const peer = runAnalyzeScript(['-f', file], { script });
    assert.equal(peer.status, 0, `10.0's analyze-migration.py -f exited with ${peer.status}: ${peer.stderr.slice(0, 2000)}`);
    const sections = Object.keys(JSON.parse(peer.stdout) as Record<string, unknown>);
    for (const prefix of ['ram (', section]) {
      assert.ok(sections.some((s) => s.startsWith(prefix)), `no ${prefix}...) section in ${sections.join(', ')}`);
    }

    const stream = openStreamFile(file);
    try {
      const { vmdesc } = requireVmdesc(stream);
      assert.equal(Buffer.from(await analyzeStreamJson(stream.source(), vmdesc)).toString('latin1'), peer.stdout, 'vmstate analyze differs from the script');
      const chunks: Buffer[] = [];
      await rewriteStream(stream.source(), vmdesc, (c) => chunks.push(Buffer.from(c)));
      assert.ok(Buffer.concat(chunks).equals(bytes), 'the rewritten stream differs');
    } finally {
      stream.close();
    }
  });
}

test('QEMU 10.0\'s analyze-migration.py prints what 7.2\'s printed on a 7.2 q35 stream', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const script = analyzeScript10OrSkip(t);
  if (script === null) return;
  const name = 'q35-minimal-paused';
  const peer = runAnalyzeScript(['-f', path.join(fixturesDir, `${name}.mig`)], { script });
  assert.equal(peer.status, 0, `10.0's analyze-migration.py -f exited with ${peer.status}: ${peer.stderr.slice(0, 2000)}`);
  assert.equal(peer.stdout, await readFile(path.join(fixturesDir, `${name}.analyze.json`), 'utf8'));
});

test('QEMU 10.0\'s analyze-migration.py reads vmstate\'s 10.0 streams: configuration subsections, NULL pointers, an array whose last element has no index', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const script = analyzeScript10OrSkip(t);
  if (script === null) return;
  const point = defineVmsd({ name: 'point', version: 1, fields: [u16('x'), u8('y')] });
  const tagged = defineVmsd({
    name: 'tagged',
    version: 1,
    fields: [u8('v')],
    subsections: [defineVmsd({ name: 'tagged/extra', version: 1, needed: (s) => Number(s.v) > 1, fields: [u8('w')] })],
  });
  const dev = defineVmsd({ name: 'dev', version: 1, fields: [pointerArray(struct('slot', point), 4), array(struct('tag', tagged), 3), u8('n')] });
  const registry = new SaveRegistry();
  registry.register({ idstr: 'dev', vmsd: dev, state: { slot: [null, null, { x: 1, y: 2 }, { x: 3, y: 4 }], tag: [{ v: 1 }, { v: 2, w: 9 }, { v: 3, w: 8 }], n: 5 } });
  const chunks: Buffer[] = [];
  saveSnapshot(registry, (c) => chunks.push(Buffer.from(c)), {
    machineName: 'pc-q35-10.0',
    dialect: QEMU_DIALECTS['10.0'],
    configSubsections: [
      { name: 'configuration/target-page-bits', version: 1, targetPageBits: 12 },
      // Only RAM reads differently with these, and this stream has none.
      { name: 'configuration/capabilities', version: 1, capabilities: ['x-ignore-shared', 'mapped-ram'] },
      { name: 'configuration/uuid', version: 1, uuid: new Uint8Array(16).fill(0xab) },
    ],
  });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'vmstate-dialect-'));
  dirs.push(dir);
  const file = path.join(dir, 'dev.mig');
  await writeFile(file, Buffer.concat(chunks));
  const peer = runAnalyzeScript(['-f', file], { script });
  assert.equal(peer.status, 0, `10.0's analyze-migration.py -f exited with ${peer.status}: ${peer.stderr.slice(0, 2000)}`);
  const tree = JSON.parse(peer.stdout) as Record<string, Record<string, unknown>>;
  assert.deepEqual(tree['dev (0)'].slot, ['nullptr', 'nullptr', { x: '0x0001', y: '0x02' }, { x: '0x0003', y: '0x04' }]);
  assert.equal((tree['dev (0)'].tag as unknown[]).length, 3, 'the last "tag", described without an index, joins the list');
  const r = spawnSync(process.execPath, [cliPath, 'analyze', file], { encoding: 'utf8' });
  assert.equal(r.stdout, peer.stdout, r.stderr);
});
