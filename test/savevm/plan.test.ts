// Ordering rules: QEMU's priorities, registration tie-break, dependencies, cycles and contradictions,
// each with its exact message; and a seeded property over random graphs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defineVmsd, MigPriority, PlanError, planOrder, SaveRegistry, u8, type EntryInfo } from '../../src/index.js';
import { seededRandom } from '../support/random.js';

const dev = (name: string, priority: number = MigPriority.DEFAULT) => defineVmsd({ name, version: 1, priority, fields: [u8('x')] });

function registry(...specs: [string, number][]): SaveRegistry {
  const r = new SaveRegistry();
  for (const [idstr, p] of specs) r.register({ idstr, vmsd: dev(idstr, p), state: { x: 0 } });
  return r;
}

const labels = (r: SaveRegistry, edgesWin = false) => r.plan({ edgesWin }).entries.map((e) => e.label);

test('QEMU 7.2 priorities: GICv3 > ITS > virtio-mem > PCI bus > IOMMU > default, higher saved first', () => {
  const r = registry(
    ['timer', MigPriority.DEFAULT],
    ['iommu-intel', MigPriority.IOMMU],
    ['rp1', MigPriority.PCI_BUS],
    ['vmem', MigPriority.VIRTIO_MEM],
    ['its', MigPriority.GICV3_ITS],
    ['gic', MigPriority.GICV3],
    ['rp2', MigPriority.PCI_BUS],
  );
  assert.deepEqual(labels(r), ['gic#0', 'its#0', 'vmem#0', 'rp1#0', 'rp2#0', 'iommu-intel#0', 'timer#0']);
});

test('ties break by registration order, never by name', () => {
  const r = registry(['zeta', 0], ['alpha', 0], ['mid', 0]);
  assert.deepEqual(labels(r), ['zeta#0', 'alpha#0', 'mid#0']);
});

test('a dependency reorders entries of one priority, and explain() says why', () => {
  const r = registry(['consumer', 0], ['other', 0], ['supplier', 0]);
  r.addDependency({ idstr: 'supplier' }, { idstr: 'consumer' }, 'consumer reads supplier in post-load');
  const plan = r.plan();
  assert.deepEqual(
    plan.entries.map((e) => e.label),
    ['other#0', 'supplier#0', 'consumer#0'],
  );
  assert.deepEqual(plan.explain(2), ['priority DEFAULT (0): default priority', 'after supplier#0: consumer reads supplier in post-load']);
  assert.deepEqual(plan.explain(0), ['priority DEFAULT (0): default priority']);
});

test('a cycle is an error that lists it', () => {
  const r = registry(['a', 0], ['b', 0], ['c', 0], ['d', 0]);
  r.addDependency({ idstr: 'a' }, { idstr: 'b' }, 'x');
  r.addDependency({ idstr: 'b' }, { idstr: 'c' }, 'x');
  r.addDependency({ idstr: 'c' }, { idstr: 'a' }, 'x');
  r.addDependency({ idstr: 'd' }, { idstr: 'a' }, 'x');
  assert.throws(
    () => r.plan(),
    (e: unknown) => e instanceof PlanError && e.message === 'dependency cycle: a#0 -> b#0 -> c#0 -> a#0',
  );
});

