/**
 * `vmstate order FILE`: checks a stream's section order against what QEMU's devices need, by the rules
 * of one QEMU release: `--qemu VERSION`'s, else those of the oldest QEMU the stream can be from (its
 * lower bound, as `vmstate identify` finds it, in the same read).
 */
import { identityWatcher, listSections, openStreamFile, type SectionRow, type StreamIdentity, type Vmdesc } from '../analyze/index.js';
import { UsageError } from '../errors.js';
import { checkOrder, QEMU_RELEASES, qemuOrderRules, qemuReleaseFor, type EntryInfo, type QemuRelease } from '../savevm/index.js';
import { parseArgs, type Output } from './args.js';
import { chooseVmdesc } from './vmdesc-option.js';

/** One FULL section as the order rules see it. */
interface Placed extends EntryInfo {
  readonly row: SectionRow;
}

/** The release whose rules are used, and why, as printed. */
export interface Choice {
  readonly release: QemuRelease;
  readonly why: string;
}

export async function orderCommand(argv: readonly string[], out: Output): Promise<number> {
  const args = parseArgs(argv, ['json'], ['vmdesc', 'qemu']);
  if (args.positional.length !== 1) throw new UsageError('order takes FILE (see vmstate help)');
  const asked = args.options.get('qemu')?.at(-1);
  const given = asked === undefined ? undefined : askedRelease(asked);
  const file = openStreamFile(args.positional[0]);
  let rows: SectionRow[];
  let vmsdOf: Map<string, string | undefined>;
  let choice: Choice;
  try {
    const vmdesc = chooseVmdesc(file, args, true) as Vmdesc;
    vmsdOf = new Map(vmdesc.devices.map((d) => [`${d.name}\u0000${d.instance_id}`, d.vmsd_name]));
    const watcher = given === undefined ? identityWatcher(vmdesc) : undefined;
    rows = await listSections(file.source(), vmdesc, [], watcher?.handler);
    choice = given ?? fromIdentity(watcher!.identity(null));
  } finally {
    file.close();
  }
  const qemu = qemuOrderRules(choice.release);
  const placed: Placed[] = rows
    .filter((r) => r.type === 'full')
    .map((row) => {
      const vmsdName = vmsdOf.get(`${row.idstr}\u0000${row.instanceId}`);
      return { row, idstr: row.idstr, instanceId: row.instanceId, vmsdName, priority: qemu.priorityOf(vmsdName), tags: {} };
    });
  const violations = checkOrder(placed, qemu.rules);
  const name = (i: number) => `${placed[i].row.idstr} (${placed[i].row.sectionId})`;
  if (args.flags.has('json')) {
    const report = violations.map((v) => ({
      rule: v.rule.name,
      reason: v.rule.reason,
      supplier: { section: name(v.supplier), vmsd: placed[v.supplier].vmsdName, position: v.supplier, offset: placed[v.supplier].row.offset },
      consumer: { section: name(v.consumer), vmsd: placed[v.consumer].vmsdName, position: v.consumer, offset: placed[v.consumer].row.offset },
    }));
    const qemuJson = { release: choice.release, why: choice.why };
    out.stdout(JSON.stringify({ qemu: qemuJson, sections: placed.length, rules: qemu.rules.length, violations: report }, null, 2) + '\n');
    return violations.length === 0 ? 0 : 1;
  }
  out.stdout(`rules of QEMU ${choice.release} (${choice.why})\n`);
  if (violations.length === 0) {
    out.stdout(`order ok: ${placed.length} device sections, ${qemu.rules.length} rules, no violation\n`);
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

/** `--qemu VERSION`: a known release, or an X.Y.Z of one. */
export function askedRelease(asked: string): Choice {
  const release = QEMU_RELEASES.find((r) => asked === r || asked.startsWith(`${r}.`));
  if (release === undefined || !/^\d+\.\d+(\.\d+)?$/.test(asked)) throw new UsageError(`--qemu ${asked}: expected one of ${QEMU_RELEASES.join(', ')}`);
  return { release, why: `--qemu ${asked}` };
}

/** The rules of the oldest QEMU the stream can be from, with the marker that tells so. */
function fromIdentity(id: StreamIdentity): Choice {
  const oldest = QEMU_RELEASES[0];
  if (id.atLeast === null) return { release: oldest, why: `no marker of a version in the stream; ${oldest} is the oldest release whose rules are known` };
  const marker = id.markers.find((m) => m.bound === '>=' && m.version === id.atLeast)?.marker;
  const release = qemuReleaseFor(id.atLeast);
  const known = id.atLeast.split('.').slice(0, 2).join('.') === release;
  const nearest = known ? '' : `; ${release} is the ${release === oldest ? 'oldest' : 'newest'} release whose rules are known`;
  return { release, why: `the stream is from QEMU >= ${id.atLeast}: ${marker}${nearest}` };
}
