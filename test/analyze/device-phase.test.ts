// A device phase (first device section to the end of the VMDESCRIPTION) rewritten as the proxy does it,
// on streams real QEMU wrote: unchanged when nothing is asked, and otherwise a stream that still decodes,
// with its VMDESCRIPTION following the sections as sent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  decodeStream,
  listRecords,
  parseEdit,
  parseInstanceMapping,
  parseReorder,
  parseVmdesc,
  readValueTree,
  rewriteDevicePhase,
  type SectionRow,
} from '../../src/analyze/index.js';
import { UsageError } from '../../src/errors.js';
import { findVmdescTrailer } from '../../src/savevm/index.js';
import { ChunkedSource } from '../../src/stream/index.js';
import { fixturesDir } from '../support/paths.js';

const Q35 = path.join(fixturesDir, 'qemu-10.0', 'q35-iommu-3rp-switch-paused.mig');
const Q35_7_2 = path.join(fixturesDir, 'q35-iommu-3rp-switch-paused.mig');
const TWO_SLIRPS = path.join(fixturesDir, 'qemu-10.0', 'q35-iommu-3rp-switch-bios-live.mig');

/** A stream file split where its device phase starts (its first FULL section). */
async function split(file: string) {
  const stream = new Uint8Array(readFileSync(file));
  const rows = await listRecords(ChunkedSource.fromBytes(stream), vmdescOf(stream));
  const at = (rows.find((r) => r.type === 'full') as SectionRow).offset;
  return { stream, at, head: stream.subarray(0, at), phase: stream.subarray(at) };
}

function vmdescOf(stream: Uint8Array) {
  const p = findVmdescTrailer(stream, 0, stream.length);
  return parseVmdesc(stream.subarray(p + 5), p);
}

/** The device sections of a whole stream, in order, as `idstr#instance`, and its VMDESCRIPTION's devices likewise. */
async function orderOf(stream: Uint8Array) {
  const vmdesc = vmdescOf(stream);
  const rows = await listRecords(ChunkedSource.fromBytes(stream), vmdesc);
  const sections = rows.filter((r): r is SectionRow => r.type === 'full').map((r) => `${r.idstr}#${r.instanceId}`);
  return { sections, described: vmdesc.devices.map((d) => `${d.name}#${d.instance_id}`) };
}

function join(head: Uint8Array, phase: Uint8Array): Uint8Array {
  return Buffer.concat([head, phase]);
}

test('nothing asked: the device phase goes out byte for byte, in the order the rules want', async () => {
  for (const file of [Q35, Q35_7_2, TWO_SLIRPS]) {
    const { at, phase } = await split(file);
    const r = await rewriteDevicePhase(phase, at, { rules: '7.2' });
    assert.ok(Buffer.from(r.bytes).equals(phase), file);
    assert.equal(r.moved, 0);
    assert.deepEqual(r.sent, r.received);
    assert.deepEqual(r.receivedViolations, []);
    assert.ok(r.received.length > 20);
  }
});

test("--reorder 'iommu-intel<pcie-root-port' makes the 2018 misorder; --fix-order after it undoes it", async () => {
  const { stream, at, head, phase } = await split(Q35);
  const before = await orderOf(stream);
  const bad = await rewriteDevicePhase(phase, at, { rules: '10.0', reorder: [parseReorder('iommu-intel<pcie-root-port')] });
  const out = join(head, bad.bytes);
  const after = await orderOf(out);
  assert.equal(after.sections[0], 'iommu-intel#0');
  assert.deepEqual([...after.sections].sort(), [...before.sections].sort());
  assert.deepEqual(after.described, after.sections, 'the VMDESCRIPTION lists the devices in the order sent');
  assert.ok(bad.moved > 0);
  assert.deepEqual(bad.receivedViolations, []);
  assert.ok(bad.sentViolations.length >= 3, 'every root port is named');
  assert.ok(bad.sentViolations.every((v) => bad.sent[v.consumer].idstr === 'iommu-intel'));
  // Every body still decodes by the rewritten VMDESCRIPTION.
  let bodies = 0;
  await decodeStream(ChunkedSource.fromBytes(out), vmdescOf(out), { device: (_c, r, plan) => void (readValueTree(r, plan), bodies++) });
  assert.ok(bodies > 0);

  const fixed = await rewriteDevicePhase(phase, at, { rules: '10.0', reorder: [parseReorder('iommu-intel<pcie-root-port')], fixOrder: true });
  assert.deepEqual(fixed.sentViolations, []);
  assert.deepEqual((await orderOf(join(head, fixed.bytes))).sections, before.sections, 'stream order is kept wherever no rule moves a section');
});

