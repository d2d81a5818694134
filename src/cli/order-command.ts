/** `vmstate order FILE`: checks a stream's section order against what QEMU's devices need. */
import { listSections, openStreamFile, type SectionRow, type Vmdesc } from '../analyze/index.js';
import { UsageError } from '../errors.js';
import { checkOrder, QEMU_ORDER_RULES, QEMU_PRIORITY_BY_VMSD, type EntryInfo } from '../savevm/index.js';
import { MigPriority } from '../vmstate/index.js';
import { parseArgs, type Output } from './args.js';
import { chooseVmdesc } from './vmdesc-option.js';

/** One FULL section as the order rules see it. */
interface Placed extends EntryInfo {
  readonly row: SectionRow;
}

export async function orderCommand(argv: readonly string[], out: Output): Promise<number> {
  const args = parseArgs(argv, ['json'], ['vmdesc']);
  if (args.positional.length !== 1) throw new UsageError('order takes FILE (see vmstate help)');
  const file = openStreamFile(args.positional[0]);
  let placed: Placed[];
  try {
    const vmdesc = chooseVmdesc(file, args, true) as Vmdesc;
    const vmsdOf = new Map(vmdesc.devices.map((d) => [`${d.name}\u0000${d.instance_id}`, d.vmsd_name]));
    const rows = await listSections(file.source(), vmdesc);
    placed = rows
      .filter((r) => r.type === 'full')
      .map((row) => {
        const vmsdName = vmsdOf.get(`${row.idstr}\u0000${row.instanceId}`);
        return { row, idstr: row.idstr, instanceId: row.instanceId, vmsdName, priority: QEMU_PRIORITY_BY_VMSD.get(vmsdName ?? '') ?? MigPriority.DEFAULT, tags: {} };
      });
  } finally {
    file.close();
  }
  const violations = checkOrder(placed, QEMU_ORDER_RULES);
  const name = (i: number) => `${placed[i].row.idstr} (${placed[i].row.sectionId})`;
  if (args.flags.has('json')) {
    const report = violations.map((v) => ({
      rule: v.rule.name,
      reason: v.rule.reason,
      supplier: { section: name(v.supplier), vmsd: placed[v.supplier].vmsdName, position: v.supplier, offset: placed[v.supplier].row.offset },
      consumer: { section: name(v.consumer), vmsd: placed[v.consumer].vmsdName, position: v.consumer, offset: placed[v.consumer].row.offset },
    }));
    out.stdout(JSON.stringify({ sections: placed.length, rules: QEMU_ORDER_RULES.length, violations: report }, null, 2) + '\n');
  } else if (violations.length === 0) {
    out.stdout(`order ok: ${placed.length} device sections, ${QEMU_ORDER_RULES.length} rules, no violation\n`);
  } else {
    for (const v of violations) {
      out.stdout(
        `${v.rule.name}: ${name(v.supplier)} [${placed[v.supplier].vmsdName}] at position ${v.supplier} ` +
          `should load before ${name(v.consumer)} [${placed[v.consumer].vmsdName}] at position ${v.consumer}: ${v.rule.reason}\n`,
      );
    }
    out.stdout(`${violations.length} violation(s) in ${placed.length} device sections\n`);
  }
  return violations.length === 0 ? 0 : 1;
}
