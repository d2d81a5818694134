// A real Linux on v86: its save_state() file becomes a QEMU stream of described devices and RAM, and that
// stream becomes the same file again, byte for byte; QEMU's analyze-migration.py reads the stream; and
// the file rebuilt from the stream boots on in a fresh emulator, its shell answering.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LoadError, LoadOrderError, SaveError, StreamFormatError } from '../../src/errors.js';
import { listSections, parseVmdesc } from '../../src/analyze/index.js';
import { findVmdescTrailer, loadSnapshot, readVmdesc, saveSnapshot } from '../../src/savevm/index.js';
import { ByteReader, ChunkedSource } from '../../src/stream/index.js';
import { readV86State, v86Entries, writeV86State, V86_DEVICES, V86_MACHINE_TYPE, type V86Value } from '../../src/v86/index.js';
import { analyzeScriptOrSkip, runAnalyzeScript } from '../support/peer.js';
import { bootedState, startV86, v86GuestOrSkip } from '../support/v86.js';

/** The stream that saveSnapshot writes for `tree`. */
function streamOf(tree: readonly V86Value[]): Uint8Array {
  const chunks: Uint8Array[] = [];
  saveSnapshot(v86Entries(tree).registry, (c) => chunks.push(c.slice()), { machineName: V86_MACHINE_TYPE });
  return Buffer.concat(chunks);
}

test('a booted Linux on v86: save_state -> QEMU stream -> save_state, byte for byte, and it runs on', { timeout: 240_000 }, async (t) => {
  const guest = v86GuestOrSkip(t);
  if (!guest) return;
  const booted = new Uint8Array(await bootedState(guest));
  const stream = streamOf(readV86State(booted));

  // The destination's entries start from another state of the same machine: a PC that has not booted.
  const fresh = startV86(guest);
  await fresh.ready;
  const other = new Uint8Array(await fresh.emulator.save_state());
  await fresh.emulator.destroy();
  assert.notDeepEqual(other.subarray(0, 64), booted.subarray(0, 64), 'the fresh state differs from the booted one');
  const destination = v86Entries(readV86State(other));
  await loadSnapshot(destination.registry, ChunkedSource.fromBytes(stream), { machineName: V86_MACHINE_TYPE, checkLoadOrder: true });
  const rebuilt = writeV86State(destination.toTree());
  assert.equal(rebuilt.length, booted.length);
  assert.ok(Buffer.from(rebuilt).equals(Buffer.from(booted)), 'the rebuilt save_state file equals the original');

  const restored = startV86(guest, rebuilt.buffer as ArrayBuffer);
  try {
    await restored.ready;
    const { output, status } = await restored.console.run('echo $((6 * 7)) && uname -m');
    assert.equal(status, 0);
    assert.match(output, /^42\ni686\n/);
  } finally {
    await restored.emulator.destroy();
  }

  // QEMU's own analyzer reads every section and the description of every field.
  const script = analyzeScriptOrSkip(t);
  if (!script) return;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmstate-v86-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'v86.mig');
  fs.writeFileSync(file, stream);
  const analyzed = runAnalyzeScript(['-f', file]);
  assert.equal(analyzed.status, 0, analyzed.stderr);
  const analysis = JSON.parse(analyzed.stdout) as Record<string, Record<string, unknown>>;
  // Keys are "idstr (section id)"; the booted PC has one UART and one parallel port configured, two PICs.
  const names = Object.keys(analysis).map((k) => k.replace(/ \(\d+\)$/, ''));
  assert.deepEqual(names.sort(), ['ram', 'v86-apic', 'v86-cpu', 'v86-dma', 'v86-fdc', 'v86-ide', 'v86-ioapic', 'v86-ne2k', 'v86-parallel', 'v86-pci', 'v86-pic', 'v86-pic', 'v86-pit', 'v86-ps2', 'v86-rtc', 'v86-sb16', 'v86-uart', 'v86-vga', 'v86-vmware-mouse']);
  const uart = Object.entries(analysis).find(([k]) => k.startsWith('v86-uart '))?.[1];
  assert.ok(uart && 'line_control' in uart && 'ier' in uart, 'the UART shows its registers by name');
});

