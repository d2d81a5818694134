/**
 * Engine benchmarks (issue: "VMState engine and an ordered savevm registry"), one run, figures on stdout:
 *   1. plan() for 100,000 entries and 300,000 dependency edges (target: under 200 ms);
 *   2. save plus load of the device sections of 1,000 devices of 20 fields each (target: under 5 ms).
 * Each figure is the median of several runs after warm-up, as a long-running VMM would see it.
 */
import {
  array,
  bool,
  ByteReader,
  ChunkedSource,
  defineVmsd,
  loadSnapshot,
  loadState,
  MigPriority,
  planOrder,
  SaveRegistry,
  saveSnapshot,
  ByteWriter,
  saveState,
  u16,
  u32,
  u64,
  u8,
  type PlanEdge,
} from '../src/index.js';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function time(runs: number, warm: number, f: () => void): number {
  for (let i = 0; i < warm; i++) f();
  const t: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    f();
    t.push(performance.now() - t0);
  }
  return median(t);
}

async function timeAsync(runs: number, warm: number, f: () => Promise<void>): Promise<number> {
  for (let i = 0; i < warm; i++) await f();
  const t: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await f();
    t.push(performance.now() - t0);
  }
  return median(t);
}

// ---- 1. plan() ----
const N = 100_000;
const E = 300_000;
let seed = 12345;
const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
const prios = [MigPriority.DEFAULT, MigPriority.IOMMU, MigPriority.PCI_BUS];
const nodes = Array.from({ length: N }, (_, i) => ({ label: `dev${i}`, priority: prios[Math.floor(rand() * 3)] }));
const edges: PlanEdge[] = [];
while (edges.length < E) {
  const a = Math.floor(rand() * N);
  const b = Math.floor(rand() * N);
  // Consistent with priorities and acyclic: higher priority first, or lower index within one priority.
  if (nodes[a].priority > nodes[b].priority || (nodes[a].priority === nodes[b].priority && a < b)) edges.push({ supplier: a, consumer: b, reason: 'bench' });
}
const planMs = time(7, 2, () => planOrder(nodes, edges));

// The same through a registry, with dependencies named by idstr (resolution included).
const reg = new SaveRegistry();
const tiny = defineVmsd({ name: 'tiny', version: 1, fields: [u8('x')] });
for (const n of nodes) reg.register({ idstr: n.label, vmsd: tiny, state: { x: 0 }, priority: n.priority });
for (const e of edges) reg.addDependency({ idstr: nodes[e.supplier].label }, { idstr: nodes[e.consumer].label }, 'bench');
const regPlanMs = time(5, 1, () => reg.plan());

// ---- 2. 1,000 devices x 20 fields ----
const dev = defineVmsd({
  name: 'bench-dev',
  version: 1,
  fields: [
    u32('a0'), u32('a1'), u32('a2'), u32('a3'), u64('b0'), u64('b1'), u64('b2'), u16('c0'), u16('c1'), u8('d0'),
    u8('d1'), bool('e0'), bool('e1'), u32('a4'), u32('a5'), u64('b3'), u16('c2'), u8('d2'), array(u32('regs'), 8), array(u8('bytes'), 16),
  ],
});
const DEVICES = 1000;
const devReg = new SaveRegistry();
const states = Array.from({ length: DEVICES }, (_, i) => ({
  a0: i, a1: i + 1, a2: i + 2, a3: i + 3, b0: BigInt(i), b1: 7n, b2: 9n, c0: 1, c1: 2, d0: 3, d1: 4, e0: true, e1: false,
  a4: 5, a5: 6, b3: 11n, c2: 12, d2: 13, regs: [1, 2, 3, 4, 5, 6, 7, 8], bytes: new Array<number>(16).fill(i & 255),
}));
states.forEach((s, i) => devReg.register({ idstr: `0000:00:${(i % 32).toString(16).padStart(2, '0')}.${i % 8}/bench-dev-${i}`, vmsd: dev, state: s }));

// Raw interpreter: the device sections' bodies only.
const w = new ByteWriter(1 << 22);
const rawSave = time(21, 5, () => {
  w.reset();
  for (const s of states) saveState(w, dev, s);
});
w.reset();
for (const s of states) saveState(w, dev, s);
const body = w.peek().slice();
const rawLoad = time(21, 5, () => {
  const r = new ByteReader(body);
  for (const s of states) loadState(r, dev, s, 1);
});

// Whole snapshots (framing, plan, VMDESCRIPTION, lookup by idstr).
let snap = new Uint8Array();
const snapSave = time(11, 3, () => {
  const parts: Uint8Array[] = [];
  saveSnapshot(devReg, (c) => parts.push(c.slice()));
  snap = Buffer.concat(parts);
});
const snapSaveNoDesc = time(11, 3, () => saveSnapshot(devReg, () => undefined, { vmdesc: false }));
const snapLoad = await timeAsync(11, 3, async () => {
  await loadSnapshot(devReg, ChunkedSource.fromBytes(snap));
});

const ok = (v: number, limit: number) => (v < limit ? 'ok' : 'MISSED');
console.log('vmstate engine benchmark');
console.log(`  node ${process.version}`);
console.log('');
console.log(`plan, ${N.toLocaleString()} entries, ${E.toLocaleString()} edges`);
console.log(`  planOrder (pure)                       ${planMs.toFixed(1)} ms   target < 200 ms: ${ok(planMs, 200)}`);
console.log(`  SaveRegistry.plan (edges named by id)  ${regPlanMs.toFixed(1)} ms`);
console.log('');
console.log(`${DEVICES} devices x 20 fields (${body.length} bytes of device state)`);
console.log(`  saveState + loadState, bodies only     ${(rawSave + rawLoad).toFixed(2)} ms (save ${rawSave.toFixed(2)}, load ${rawLoad.toFixed(2)})   target < 5 ms: ${ok(rawSave + rawLoad, 5)}`);
console.log(`  saveSnapshot without VMDESCRIPTION     ${snapSaveNoDesc.toFixed(2)} ms`);
console.log(`  saveSnapshot with VMDESCRIPTION        ${snapSave.toFixed(2)} ms (${snap.length} bytes)`);
console.log(`  loadSnapshot                           ${snapLoad.toFixed(2)} ms`);
