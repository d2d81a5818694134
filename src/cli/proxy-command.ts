/**
 * `vmstate proxy --listen ADDR --to ADDR [--capture FILE] [--check] [--fix-order] [--reorder A<B]
 * [--map IDSTR#N=IDSTR#M] [--set EDIT] [--qemu VERSION]`: stands between a source QEMU and its
 * destination (see src/migration/proxy.ts). Exit 0 once a whole stream went by (and, with --check, its
 * device sections went on in an order the rules accept), else 1 with one line saying why.
 */
import { asksForChanges, parseEdit, parseInstanceMapping, parseReorder, type DevicePhaseEdits, type DevicePhaseResult, type PhaseSection } from '../analyze/index.js';
import { runProxy, type ProxyWatch } from '../migration/index.js';
import { UsageError } from '../errors.js';
import type { OrderViolation } from '../savevm/index.js';
import { parseSocketAddress } from '../stream/index.js';
import { parseArgs, type Output } from './args.js';
import { askedRelease } from './order-command.js';

const MiB = 1 << 20;

export async function proxyCommand(argv: readonly string[], out: Output): Promise<number> {
  const args = parseArgs(argv, ['check', 'fix-order'], ['listen', 'to', 'capture', 'reorder', 'map', 'set', 'qemu']);
  const listen = args.options.get('listen')?.at(-1);
  const to = args.options.get('to')?.at(-1);
  if (listen === undefined || to === undefined || args.positional.length > 0) throw new UsageError('proxy takes --listen ADDR --to ADDR (see vmstate help)');
  const asked = args.options.get('qemu')?.at(-1);
  const release = asked === undefined ? '7.2' : askedRelease(asked).release;
  const edits: DevicePhaseEdits = {
    rules: release,
    set: (args.options.get('set') ?? []).map(parseEdit),
    map: (args.options.get('map') ?? []).map(parseInstanceMapping),
    reorder: (args.options.get('reorder') ?? []).map(parseReorder),
    fixOrder: args.flags.has('fix-order'),
  };
  const check = args.flags.has('check');
  const changing = asksForChanges(edits);
  let misordered = false;
  const tty = process.stderr.isTTY === true;
  // On a terminal the live summary holds the last line: what follows it starts a line of its own.
  const say = (text: string) => out.stderr(check && tty ? `\n${text}` : text);
  const watch: ProxyWatch | undefined =
    check || changing
      ? {
          edits,
          onProgress: check ? progressLine(out, tty) : undefined,
          onDevicePhase: (r) => {
            misordered = r.sentViolations.length > 0;
            say(devicePhaseReport(r, release, check, changing));
          },
          onUnwatched: (e) => say(`vmstate proxy: cannot decode the stream (${e.message}); relaying the rest unwatched\n`),
        }
      : undefined;
  const result = await runProxy({
    listen: parseSocketAddress(listen, '--listen'),
    to: parseSocketAddress(to, '--to'),
    capture: args.options.get('capture')?.at(-1),
    watch,
    onListening: (address) => out.stderr(`vmstate proxy: listening on ${address}, relaying to ${to}\n`),
  });
  const changed = result.sent === result.bytes ? '' : ` (${result.sent} went on)`;
  const w = check ? result.watched : undefined;
  const counted = w ? `; ${w.passes} pass(es) over RAM, ${w.pages} pages, ${w.resentPages} sent again` : '';
  (watch ? say : out.stderr)(`vmstate proxy: relayed ${result.bytes} bytes of the stream${changed}, ${result.returned} back${counted}\n`);
  return check && misordered ? 1 : 0;
}

/** The live summary: redrawn in place on a terminal, a line at most every second otherwise. */
function progressLine(out: Output, tty: boolean): NonNullable<ProxyWatch['onProgress']> {
  let last = 0;
  return (s, bytes) => {
    const now = Date.now();
    const line = `pass ${s.passes}  ${(bytes / MiB).toFixed(1)} MiB  ${s.pages} pages (${s.resentPages} sent again)  ${s.sections} sections`;
    if (tty) out.stderr(`\r\x1b[K${line}`);
    else if (now - last >= 1000) {
      out.stderr(`${line}\n`);
      last = now;
    }
  };
}

/** What the device phase held, what went on, and what the rules say of each. */
function devicePhaseReport(r: DevicePhaseResult, release: string, check: boolean, changing: boolean): string {
  const lines: string[] = [];
  const rules = `QEMU ${release}'s order rules`;
  const verdict = (v: readonly OrderViolation[]) => (v.length === 0 ? 'in order' : `${v.length} violation(s)`);
  if (check) {
    lines.push(`device phase: ${r.received.length} sections, ${verdict(r.receivedViolations)} by ${rules}`);
    lines.push(...r.receivedViolations.map((v) => `  ${violation(v, r.received)}`));
  }
  if (changing) {
    const what = [`${r.moved} section(s) moved`, `${r.renumbered} renumbered`, `${r.edited} field edit(s)`].join(', ');
    lines.push(`sent on: ${what}; ${verdict(r.sentViolations)} by ${rules}`);
    if (check) lines.push(...r.sentViolations.map((v) => `  ${violation(v, r.sent)}`));
  }
  return lines.map((l) => `vmstate proxy: ${l}\n`).join('');
}

function violation(v: OrderViolation, order: readonly PhaseSection[]): string {
  const name = (i: number) => `${order[i].idstr} (${order[i].sectionId}) [${order[i].vmsdName ?? '?'}]`;
  return `${v.rule.name}: ${name(v.supplier)} at position ${v.supplier} should load before ${name(v.consumer)} at position ${v.consumer}: ${v.rule.reason}`;
}
