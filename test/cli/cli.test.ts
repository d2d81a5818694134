// The command line as a user meets it: output, exit codes, and one clear line (never a stack trace) on failure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { deflateSync } from 'node:zlib';
import { cliPath, fixturesDir } from '../support/paths.js';
import { ramOnlyStream } from '../support/ram-stream.js';

const BIOS = path.join(fixturesDir, 'q35-iommu-3rp-switch-bios.mig');

function vmstate(...args: string[]) {
  const r = spawnSync(process.execPath, [cliPath, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function assertOneLineFailure(r: ReturnType<typeof vmstate>, code: number, message: string | RegExp) {
  assert.equal(r.code, code, r.stderr);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `stderr has ${lines.length} lines:\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'a stack trace was printed');
  if (typeof message === 'string') assert.equal(lines[0], message);
  else assert.match(lines[0], message);
}

function tmpdir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'vmstate-cli-'));
}

test('analyze prints the golden JSON', () => {
  const r = vmstate('analyze', BIOS);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, fs.readFileSync(path.join(fixturesDir, 'q35-iommu-3rp-switch-bios.analyze.json'), 'utf8'));
});

test("analyze prints a QEMU 10.0 stream as 10.0's script does, and as 7.2's with --compat 7.2", () => {
  const q10 = path.join(fixturesDir, 'qemu-10.0', 'q35-minimal-paused.mig');
  const r = vmstate('analyze', q10);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, fs.readFileSync(path.join(fixturesDir, 'qemu-10.0', 'q35-minimal-paused.analyze.json'), 'utf8'));
  // 7.2's script lists AHCI's ports by index, and 10.0's descriptions leave the last port's index off:
  // 7.2 keeps that port alone, 10.0 all six in a list.
  const old = vmstate('analyze', '--compat', '7.2', q10);
  assert.equal(old.code, 0, old.stderr);
  assert.match(r.stdout, /"dev": \[\n/);
  assert.doesNotMatch(old.stdout, /"dev": \[\n/);
  assert.equal(vmstate('analyze', '--compat', '7.2', BIOS).stdout, vmstate('analyze', BIOS).stdout);
  assertOneLineFailure(vmstate('analyze', '--compat', '8.0', BIOS), 2, 'vmstate: --compat 8.0: expected one of 7.2, 10.0');
});

test('a stream from a pipe is read front to back with --vmdesc, by analyze, sections, order and identify', () => {
  const bytes = fs.readFileSync(BIOS);
  const piped = (...args: string[]) => {
    const r = spawnSync(process.execPath, [cliPath, ...args], { input: bytes, encoding: 'utf8', maxBuffer: 64 << 20 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const analyzed = piped('analyze', '--vmdesc', BIOS, '-');
  assert.equal(analyzed.code, 0, analyzed.stderr);
  assert.equal(analyzed.stdout, vmstate('analyze', BIOS).stdout);
  assert.equal(piped('sections', '--vmdesc', BIOS, '-').stdout, vmstate('sections', BIOS).stdout);
  assert.equal(piped('order', '--vmdesc', BIOS, '-').stdout, vmstate('order', BIOS).stdout);
  assert.equal(piped('identify', '--vmdesc', BIOS, '-').stdout, vmstate('identify', BIOS).stdout);
  assertOneLineFailure(
    piped('analyze', '-'),
    1,
    'vmstate: -: the stream cannot seek (a pipe?), so its trailer, which comes last, cannot be read first: give the description with --vmdesc (at byte offset 0)',
  );
  // A shell's pipe, named as a path.
  const shell = spawnSync('sh', ['-c', `cat "$1" | "$2" "$3" analyze --vmdesc "$1" /dev/stdin`, 'sh', BIOS, process.execPath, cliPath], { encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.equal(shell.status, 0, shell.stderr);
  assert.equal(shell.stdout, analyzed.stdout);
});

test('identify tells the QEMU a stream comes from, as text and as JSON', () => {
  const q10 = path.join(fixturesDir, 'qemu-10.0', 'q35-iommu-3rp-switch-bios.mig');
  const r = vmstate('identify', q10);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^QEMU {10}>= 10\.0\n/);
  assert.match(r.stdout, /\nmachine type  pc-q35-10\.0 /);
  const json = JSON.parse(vmstate('identify', '--json', BIOS).stdout) as { atLeast: string; machineType: { value: string } };
  assert.deepEqual([json.atLeast, json.machineType.value], ['7.2', 'pc-q35-7.2']);
});

test('a command of a number vmstate does not know is read by its length, listed, kept by rewrite, and noted by analyze', () => {
  const dir = tmpdir();
  try {
    // Command 0x99 with a 3-byte payload, put right after the configuration record (bytes 8..22).
    const bytes = fs.readFileSync(BIOS);
    const command = Buffer.from([0x08, 0x00, 0x99, 0x00, 0x03, 1, 2, 3]);
    const odd = path.join(dir, 'odd.mig');
    fs.writeFileSync(odd, Buffer.concat([bytes.subarray(0, 23), command, bytes.subarray(23)]));
    const r = vmstate('analyze', odd);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, vmstate('analyze', BIOS).stdout);
    assert.equal(r.stderr, 'vmstate: note: command 153 (3 bytes at byte offset 23) is not one vmstate knows; skipped\n');
    assert.match(vmstate('sections', odd).stdout, /\n\s+23\s+command\s+command 153\s+8\n/);
    const out = path.join(dir, 'out.mig');
    assert.equal(vmstate('rewrite', odd, out).code, 0);
    assert.ok(fs.readFileSync(out).equals(fs.readFileSync(odd)));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('sections lists every record, and --json gives the same rows', () => {
  const text = vmstate('sections', BIOS);
  const json = vmstate('sections', '--json', BIOS);
  assert.equal(text.code, 0);
  const rows = JSON.parse(json.stdout) as { offset: number; type: string; idstr: string }[];
  const lines = text.stdout.trimEnd().split('\n');
  assert.match(lines[0], /^\s*offset\s+type\s+id\s+idstr\s+instance\s+version\s+size$/);
  assert.equal(lines.length, rows.length + 1);
  assert.match(lines[1], /^\s+8\s+configuration\s+pc-q35-7.2\s+15$/);
  assert.match(lines[2], /^\s+23\s+start\s+2\s+ram\s+0\s+4\s+170$/);
  assert.deepEqual(rows.slice(-2).map((r) => r.type), ['eof', 'vmdesc']);
  assert.ok(rows.some((r) => r.idstr === 'iommu-intel' && r.type === 'full'));
});

test('a stream cut inside a device names the section, field and offset', () => {
  const dir = tmpdir();
  try {
    const cut = path.join(dir, 'cut.mig');
    fs.writeFileSync(cut, fs.readFileSync(BIOS).subarray(0, 670000));
    assertOneLineFailure(
      vmstate('analyze', cut),
      1,
      `vmstate: ${cut}: no VMDESCRIPTION trailer at the end of the stream (a postcopy stream, saved with suppress-vmdesc, or cut short): device sections cannot be decoded without --vmdesc (at byte offset 670000)`,
    );
    assertOneLineFailure(
      vmstate('analyze', '--vmdesc', BIOS, cut),
      1,
      'vmstate: 0000:00:03.0/pcie-root-port (41).parent_obj.parent_obj.parent_obj.config[1]: stream ends after 951 of 4096 bytes (at byte offset 669049)',
    );
    const sections = vmstate('sections', '--vmdesc', BIOS, cut);
    assert.equal(sections.code, 1);
    assert.match(sections.stdout, /\bend\s+2\s+ram\b/, 'the sections before the cut are still listed');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a corrupt record type is one line with its offset', () => {
  const dir = tmpdir();
  try {
    const bad = path.join(dir, 'bad.mig');
    const bytes = fs.readFileSync(BIOS);
    bytes[669004] = 0x09; // the first FULL section's type byte
    fs.writeFileSync(bad, bytes);
    assertOneLineFailure(vmstate('analyze', bad), 1, 'vmstate: unknown record type 0x09 (at byte offset 669004)');
    const notAStream = path.join(dir, 'text.mig');
    fs.writeFileSync(notAStream, 'hello, world\n');
    assertOneLineFailure(vmstate('sections', notAStream), 1, 'vmstate: bad magic 0x68656c6c, expected 0x5145564d ("QEVM") (at byte offset 0)');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('usage errors exit 2 with one line', () => {
  assertOneLineFailure(vmstate('analyze'), 2, 'vmstate: analyze takes FILE (see vmstate help)');
  assertOneLineFailure(vmstate('frobnicate'), 2, 'vmstate: unknown command "frobnicate" (see vmstate help)');
  assertOneLineFailure(vmstate('analyze', '--bogus', BIOS), 2, 'vmstate: unknown option --bogus');
  assertOneLineFailure(vmstate('analyze', '/no/such/file.mig'), 1, 'vmstate: /no/such/file.mig: no such file');
  assert.equal(vmstate('help').code, 0);
});

test('rewrite --set changes exactly the named byte and analyze shows it', () => {
  const dir = tmpdir();
  try {
    const out = path.join(dir, 'out.mig');
    const field = '0000:00:03.0/pcie-root-port:parent_obj.parent_obj.parent_obj.config[1]';
    const r = vmstate('rewrite', BIOS, out, '--set', `${field}[0x19]=0x21`);
    assert.equal(r.code, 0, r.stderr);
    const a = fs.readFileSync(BIOS);
    const b = fs.readFileSync(out);
    const diffs = [...a.keys()].filter((i) => a[i] !== b[i]);
    // The root port's section starts at 669004; config space at 669004 + 1+4+1+27+4+4 + 4 (version_id).
    assert.deepEqual(diffs, [669049 + 0x19]);
    assert.equal(b[669049 + 0x19], 0x21);
    const config = (JSON.parse(vmstate('analyze', out).stdout) as Record<string, Record<string, Record<string, string>>>)['0000:00:03.0/pcie-root-port (41)'][
      'parent_obj.parent_obj.parent_obj'
    ]['config[1]'];
    assert.equal(config.split(' ')[0x19], '21');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('rewrite refuses an edit that does not fit and leaves no output behind', () => {
  const dir = tmpdir();
  try {
    const out = path.join(dir, 'out.mig');
    const field = '0000:00:03.0/pcie-root-port:parent_obj.parent_obj.parent_obj.config[1]';
    assertOneLineFailure(vmstate('rewrite', BIOS, out, '--set', `${field}[0x19]=256`), 2, `vmstate: --set ${field}[0x19]=256: byte value 256 is not between 0 and 255`);
    assertOneLineFailure(vmstate('rewrite', BIOS, out, '--set', `${field}[4096]=1`), 2, `vmstate: --set ${field}[4096]=1: byte 4096 is past the end of a 4096-byte buffer`);
    assertOneLineFailure(vmstate('rewrite', BIOS, out, '--set', 'timer:nope=1'), 2, 'vmstate: --set timer:nope=1: no field matches "nope"');
    assertOneLineFailure(vmstate('rewrite', BIOS, out, '--set', 'nodev:x=1'), 2, 'vmstate: --set nodev:x=1: the stream has no section "nodev" with instance 0');
    assertOneLineFailure(vmstate('rewrite', BIOS, out, '--set', 'i8259#1:imr=0x100'), 2, 'vmstate: --set i8259#1:imr=0x100: value 0x100 does not fit uint8 (1 bytes)');
    assert.deepEqual(fs.readdirSync(dir), []);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('analyze --ram-dir writes pages sent again, as XBZRLE deltas, deflated, and zero over data', () => {
  const dir = tmpdir();
  try {
    // A stream with RAM only: a START listing one 3-page block, a PART with the pages, an END.
    const page = (v: number) => new Uint8Array(4096).fill(v);
    const stream = ramOnlyStream({
      pages: 3,
      part: (enc) => {
        enc.page('pc.ram', 0, page(1), true);
        enc.page('pc.ram', 4096, page(2), false);
        enc.compressedPage('pc.ram', 8192, deflateSync(page(3)), false);
      },
      end: (enc) => {
        enc.xbzrlePage('pc.ram', 0, new Uint8Array([0, 1, 0xee]), false); // byte 0 of page 0 becomes 0xee
        enc.zeroPage('pc.ram', 4096, 0, false); //                          page 1 was data, is zero now
        enc.multifdFlush();
      },
      trailer: '{"page_size": 4096, "devices": []}',
    });
    const mig = path.join(dir, 'ram.mig');
    fs.writeFileSync(mig, stream);
    const out = path.join(dir, 'out');
    const r = vmstate('analyze', '--ram-dir', out, mig);
    assert.equal(r.code, 0, r.stderr);
    const want = Buffer.concat([page(1), page(0), page(3)]);
    want[0] = 0xee;
    assert.ok(fs.readFileSync(path.join(out, 'pc.ram')).equals(want));
    const copy = path.join(dir, 'copy.mig');
    assert.equal(vmstate('rewrite', mig, copy).code, 0);
    assert.ok(fs.readFileSync(copy).equals(fs.readFileSync(mig)));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('analyze --ram-dir writes each block, equal to the pages in the stream', () => {
  const dir = tmpdir();
  try {
    const r = vmstate('analyze', '--ram-dir', dir, BIOS);
    assert.equal(r.code, 0, r.stderr);
    const sizes = (JSON.parse(r.stdout) as Record<string, { 'section sizes': Record<string, string> }>)['ram (2)']['section sizes'];
    for (const [name, hex] of Object.entries(sizes)) {
      const file = path.join(dir, ...name.split('/').filter(Boolean));
      assert.equal(fs.statSync(file).size, parseInt(hex, 16), name);
    }
    // The BIOS image sits in pc.bios; its last 16 bytes hold the x86 reset vector (a far jump, 0xea).
    const bios = fs.readFileSync(path.join(dir, 'pc.bios'));
    assert.equal(bios[bios.length - 16], 0xea);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