test('v86 devices are saved after the interrupt controllers and the PCI host; a stream that loads one first is refused', { timeout: 240_000 }, async (t) => {
  const guest = v86GuestOrSkip(t);
  if (!guest) return;
  const tree = readV86State(new Uint8Array(await bootedState(guest)));
  const plan = v86Entries(tree).registry.plan();
  const at = (label: string) => plan.entries.findIndex((e) => e.label === label);
  for (const consumer of ['v86-rtc#0', 'v86-pit#0', 'v86-uart#0', 'v86-ps2#0', 'v86-fdc#0', 'v86-ide#0', 'v86-sb16#0']) {
    for (const supplier of ['v86-pic#0', 'v86-pic#1', 'v86-ioapic#0']) assert.ok(at(supplier) < at(consumer), `${supplier} before ${consumer}`);
  }
  for (const consumer of ['v86-ide#0', 'v86-ne2k#0', 'v86-vga#0']) assert.ok(at('v86-pci#0') < at(consumer), `v86-pci#0 before ${consumer}`);
  assert.ok(at('v86-apic#0') < at('v86-ioapic#0'));
  assert.ok(plan.explain(at('v86-uart#0')).some((line) => /raises interrupts through the PICs and the IOAPIC/.test(line)), plan.explain(at('v86-uart#0')).join('\n'));

  // The UART's section moved before the master PIC's: the load-order guard refuses it, naming both.
  const stream = streamOf(tree);
  const trailer = findVmdescTrailer(stream, 0, stream.length);
  const rows = await listSections(ChunkedSource.fromBytes(stream), parseVmdesc(readVmdesc(new ByteReader(stream, 0, trailer)), trailer + 5));
  const row = (idstr: string, instanceId: number) => rows.find((r) => r.idstr === idstr && r.instanceId === instanceId && r.type === 'full');
  const uart = row('v86-uart', 0);
  const pic = row('v86-pic', 0);
  assert.ok(uart && pic && pic.offset < uart.offset);
  const misordered = Buffer.concat([
    stream.subarray(0, pic.offset),
    stream.subarray(uart.offset, uart.offset + uart.size),
    stream.subarray(pic.offset, uart.offset),
    stream.subarray(uart.offset + uart.size),
  ]);
  await assert.rejects(
    loadSnapshot(v86Entries(tree).registry, ChunkedSource.fromBytes(misordered), { machineName: V86_MACHINE_TYPE, checkLoadOrder: true }),
    (e: unknown) => e instanceof LoadOrderError && /v86-uart#0/.test(e.message) && /v86-ioapic#0|v86-pic#0/.test(e.message),
  );

  // A UART on IRQ 99 (a hostile stream's, say) is refused at load, not left for v86 to trip on.
  const hostile = tree.slice();
  hostile[54] = (tree[54] as V86Value[]).map((v, i) => (i === 10 ? 99 : v));
  await assert.rejects(
    loadSnapshot(v86Entries(tree).registry, ChunkedSource.fromBytes(streamOf(hostile)), { machineName: V86_MACHINE_TYPE }),
    (e: unknown) => e instanceof LoadError && /^v86-uart \(\d+\): IRQ 99 is not a line of the IOAPIC \(0 to 23\)$/.test(e.message),
  );
});

test('v86 state files that are not one are refused with the byte offset', () => {
  const header = (magic: number, version: number, total: number, json: number) => {
    const b = new Uint8Array(16);
    const dv = new DataView(b.buffer);
    [magic, version, total, json].forEach((v, i) => dv.setInt32(4 * i, v, true));
    return b;
  };
  const cases: [Uint8Array, RegExp][] = [
    [new Uint8Array(8), /v86 state: 8 bytes is shorter than the 16-byte header \(at byte offset 0\)/],
    [header(0x1234, 6, 16, 0), /bad magic 0x1234, expected 0x86768676 \(at byte offset 0\)/],
    [header(0x86768676 | 0, 5, 16, 0), /version 5, only 6 is read \(at byte offset 4\)/],
    [header(0x86768676 | 0, 6, 99, 0), /the header says 99 bytes, the file has 16 \(at byte offset 8\)/],
    [header(0x86768676 | 0, 6, 16, 1 << 30), /JSON block of 1073741824 bytes does not fit in the file \(at byte offset 12\)/],
  ];
  for (const [file, message] of cases) assert.throws(() => readV86State(file), (e: unknown) => e instanceof StreamFormatError && message.test(e.message));
  const json = new TextEncoder().encode('{"buffer_infos":[{"offset":0,"length":64}],"state":[{"__state_type__":"Uint8Array","buffer_id":0}]}');
  const file = new Uint8Array(16 + json.length);
  file.set(header(0x86768676 | 0, 6, file.length, json.length));
  file.set(json, 16);
  assert.throws(() => readV86State(file), /buffer 0 lies outside the file/);
});

test('a v86 state that does not fit its descriptions is a SaveError naming the field', () => {
  const uart = V86_DEVICES.find((d) => d.vmsd.name === 'v86-uart');
  assert.ok(uart);
  assert.deepEqual(uart.toTree(uart.toState([0, 9600, 3, 96, 0, 0, 1, 0, 0, 0, 4], 'v86-uart#0')), [0, 9600, 3, 96, 0, 0, 1, 0, 0, 0, 4]);
  assert.throws(
    () => uart.toState([0, 9600, 'x', 96, 0, 0, 1, 0, 0, 0, 4], 'v86-uart#0'),
    (e: unknown) => e instanceof SaveError && e.message === 'v86-uart#0.line_control: v86 holds "x" where the description expects a number',
  );
  assert.throws(() => uart.toState([0, 9600], 'v86-uart#0'), /v86-uart#0: v86 holds an array of 2 where the description expects an array of 11/);
  assert.throws(() => uart.toState([0, 9600, 3, 96, 0, 0, 1, 0, 0, 0, 4, 5], 'v86-uart#0'), /an array of 12 where the description expects an array of 11/);
  // A device v86 has that no description covers yet is refused, not dropped.
  const tree: V86Value[] = new Array<V86Value>(92).fill(null);
  tree[45] = [1, 2, 3];
  assert.throws(() => v86Entries(tree), (e: unknown) => e instanceof SaveError && /v86 state index 45 holds virtio-9p, which has no description yet/.test(e.message));
});
