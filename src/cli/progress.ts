/** Migration progress for people: a bar redrawn in place on a terminal, plain lines otherwise. */

/** query-migrate's reply, the parts progress shows. */
export interface MigrateInfo {
  readonly status?: string;
  readonly 'total-time'?: number;
  readonly 'expected-downtime'?: number;
  readonly downtime?: number;
  readonly ram?: {
    readonly transferred?: number;
    readonly remaining?: number;
    readonly total?: number;
    readonly 'dirty-sync-count'?: number;
    readonly mbps?: number;
    readonly 'dirty-pages-rate'?: number;
  };
}

const MiB = 1 << 20;

/** One progress line: bar, bytes sent, passes, throughput, expected downtime. */
function formatProgress(info: MigrateInfo, width = 24): string {
  const ram = info.ram ?? {};
  const total = ram.total ?? 0;
  const remaining = ram.remaining ?? 0;
  const frac = total > 0 ? Math.min(1, Math.max(0, 1 - remaining / total)) : info.status === 'completed' ? 1 : 0;
  const filled = Math.round(frac * width);
  const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
  const parts = [
    `${bar} ${String(Math.round(frac * 100)).padStart(3)}%`,
    `${info.status ?? '?'}`,
    `sent ${((ram.transferred ?? 0) / MiB).toFixed(1)} MiB`,
    `pass ${(ram['dirty-sync-count'] ?? 0) + 1}`,
    `${(ram.mbps ?? 0).toFixed(0)} Mbit/s`,
    `dirty ${ram['dirty-pages-rate'] ?? 0} pages/s`,
  ];
  if (info['expected-downtime'] !== undefined) parts.push(`expected downtime ${info['expected-downtime']} ms`);
  if (info.downtime !== undefined) parts.push(`downtime ${info.downtime} ms`);
  return parts.join('  ');
}

/** Writes progress: redrawn in place on a terminal, a line at most every `intervalMs` otherwise. */
export class ProgressPrinter {
  private last = 0;

  constructor(
    private readonly write: (s: string) => void,
    private readonly tty: boolean,
    private readonly intervalMs = 1000,
  ) {}

  update(info: MigrateInfo, final = false): void {
    const now = Date.now();
    if (this.tty) {
      this.write(`\r\x1b[K${formatProgress(info)}${final ? '\n' : ''}`);
    } else if (final || now - this.last >= this.intervalMs) {
      this.write(`${formatProgress(info)}\n`);
      this.last = now;
    }
  }
}