test('an edge against the priorities is an error naming both entries and priorities, unless edges win', () => {
  const r = registry(['iommu-intel', MigPriority.IOMMU], ['rp', MigPriority.PCI_BUS], ['nic', 0]);
  r.addDependency({ idstr: 'nic' }, { idstr: 'iommu-intel' }, 'the IOMMU reads the NIC (contrived)');
  assert.throws(
    () => r.plan(),
    (e: unknown) =>
      e instanceof PlanError &&
      e.message ===
        'nic#0 (priority DEFAULT) must be saved before iommu-intel#0 (priority IOMMU), but the priorities save iommu-intel#0 first: the IOMMU reads the NIC (contrived)',
  );
  const plan = r.plan({ edgesWin: true });
  assert.deepEqual(
    plan.entries.map((e) => e.label),
    ['rp#0', 'nic#0', 'iommu-intel#0'],
  );
  assert.deepEqual(
    plan.overrides.map((o) => `${o.supplier.label} before ${o.consumer.label}`),
    ['nic#0 before iommu-intel#0'],
  );
  assert.match(plan.explain(2)[1], /^after nic#0: .*\(this edge overrides the priorities\)$/);
});

test('selectors: every bridge whose bus range overlaps an IOMMU scope comes before that IOMMU', () => {
  const r = new SaveRegistry();
  const bridge = (idstr: string, lo: number, hi: number) =>
    r.register({ idstr, vmsd: dev('bridge'), state: { x: 0 }, priority: MigPriority.DEFAULT, tags: { kind: 'bridge', buses: [lo, hi] } });
  const iommu = (idstr: string, lo: number, hi: number) => r.register({ idstr, vmsd: dev('iommu'), state: { x: 0 }, tags: { kind: 'iommu', buses: [lo, hi] } });
  const a = iommu('dmar0', 0, 63);
  const b = iommu('dmar1', 64, 255);
  bridge('rp-high', 80, 90);
  bridge('rp-low', 1, 3);
  const overlaps = (x: readonly unknown[], y: readonly unknown[]) => (x[0] as number) <= (y[1] as number) && (y[0] as number) <= (x[1] as number);
  for (const unit of [a, b]) {
    r.addDependency(
      (e: EntryInfo) => e.tags.kind === 'bridge' && overlaps(e.tags.buses as number[], unit.tags.buses as number[]),
      { idstr: unit.idstr },
      'bus numbers before the IOMMU that translates for those buses',
    );
  }
  // Among the entries ready at each step, the earliest registered goes first.
  assert.deepEqual(labels(r), ['rp-high#0', 'dmar1#0', 'rp-low#0', 'dmar0#0']);
});

test('instance ids and section ids are assigned as QEMU assigns them', () => {
  const r = new SaveRegistry(4);
  const d = dev('dma');
  const e0 = r.register({ idstr: 'dma', vmsd: d, state: { x: 0 } });
  const f = r.register({ idstr: 'fw_cfg', vmsd: dev('fw_cfg'), state: { x: 0 } });
  const e5 = r.register({ idstr: 'dma', instanceId: 5, vmsd: d, state: { x: 0 } });
  const e6 = r.register({ idstr: 'dma', vmsd: d, state: { x: 0 } });
  assert.deepEqual([e0.instanceId, e5.instanceId, e6.instanceId], [0, 5, 6]);
  assert.deepEqual([e0.sectionId, f.sectionId, e5.sectionId, e6.sectionId], [4, 5, 6, 7]);
  assert.throws(() => r.register({ idstr: 'dma', instanceId: 5, vmsd: d, state: { x: 0 } }), /dma#5 is already registered/);
});

test('property: on random consistent graphs the plan honours every edge and never inverts priorities', () => {
  const random = seededRandom(42);
  for (let round = 0; round < 50; round++) {
    const n = 2 + Math.floor(random() * 60);
    const nodes = Array.from({ length: n }, (_, i) => ({ label: `n${i}`, priority: Math.floor(random() * 4) }));
    const edges = [];
    for (let k = 0; k < n * 2; k++) {
      const a = Math.floor(random() * n);
      const b = Math.floor(random() * n);
      // Consistent and acyclic: from higher priority, or from an earlier index within one priority.
      if (nodes[a].priority > nodes[b].priority || (nodes[a].priority === nodes[b].priority && a < b)) edges.push({ supplier: a, consumer: b, reason: 'r' });
    }
    const { order } = planOrder(nodes, edges);
    const pos = new Int32Array(n);
    order.forEach((x, i) => (pos[x] = i));
    assert.equal(new Set(order).size, n);
    for (const e of edges) assert.ok(pos[e.supplier] < pos[e.consumer], `round ${round}: edge ${e.supplier}->${e.consumer}`);
    for (let i = 1; i < n; i++) assert.ok(nodes[order[i - 1]].priority >= nodes[order[i]].priority, `round ${round}: priority inverted`);
  }
});
