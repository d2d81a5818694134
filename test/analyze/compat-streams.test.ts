// compat on small hand-made streams, one kind of finding each: a source and a destination machine that
// differ in one way are saved as real streams (saveSnapshot), and compat's text on the pair must equal
// the golden file test/fixtures/compat/CASE.txt. After a deliberate change of wording, rewrite the golden
// files with VMSTATE_UPDATE_GOLDEN=1 and review the diff.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { compareStreams, formatCompat, profileStreamFile } from '../../src/analyze/index.js';
import { array, defineVmsd, MigPriority, RamHandler, saveSnapshot, SaveRegistry, u16, u32, u64, u8, unused, type AnyVmsd } from '../../src/index.js';
import { fixturesDir } from '../support/paths.js';

/** How one side's machine differs from the plain one. */
interface Variant {
  machine?: string;
  ramBytes?: number;
  nicVersion?: number;
  /** The NIC's fields (default: 4 u16 registers and a u32 status), and how many registers it has. */
  nicFields?: AnyVmsd['fields'];
  regs?: number;
  /** The NIC has a subsection that is sent. */
  nicSubsection?: boolean;
  /** A second NIC (instance 1). */
  twoNics?: boolean;
  /** The IOMMU and the root port registered at one priority, IOMMU first: QEMU's order before 2018. */
  legacyOrder?: boolean;
}

const plainNic = [array(u16('regs'), 4), u32('status')];

function registry(v: Variant): SaveRegistry {
  const reg = new SaveRegistry();
  const ram = new Uint8Array(v.ramBytes ?? 64 * 1024);
  ram.fill(7, 4096, 8192);
  reg.register({ idstr: 'ram', handler: new RamHandler([{ name: 'pc.ram', data: ram }]) });
  // Named as QEMU's devices are, so that the order rules know them.
  const port = defineVmsd({ name: 'pcie-root-port', version: 1, priority: v.legacyOrder ? MigPriority.DEFAULT : MigPriority.PCI_BUS, fields: [u8('secondary')] });
  const iommu = defineVmsd({ name: 'iommu-intel', version: 1, priority: v.legacyOrder ? MigPriority.DEFAULT : MigPriority.IOMMU, fields: [u64('root')] });
  reg.register({ idstr: 'iommu-intel', vmsd: iommu, state: { root: 0x1000n } });
  reg.register({ idstr: '0000:00:02.0/pcie-root-port', vmsd: port, state: { secondary: 1 } });
  const subsections = v.nicSubsection ? [defineVmsd({ name: 'nic/vlan', version: 1, needed: () => true, fields: [u16('vlan')] })] : [];
  const nic = defineVmsd({ name: 'nic', version: v.nicVersion ?? 1, fields: v.nicFields ?? plainNic, subsections });
  const state = (): Record<string, unknown> => ({ regs: Array.from({ length: v.regs ?? 4 }, (_, i) => i + 1), status: 5, vlan: 9, extra: 0 });
  reg.register({ idstr: '0000:00:03.0/nic', instanceId: 0, vmsd: nic, state: state() });
  if (v.twoNics) reg.register({ idstr: '0000:00:03.0/nic', instanceId: 1, vmsd: nic, state: state() });
  return reg;
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmstate-compat-golden-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function write(name: string, v: Variant): string {
  const file = path.join(dir, `${name}.mig`);
  const chunks: Uint8Array[] = [];
  saveSnapshot(registry(v), (c) => chunks.push(c), { machineName: v.machine ?? 'pc-q35-7.2' });
  fs.writeFileSync(file, Buffer.concat(chunks));
  return file;
}

/** Each case: the source's variant, the destination's, and what compat's verdict must be. */
const cases: Record<string, { source: Variant; dest: Variant; verdict: string }> = {
  same: { source: {}, dest: {}, verdict: 'will load' },
  'machine-type': { source: { machine: 'pc-q35-10.0' }, dest: {}, verdict: 'will fail' },
  'unknown-section': { source: { twoNics: true }, dest: {}, verdict: 'will fail' },
  'version-too-new': { source: { nicVersion: 2 }, dest: {}, verdict: 'will fail' },
  'field-added': { source: {}, dest: { nicFields: [...plainNic, u32('extra')] }, verdict: 'will fail' },
  'field-missing': { source: { nicFields: [array(u16('regs'), 4), u32('extra'), u32('status')] }, dest: {}, verdict: 'will fail' },
  'field-retyped': { source: { nicFields: [array(u32('regs'), 4), u32('status')] }, dest: {}, verdict: 'will fail' },
  'array-length': { source: { nicFields: [array(u16('regs'), 8), u32('status')], regs: 8 }, dest: {}, verdict: 'will fail' },
  'fields-reordered': { source: { nicFields: [u32('status'), array(u16('regs'), 4)] }, dest: {}, verdict: 'will fail' },
  'unused-padding': { source: { nicFields: [array(u16('regs'), 4), u32('status')] }, dest: { nicFields: [array(u16('regs'), 4), unused(4)] }, verdict: 'will load' },
  'subsection-unknown': { source: { nicSubsection: true }, dest: {}, verdict: 'will load' },
  'ram-block-size': { source: { ramBytes: 128 * 1024 }, dest: {}, verdict: 'will fail' },
  order: { source: { legacyOrder: true }, dest: {}, verdict: 'will load wrong' },
};

const golden = path.join(fixturesDir, 'compat');

for (const [name, c] of Object.entries(cases)) {
  test(`compat on hand-made streams: ${name}`, async () => {
    const report = compareStreams(await profileStreamFile(write(`${name}-source`, c.source)), await profileStreamFile(write(`${name}-dest`, c.dest)));
    assert.equal(report.verdict, c.verdict);
    if (name !== 'same' && name !== 'order') assert.ok(report.findings.some((f) => f.kind === name), `no ${name} finding: ${JSON.stringify(report.findings)}`);
    const text = formatCompat(report);
    const file = path.join(golden, `${name}.txt`);
    if (process.env.VMSTATE_UPDATE_GOLDEN === '1') {
      fs.mkdirSync(golden, { recursive: true });
      fs.writeFileSync(file, text);
    }
    assert.equal(text, fs.readFileSync(file, 'utf8'), `compat's text differs from ${file}`);
  });
}
