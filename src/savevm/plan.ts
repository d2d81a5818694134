/**
 * The save order as a pure function. QEMU keeps one list sorted by MigrationPriority (higher first) and,
 * within a priority, by registration; vmstate keeps that order and adds explicit supplier -> consumer
 * edges: Kahn's algorithm whose ready set is a heap ordered by (priority desc, registration asc). When
 * every edge agrees with the priorities, the result is exactly QEMU's order with the edges honoured
 * inside each priority. An edge that contradicts the priorities is an error, unless the caller lets edges
 * win (then the plan reports each such edge). A cycle is an error that lists it.
 */
import { PlanError } from '../errors.js';
import { PRIORITY_REASONS, priorityName } from '../vmstate/index.js';

/** One thing to order. */
export interface PlanNode {
  /** How messages name it, e.g. `0000:00:03.0/pcie-root-port#0`. */
  readonly label: string;
  readonly priority: number;
}

/** `supplier` must be saved (and so loaded) before `consumer`. Indices into the node list. */
export interface PlanEdge {
  readonly supplier: number;
  readonly consumer: number;
  readonly reason: string;
}

export interface PlanOptions {
  /** Let an edge move a supplier ahead of higher-priority entries instead of failing. Defaults to false. */
  readonly edgesWin?: boolean;
}

/** The result: node indices in save order, and why each stands where it does. */
export interface PlanResult {
  /** Node indices in save order. */
  readonly order: Int32Array;
  /** Edges that contradicted the priorities and won (only with edgesWin). */
  readonly overrides: readonly PlanEdge[];
  /** Why node `index` stands where it stands: its priority, then every edge that puts it after another. */
  explain(index: number): string[];
}

/** Orders `nodes` (in registration order) under their priorities and `edges`. */
export function planOrder(nodes: readonly PlanNode[], edges: readonly PlanEdge[], options: PlanOptions = {}): PlanResult {
  const n = nodes.length;
  const prio = new Int32Array(n);
  for (let i = 0; i < n; i++) prio[i] = nodes[i].priority;

  const overrides: PlanEdge[] = [];
  const indeg = new Int32Array(n);
  const outCount = new Int32Array(n + 1);
  for (const e of edges) {
    if (!(e.supplier >= 0 && e.supplier < n && e.consumer >= 0 && e.consumer < n)) {
      throw new PlanError(`edge ${e.supplier} -> ${e.consumer} names an entry that does not exist`, { edge: e });
    }
    if (e.supplier === e.consumer) {
      throw new PlanError(`dependency cycle: ${nodes[e.supplier].label} -> ${nodes[e.supplier].label}`, { cycle: [nodes[e.supplier].label] });
    }
    if (prio[e.supplier] < prio[e.consumer]) {
      if (!options.edgesWin) throw contradiction(nodes, e);
      overrides.push(e);
    }
    indeg[e.consumer]++;
    outCount[e.supplier + 1]++;
  }
  // Edges as compressed rows: the consumers of supplier s are adj[start[s] .. start[s+1]).
  const start = outCount;
  for (let i = 0; i < n; i++) start[i + 1] += start[i];
  const fill = start.slice(0, n);
  const adj = new Int32Array(edges.length);
  for (const e of edges) adj[fill[e.supplier]++] = e.consumer;

  // Ready heap: higher priority first, then earlier registration.
  const heap = new Int32Array(n);
  let size = 0;
  const before = (a: number, b: number) => prio[a] > prio[b] || (prio[a] === prio[b] && a < b);
  const push = (x: number) => {
    let i = size++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(x, heap[p])) break;
      heap[i] = heap[p];
      i = p;
    }
    heap[i] = x;
  };
  const pop = () => {
    const top = heap[0];
    const x = heap[--size];
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= size) break;
      const r = l + 1;
      const c = r < size && before(heap[r], heap[l]) ? r : l;
      if (!before(heap[c], x)) break;
      heap[i] = heap[c];
      i = c;
    }
    heap[i] = x;
    return top;
  };

  for (let i = 0; i < n; i++) if (indeg[i] === 0) push(i);
  const order = new Int32Array(n);
  let done = 0;
  while (size > 0) {
    const x = pop();
    order[done++] = x;
    for (let k = start[x]; k < start[x + 1]; k++) {
      const c = adj[k];
      if (--indeg[c] === 0) push(c);
    }
  }
  if (done < n) throw cycleError(nodes, indeg, edges);

  return {
    order,
    overrides,
    explain(index) {
      const p = nodes[index].priority;
      const out = [`priority ${priorityName(p)} (${p}): ${PRIORITY_REASONS[p] ?? 'custom priority'}`];
      for (const e of edges) {
        if (e.consumer !== index) continue;
        const won = overrides.includes(e) ? ' (this edge overrides the priorities)' : '';
        out.push(`after ${nodes[e.supplier].label}: ${e.reason}${won}`);
      }
      return out;
    },
  };
}

function contradiction(nodes: readonly PlanNode[], e: PlanEdge): PlanError {
  const s = nodes[e.supplier];
  const c = nodes[e.consumer];
  return new PlanError(
    `${s.label} (priority ${priorityName(s.priority)}) must be saved before ${c.label} (priority ${priorityName(c.priority)}), ` +
      `but the priorities save ${c.label} first: ${e.reason}`,
    { supplier: s.label, consumer: c.label, supplierPriority: s.priority, consumerPriority: c.priority, reason: e.reason },
  );
}

/** Finds one cycle among the nodes Kahn's algorithm could not place (indeg > 0) and names it. */
function cycleError(nodes: readonly PlanNode[], indeg: Int32Array, edges: readonly PlanEdge[]): PlanError {
  // Every stuck node waits for at least one stuck supplier, so walking back along stuck suppliers must
  // come round to a node already on the path.
  const supplierOf = new Map<number, number>();
  for (const e of edges) if (indeg[e.consumer] > 0 && indeg[e.supplier] > 0 && !supplierOf.has(e.consumer)) supplierOf.set(e.consumer, e.supplier);
  let x = -1;
  for (let i = 0; i < nodes.length && x < 0; i++) if (indeg[i] > 0) x = i;
  const seenAt = new Map<number, number>();
  const path: number[] = [];
  while (x >= 0 && !seenAt.has(x)) {
    seenAt.set(x, path.length);
    path.push(x);
    x = supplierOf.get(x) ?? -1;
  }
  // The path runs against the edges; reverse it so the message reads supplier -> consumer.
  const ring = path.slice(seenAt.get(x) ?? 0).reverse();
  // Start at the earliest registered entry, so the same graph always gives the same message.
  const first = ring.indexOf(Math.min(...ring));
  const cycle = [...ring.slice(first), ...ring.slice(0, first)].map((i) => nodes[i].label);
  cycle.push(cycle[0]);
  return new PlanError(`dependency cycle: ${cycle.join(' -> ')}`, { cycle });
}