test('--fix-order repairs a misordered stream as it arrives', async () => {
  const { head, at, phase } = await split(Q35_7_2);
  const bad = await rewriteDevicePhase(phase, at, { rules: '7.2', reorder: [parseReorder('iommu-intel<pcie-root-port')] });
  const fixed = await rewriteDevicePhase(bad.bytes, at, { rules: '7.2', fixOrder: true });
  assert.ok(fixed.receivedViolations.length > 0);
  assert.deepEqual(fixed.sentViolations, []);
  assert.ok(fixed.moved > 0);
  const order = (await orderOf(join(head, fixed.bytes))).sections;
  const lastRootPort = Math.max(...order.map((s, i) => (s.endsWith('/pcie-root-port#0') ? i : -1)));
  assert.ok(lastRootPort >= 0 && order.indexOf('iommu-intel#0') > lastRootPort);
});

test("--map 'slirp#1=slirp#0' renumbers the section header and its VMDESCRIPTION entry", async () => {
  const { stream, at, head, phase } = await split(TWO_SLIRPS);
  assert.deepEqual((await orderOf(stream)).sections.filter((s) => s.startsWith('slirp#')), ['slirp#0', 'slirp#1']);
  const r = await rewriteDevicePhase(phase, at, { rules: '10.0', map: [parseInstanceMapping('slirp#1=slirp#0')] });
  assert.equal(r.renumbered, 1);
  const after = await orderOf(join(head, r.bytes));
  assert.deepEqual(after.sections.filter((s) => s.startsWith('slirp#')), ['slirp#0', 'slirp#0']);
  assert.deepEqual(after.described.filter((s) => s.startsWith('slirp#')), ['slirp#0', 'slirp#0']);
});

test('--set edits a field on the way, and every request that cannot apply is a UsageError naming it', async () => {
  const { at, head, phase } = await split(Q35);
  const r = await rewriteDevicePhase(phase, at, { rules: '10.0', set: [parseEdit('timer:cpu_ticks_offset=0x1234')] });
  const out = join(head, r.bytes);
  let seen: bigint | number | undefined;
  await decodeStream(ChunkedSource.fromBytes(out), vmdescOf(out), {
    device(ctx, rd, plan) {
      const body = readValueTree(rd, plan);
      const value = body.fields.find((f) => f.name === 'cpu_ticks_offset')?.value;
      if (ctx.idstr === 'timer' && value?.kind === 'int') seen = value.value;
    },
  });
  assert.equal(seen, 0x1234n);
  await assert.rejects(rewriteDevicePhase(phase, at, { rules: '10.0', map: [parseInstanceMapping('slirp#3=slirp#0')] }), /--map slirp#3=slirp#0: the stream has no section "slirp" with instance 3/);
  await assert.rejects(rewriteDevicePhase(phase, at, { rules: '10.0', reorder: [parseReorder('nothing<pcie-root-port')] }), /--reorder nothing<pcie-root-port: no device section is "nothing"/);
  assert.throws(() => parseInstanceMapping('slirp#1=timer#0'), UsageError);
  assert.throws(() => parseReorder('a<b<c'), /expected IDSTR<IDSTR/);
  await assert.rejects(rewriteDevicePhase(phase.subarray(0, phase.length - 3), at, { rules: '10.0' }), /does not end with EOF and a VMDESCRIPTION/);
});
