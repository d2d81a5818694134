/**
 * Checks an order (a stream's sections, a plan) against dependency rules: every entry a rule's supplier
 * picks must stand before every entry its consumer picks. Each pair the other way round is a violation.
 */
import type { EntryInfo } from './dependencies.js';

/**
 * A rule: what `supplier` picks must come before what `consumer` picks. Each is asked about one entry,
 * with the whole checked sequence for rules that depend on what else is in it.
 */
export interface OrderRule {
  readonly name: string;
  readonly supplier: (e: EntryInfo, sequence: readonly EntryInfo[]) => boolean;
  readonly consumer: (e: EntryInfo, sequence: readonly EntryInfo[]) => boolean;
  readonly reason: string;
}

/** A supplier found after its consumer. Positions index the checked sequence. */
export interface OrderViolation {
  readonly rule: OrderRule;
  readonly supplier: number;
  readonly consumer: number;
}

/** Every violation of `rules` in `sequence`, by consumer position then supplier position. */
export function checkOrder(sequence: readonly EntryInfo[], rules: readonly OrderRule[]): OrderViolation[] {
  const out: OrderViolation[] = [];
  for (const rule of rules) {
    const consumers: number[] = [];
    sequence.forEach((e, i) => rule.consumer(e, sequence) && consumers.push(i));
    if (consumers.length === 0) continue;
    sequence.forEach((e, s) => {
      if (!rule.supplier(e, sequence)) return;
      for (const c of consumers) if (c < s && c !== s) out.push({ rule, supplier: s, consumer: c });
    });
  }
  return out.sort((a, b) => a.consumer - b.consumer || a.supplier - b.supplier);
}
