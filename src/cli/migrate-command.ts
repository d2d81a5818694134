/**
 * `vmstate migrate --from QMP --to URI [--tls-creds ID] [--tls-hostname NAME]`: drives a live migration
 * over QMP, as one would drive QEMU, and shows its progress until it ends. `--tls-creds` names the
 * source's tls-creds-x509 object (made with its `-object`), so the stream goes over TLS. Exits 0 only if
 * the migration completed.
 */
import { UsageError } from '../errors.js';
import { QmpClient } from '../qmp/index.js';
import { parseArgs, type Output } from './args.js';
import { ProgressPrinter, type MigrateInfo } from './progress.js';

/** Sizes like 100M or 1G, or a plain number of bytes per second. */
export function parseSize(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)([kmgt]?)(?:i?b)?$/i.exec(text.trim());
  if (!m) throw new UsageError(`${what} ${text}: expected bytes, e.g. 104857600 or 100M`);
  const scale = { '': 1, k: 1 << 10, m: 1 << 20, g: 1 << 30, t: 2 ** 40 }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Math.round(Number(m[1]) * scale);
}

/** Options of a migration run through QMP. */
export interface DriveOptions {
  readonly to: string;
  readonly maxBandwidth?: number;
  readonly downtimeLimitMs?: number;
  /** The source's tls-creds-x509 object: migrate over TLS. */
  readonly tlsCreds?: string;
  /** The name the destination's certificate must carry. Defaults to the URI's host. */
  readonly tlsHostname?: string;
  /** Turn the return-path capability on: completed only once the destination says it loaded everything. */
  readonly returnPath?: boolean;
  readonly progress?: ProgressPrinter;
  readonly pollMs?: number;
}

/** Sets parameters, starts `migrate`, and polls query-migrate until the migration ends. */
export async function driveMigration(client: QmpClient, o: DriveOptions): Promise<MigrateInfo> {
  const capabilities = [{ capability: 'events', state: true }];
  if (o.returnPath) capabilities.push({ capability: 'return-path', state: true });
  await client.execute('migrate-set-capabilities', { capabilities });
  const params: Record<string, number | string> = {};
  if (o.maxBandwidth !== undefined) params['max-bandwidth'] = o.maxBandwidth;
  if (o.downtimeLimitMs !== undefined) params['downtime-limit'] = o.downtimeLimitMs;
  if (o.tlsCreds !== undefined) params['tls-creds'] = o.tlsCreds;
  if (o.tlsHostname !== undefined) params['tls-hostname'] = o.tlsHostname;
  if (Object.keys(params).length) await client.execute('migrate-set-parameters', params);
  await client.execute('migrate', { uri: o.to });
  for (;;) {
    const info = await client.execute<MigrateInfo>('query-migrate');
    const ended = info.status === 'completed' || info.status === 'failed' || info.status === 'cancelled';
    o.progress?.update(info, ended);
    if (ended) return info;
    await new Promise((r) => setTimeout(r, o.pollMs ?? 100));
  }
}

export async function migrateCommand(argv: readonly string[], out: Output): Promise<number> {
  const args = parseArgs(argv, ['return-path'], ['from', 'to', 'max-bandwidth', 'downtime-limit', 'tls-creds', 'tls-hostname']);
  const from = args.options.get('from')?.at(-1);
  const to = args.options.get('to')?.at(-1);
  if (!from || !to || args.positional.length > 0) throw new UsageError('migrate takes --from QMP-ADDRESS --to URI (see vmstate help)');
  const bw = args.options.get('max-bandwidth')?.at(-1);
  const dl = args.options.get('downtime-limit')?.at(-1);
  if (dl !== undefined && !/^\d+$/.test(dl)) throw new UsageError(`--downtime-limit ${dl}: expected milliseconds`);
  const client = await QmpClient.connect(from);
  try {
    const info = await driveMigration(client, {
      to,
      maxBandwidth: bw === undefined ? undefined : parseSize(bw, '--max-bandwidth'),
      downtimeLimitMs: dl === undefined ? undefined : Number(dl),
      tlsCreds: args.options.get('tls-creds')?.at(-1),
      tlsHostname: args.options.get('tls-hostname')?.at(-1),
      returnPath: args.flags.has('return-path'),
      progress: new ProgressPrinter(out.stdout, process.stdout.isTTY === true),
    });
    if (info.status !== 'completed') {
      out.stderr(`vmstate: migration ${info.status}${(info as { 'error-desc'?: string })['error-desc'] ? `: ${(info as { 'error-desc'?: string })['error-desc']}` : ''}\n`);
      return 1;
    }
    return 0;
  } finally {
    await client.close();
  }
}
