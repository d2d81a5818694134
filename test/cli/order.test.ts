// `vmstate order` and `vmstate plan` as users run them: real QEMU streams pass by their own QEMU's rules,
// the same streams with sections moved out of order are flagged with both sections named (by the rules
// of the release that has them), and plan files print their order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { listSections, openStreamFile, requireVmdesc } from '../../src/analyze/index.js';
import { cliPath, fixturesDir } from '../support/paths.js';
import { fixtures } from '../support/fixtures.js';

function vmstate(...args: string[]) {
  const r = spawnSync(process.execPath, [cliPath, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The stream with the FULL section `move` cut out and put back just before the FULL section `before`. */
async function moveSection(stream: string, move: string, before: string): Promise<Buffer> {
  const file = openStreamFile(stream);
  const rows = await listSections(file.source(), requireVmdesc(file).vmdesc);
  file.close();
  const bytes = fs.readFileSync(stream);
  const m = rows.find((r) => r.type === 'full' && r.idstr === move);
  const b = rows.find((r) => r.type === 'full' && r.idstr === before);
  assert.ok(m && b && b.offset < m.offset);
  const moved = bytes.subarray(m.offset, m.offset + m.size);
  return Buffer.concat([bytes.subarray(0, b.offset), moved, bytes.subarray(b.offset, m.offset), bytes.subarray(m.offset + m.size)]);
}

test("every fixture, from QEMU 7.2 and 10.0, is in a good order by its own QEMU's rules", () => {
  for (const fx of fixtures()) {
    const r = vmstate('order', fx.stream);
    assert.equal(r.code, 0, `${fx.name}: ${r.stdout}${r.stderr}`);
    const v = fx.qemu.replace('.', '\\.');
    const machine = new RegExp(`^rules of QEMU ${v} \\(the stream is from QEMU >= ${v}: machine type [a-z0-9-]+-${v}\\)\n`);
    assert.match(r.stdout, machine, fx.name);
    assert.match(r.stdout, /\norder ok: \d+ device sections, 5 rules, no violation\n$/);
  }
});

test("--qemu 7.2 checks QEMU 10.0's fixtures by 7.2's rules; JSON says which rules and why", () => {
  for (const fx of fixtures('10.0')) {
    const r = vmstate('order', '--qemu', '7.2', fx.stream);
    assert.equal(r.code, 0, `${fx.name}: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /^rules of QEMU 7\.2 \(--qemu 7\.2\)\norder ok: \d+ device sections, 5 rules, no violation\n$/);
  }
  const stream = path.join(fixturesDir, 'qemu-10.0', 'q35-minimal-paused.mig');
  const json = JSON.parse(vmstate('order', '--json', stream).stdout) as { qemu: unknown; rules: number; violations: unknown[] };
  assert.deepEqual(json.qemu, { release: '10.0', why: 'the stream is from QEMU >= 10.0: machine type pc-q35-10.0' });
  assert.deepEqual([json.rules, json.violations], [5, []]);
  assert.deepEqual((JSON.parse(vmstate('order', '--json', '--qemu', '10.2.2', stream).stdout) as { qemu: unknown }).qemu, { release: '10.2', why: '--qemu 10.2.2' });
});

test('an unknown --qemu is a usage error naming the known releases', () => {
  const r = vmstate('order', '--qemu', '11.0', path.join(fixturesDir, 'qemu-10.0', 'q35-minimal-paused.mig'));
  assert.equal(r.code, 2);
  assert.equal(r.stderr, 'vmstate: --qemu 11.0: expected one of 7.2, 8.0, 8.1, 8.2, 9.0, 9.1, 9.2, 10.0, 10.1, 10.2\n');
});

test('an AMD IOMMU moved before the root ports is flagged by 10.1 rules, not by 10.0 ones', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmstate-order-'));
  try {
    // QEMU 10.0's stream with its intel-iommu section described as the AMD IOMMU's ("amd-iommu" in hw/i386/amd_iommu.c).
    const stream = path.join(fixturesDir, 'qemu-10.0', 'q35-iommu-3rp-switch-bios.mig');
    const desc = path.join(dir, 'amd.json');
    const intel = vmstate('analyze', '--desc', stream).stdout;
    fs.writeFileSync(desc, intel.replace('"vmsd_name": "iommu-intel"', '"vmsd_name": "amd-iommu"'));
    assert.notEqual(fs.readFileSync(desc, 'utf8'), intel);
    const bad = path.join(dir, 'amd-first.mig');
    const bytes = await moveSection(stream, 'iommu-intel', '0000:00:03.0/pcie-root-port');
    fs.writeFileSync(bad, bytes);

    const by10_0 = vmstate('order', '--vmdesc', desc, bad);
    assert.equal(by10_0.code, 0, by10_0.stdout);
    assert.match(by10_0.stdout, /^rules of QEMU 10\.0 \(the stream is from QEMU >= 10\.0: machine type pc-q35-10\.0\)\norder ok: 48 device sections, 5 rules/);

    const by10_1 = vmstate('order', '--vmdesc', desc, '--qemu', '10.1', bad);
    assert.equal(by10_1.code, 1);
    const lines = by10_1.stdout.trimEnd().split('\n');
    assert.equal(lines[0], 'rules of QEMU 10.1 (--qemu 10.1)');
    assert.match(lines[1], /^bridges before IOMMUs: 0000:00:03\.0\/pcie-root-port \(\d+\) \[pcie-root-port\] at position 1 should load before iommu-intel \(\d+\) \[amd-iommu\] at position 0: /);
    assert.equal(lines.at(-1), '6 violation(s) in 48 device sections');

    // The same stream with the machine type pc-q35-10.1: its own rules are 10.1's.
    const at = bytes.indexOf('pc-q35-10.0');
    assert.equal(at, 13); // the configuration record's name, just after the header, type byte and length
    bytes.write('pc-q35-10.1', at);
    fs.writeFileSync(bad, bytes);
    const own = vmstate('order', '--vmdesc', desc, bad);
    assert.equal(own.code, 1);
    assert.deepEqual(own.stdout.split('\n').slice(0, 1), ['rules of QEMU 10.1 (the stream is from QEMU >= 10.1: machine type pc-q35-10.1)']);
    assert.equal(own.stdout.split('\n').slice(1).join('\n'), lines.slice(1).join('\n') + '\n');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a PCI device moved before the APIC is flagged by 10.2 rules only', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmstate-order-'));
  try {
    const bad = path.join(dir, 'mch-first.mig');
    fs.writeFileSync(bad, await moveSection(path.join(fixturesDir, 'qemu-10.0', 'q35-minimal-paused.mig'), '0000:00:00.0/mch', 'apic'));
    assert.equal(vmstate('order', bad).code, 0);
    assert.equal(vmstate('order', '--qemu', '10.1', bad).code, 0);
    const r = vmstate('order', '--qemu', '10.2', bad);
    assert.equal(r.code, 1);
    assert.equal(
      r.stdout,
      'rules of QEMU 10.2 (--qemu 10.2)\n' +
        'APIC before PCI devices: apic (6) [apic] at position 5 should load before 0000:00:00.0/mch (8) [mch] at position 4: ' +
        "a VFIO PCI device's interrupt setup reads the APIC to choose posted or remapped delivery\n" +
        '1 violation(s) in 29 device sections\n',
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the IOMMU moved before the root ports (the pre-2018 order) is flagged, each bridge named', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmstate-order-'));
  try {
    const bad = path.join(dir, 'iommu-first.mig');
    fs.writeFileSync(bad, await moveSection(path.join(fixturesDir, 'q35-iommu-3rp-switch-bios.mig'), 'iommu-intel', '0000:00:03.0/pcie-root-port'));
    // Still a valid stream: both analyzers read it.
    assert.equal(vmstate('analyze', bad).code, 0);
    const r = vmstate('order', bad);
    assert.equal(r.code, 1);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines.shift(), 'rules of QEMU 7.2 (the stream is from QEMU >= 7.2: machine type pc-q35-7.2)');
    assert.equal(
      lines[0],
      'bridges before IOMMUs: 0000:00:03.0/pcie-root-port (41) [pcie-root-port] at position 1 should load before iommu-intel (40) [iommu-intel] at position 0: ' +
        'an IOMMU rebuilds its address spaces from the bus numbers in bridges and root ports',
    );
    assert.deepEqual(
      lines.slice(0, -1).map((l) => l.split(' [')[0]),
      [
        'bridges before IOMMUs: 0000:00:03.0/pcie-root-port (41)',
        'bridges before IOMMUs: 0000:00:04.0/pcie-root-port (43)',
        'bridges before IOMMUs: 0000:00:05.0/pcie-root-port (45)',
        'bridges before IOMMUs: 0000:00:04.0:00.0/xio3130-express-upstream-port (48)',
        'bridges before IOMMUs: 0000:00:04.0:00.0:00.0/xio3130-express-downstream-port (50)',
        'bridges before IOMMUs: 0000:00:06.0/pcie-pci-bridge (54)',
      ],
    );
    assert.equal(lines.at(-1), '6 violation(s) in 48 device sections');
    const json = JSON.parse(vmstate('order', '--json', bad).stdout) as { violations: { rule: string; supplier: { section: string; offset: number } }[] };
    assert.equal(json.violations.length, 6);
    assert.equal(json.violations[0].supplier.section, '0000:00:03.0/pcie-root-port (41)');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a PCI device moved before the IOMMU is flagged', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmstate-order-'));
  try {
    const bad = path.join(dir, 'nic-first.mig');
    fs.writeFileSync(bad, await moveSection(path.join(fixturesDir, 'q35-iommu-3rp-switch-bios.mig'), '0000:00:04.0:00.0:00.0:00.0/e1000e', 'iommu-intel'));
    const r = vmstate('order', bad);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /^rules of QEMU 7\.2 \(.*\)\nIOMMUs before PCI devices: iommu-intel \(40\) \[iommu-intel\] at position \d+ should load before 0000:00:04\.0:00\.0:00\.0:00\.0\/e1000e \(52\) \[e1000e\]/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('plan prints the order with reasons; cycles and contradictions are one-line errors', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmstate-plan-'));
  try {
    const file = path.join(dir, 'm.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        entries: [
          { idstr: 'iommu-intel', vmsd: 'iommu-intel' },
          { idstr: '0000:00:03.0/pcie-root-port', vmsd: 'pcie-root-port' },
          { idstr: '0000:00:03.0:00.0/e1000e', vmsd: 'e1000e' },
          { idstr: 'timer' },
        ],
        dependencies: [{ supplier: { vmsd: 'iommu-intel' }, consumer: { idstr: '0000:00:03.0:00.0/e1000e' }, reason: 'DMA goes through the IOMMU' }],
      }),
    );
    const r = vmstate('plan', file);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      [
        '0  0000:00:03.0/pcie-root-port#0 [pcie-root-port]',
        '     priority PCI_BUS (2): PCI bus: bridge bus numbers must load before the IOMMU rebuilds its address spaces',
        '1  iommu-intel#0 [iommu-intel]',
        '     priority IOMMU (1): IOMMU: must load before the PCI devices whose DMA it translates',
        '2  0000:00:03.0:00.0/e1000e#0 [e1000e]',
        '     priority DEFAULT (0): default priority',
        '     after iommu-intel#0: DMA goes through the IOMMU',
        '3  timer#0',
        '     priority DEFAULT (0): default priority',
        '',
      ].join('\n'),
    );
    const json = JSON.parse(vmstate('plan', '--json', file).stdout) as { order: { idstr: string }[] };
    assert.deepEqual(
      json.order.map((o) => o.idstr),
      ['0000:00:03.0/pcie-root-port', 'iommu-intel', '0000:00:03.0:00.0/e1000e', 'timer'],
    );

    fs.writeFileSync(
      file,
      JSON.stringify({
        entries: [{ idstr: 'a' }, { idstr: 'b' }],
        dependencies: [
          { supplier: { idstr: 'a' }, consumer: { idstr: 'b' } },
          { supplier: { idstr: 'b' }, consumer: { idstr: 'a' } },
        ],
      }),
    );
    const cyc = vmstate('plan', file);
    assert.equal(cyc.code, 1);
    assert.equal(cyc.stderr, 'vmstate: dependency cycle: a#0 -> b#0 -> a#0\n');

    fs.writeFileSync(
      file,
      JSON.stringify({ entries: [{ idstr: 'iommu-intel', vmsd: 'iommu-intel' }, { idstr: 'nic' }], dependencies: [{ supplier: { idstr: 'nic' }, consumer: { vmsd: 'iommu-intel' }, reason: 'r' }] }),
    );
    const contra = vmstate('plan', file);
    assert.equal(contra.code, 1);
    assert.equal(contra.stderr, 'vmstate: nic#0 (priority DEFAULT) must be saved before iommu-intel#0 (priority IOMMU), but the priorities save iommu-intel#0 first: r\n');
    const won = vmstate('plan', '--edges-win', file);
    assert.equal(won.code, 0);
    assert.match(won.stdout, /^0  nic#0\n.*\n1  iommu-intel#0 \[iommu-intel\]\n.*\n.*after nic#0: r \(this edge overrides the priorities\)\n$/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
