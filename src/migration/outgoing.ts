/**
 * Live precopy migration, the source side (QEMU's migration_thread in migration/migration.c):
 *
 *   1. setup:  connect to the URI (a failure is "Failed to connect: ...") and, with TLS credentials,
 *              handshake (the destination's certificate must name tls-hostname, else the URI's host;
 *              without either, "No hostname available for TLS"), then send the header, the
 *              configuration and a START section per iterative handler (RAM's block list);
 *   2. active: PART sections while the guest runs; when a pass over the pages to send ends, sync the
 *              dirty bitmap (MIGRATION_PASS) and switch over if what remains can go within the downtime
 *              limit at the bandwidth (max-bandwidth, or the rate measured so far);
 *   3. device: stop the guest, send SWITCHOVER_START (QEMU 10.0's streams), the END sections (the last
 *              dirty pages), the devices in plan order, EOF and the VMDESCRIPTION;
 *   4. completed, and the source stays stopped (QEMU's "postmigrate").
 * A failure or a cancel anywhere, connecting included, resumes the guest if this migration stopped it:
 * the source keeps running with its state intact. The stream is throttled to max-bandwidth. Every status
 * change, from setup on, goes to the state machine's listeners (the QMP MIGRATION event).
 */
import { StreamSaver, type QemuDialect, type SaveRegistry } from '../savevm/index.js';
import { RamHandler } from '../ram/index.js';
import { ByteWriter, parseMigrationUri, type MigrationUri } from '../stream/index.js';
import { MigrationError } from './migration-error.js';
import { isFinal, MigrationStateMachine, type MigrationStatus } from './status.js';
import type { TlsCredsX509 } from './tls-credentials.js';
import { connectOutgoing, type ByteTransport } from './transport.js';
import { warmUp } from './warm-up.js';

/** What the migration needs of the VM it moves. */
export interface MigratableVm {
  readonly registry: SaveRegistry;
  readonly machineType: string;
  /** The QEMU release whose stream goes out. Defaults to 7.2's. */
  readonly dialect?: QemuDialect;
  readonly running: boolean;
  /** Stops the guest (QMP STOP). */
  pause(): void;
  /** Resumes the guest (QMP RESUME). */
  resume(): void;
}

/** migrate-set-parameters values. */
export interface MigrationParameters {
  /** Bytes per second; 0 means unlimited. QEMU's default is 32 MiB/s. */
  maxBandwidth: number;
  /** The longest the guest may stay stopped, in ms. QEMU's default is 300. */
  downtimeLimitMs: number;
}

/** TLS for an outgoing migration (QEMU's tls-creds and tls-hostname). */
export interface OutgoingTls {
  /** Credentials with endpoint client. */
  readonly creds: TlsCredsX509;
  /** The name the destination's certificate must carry. Defaults to the host of a tcp: URI. */
  readonly hostname?: string;
}

export const DEFAULT_PARAMETERS: Readonly<MigrationParameters> = { maxBandwidth: 32 << 20, downtimeLimitMs: 300 };

/** The longest the migration keeps the event loop before letting the guest's timers run. */
const GUEST_SLICE_MS = 5;

export class OutgoingMigration {
  readonly state = new MigrationStateMachine();
  private readonly w = new ByteWriter(2 << 20);
  private readonly uri: MigrationUri;
  /** Null while connecting (and after a failed connect). */
  private transport: ByteTransport | null = null;
  private cancelRequested = false;
  /** Whether the stream has begun: query-migrate has only the status before. */
  private started = false;
  private startedAt = 0;
  private setupTime = 0;
  private stoppedAt = 0;
  private endedAt = 0;
  private transferred = 0;
  private passes = 0;
  private expectedDowntime = 0;
  private measuredRate = 0;
  private pausedByUs = false;
  private lastYield = 0;
  /** Ends the current bandwidth wait early (a cancel must not wait for it). */
  private wake: (() => void) | null = null;
  private failure: MigrationError | undefined;
  private readonly ram: RamHandler | undefined;

  /** A migration of `vm` to `uri` (tcp:, unix:, exec:, file:), over TLS with `tls`; throws UsageError for a bad URI. */
  constructor(
    private readonly vm: MigratableVm,
    uri: string,
    private readonly params: MigrationParameters,
    private readonly onPass: (pass: number) => void = () => undefined,
    private readonly tls?: OutgoingTls,
  ) {
    this.uri = parseMigrationUri(uri);
    this.ram = vm.registry.entries.map((e) => e.handler).find((h): h is RamHandler => h instanceof RamHandler);
  }

  get status(): MigrationStatus {
    return this.state.status;
  }

  /** Why the migration failed, once it has. */
  get error(): MigrationError | undefined {
    return this.failure;
  }

  /** Asks the migration to stop; it ends in cancelled (or failed) and the guest runs on. */
  cancel(): void {
    this.cancelRequested = true;
    this.wake?.();
    if (this.state.transition('none', 'cancelling') || this.state.transition('setup', 'cancelling')) return;
    if (this.state.transition('active', 'cancelling') || this.state.transition('device', 'cancelling')) this.transport?.destroy();
  }

  /**
   * Connects and runs the migration to its end; resolves with the final status (never rejects). The
   * status is setup when this returns its promise.
   */
  async run(): Promise<MigrationStatus> {
    let thrown: unknown = null;
    if (this.state.transition('none', 'setup')) {
      try {
        this.transport = await this.connect();
        if (!this.cancelRequested && (await this.precopy(this.transport))) return 'completed';
      } catch (e) {
        thrown = e;
      }
    }
    this.endedAt = performance.now();
    this.transport?.destroy();
    if (this.pausedByUs) this.vm.resume();
    this.pausedByUs = false;
    const from = this.state.status;
    if (from === 'cancelling' || thrown === null) {
      this.state.transition('cancelling', 'cancelled');
    } else if (from === 'setup' || from === 'active' || from === 'device') {
      this.failure = thrown instanceof MigrationError ? thrown : new MigrationError(from, thrown);
      this.state.transition(from, 'failed');
    }
    return this.state.status;
  }

  /** Opens the connection; a failure is QEMU's "Failed to connect". */
  private async connect(): Promise<ByteTransport> {
    let hostname: string | undefined;
    if (this.tls) {
      hostname = this.tls.hostname || (this.uri.kind === 'tcp' ? this.uri.host : undefined);
      if (!hostname) throw new MigrationError('setup', 'No hostname available for TLS');
    }
    try {
      return await connectOutgoing(this.uri, this.tls && hostname ? { creds: this.tls.creds, hostname } : undefined);
    } catch (e) {
      throw new MigrationError('setup', e, 'Failed to connect: ');
    }
  }

  /** Setup, the passes, the switch-over: true once completed, false as soon as a cancel stops it. */
  private async precopy(transport: ByteTransport): Promise<boolean> {
    this.started = true;
    this.startedAt = performance.now();
    const saver = new StreamSaver(this.w, this.vm.registry, { machineName: this.vm.machineType, dialect: this.vm.dialect });
    saver.setup();
    await this.flush(transport);
    this.setupTime = performance.now() - this.startedAt;
    if (!this.state.transition('setup', 'active')) return false;
    const passStart = { t: performance.now(), bytes: this.transferred };
    for (;;) {
      if (this.cancelRequested) return false;
      const done = saver.iterate();
      await this.flush(transport);
      if (!done) continue;
      // A pass ended: take the guest's new dirty pages and decide whether to switch over.
      const elapsed = (performance.now() - passStart.t) / 1000;
      if (elapsed > 0) this.measuredRate = (this.transferred - passStart.bytes) / elapsed;
      passStart.t = performance.now();
      passStart.bytes = this.transferred;
      this.ram?.syncDirty();
      this.passes++;
      this.onPass(this.passes);
      const remaining = this.ram?.remainingBytes ?? 0;
      const rate = this.params.maxBandwidth > 0 ? Math.min(this.params.maxBandwidth, this.measuredRate || Infinity) : this.measuredRate;
      this.expectedDowntime = rate > 0 ? (remaining / rate) * 1000 : 0;
      if (remaining === 0 || this.expectedDowntime <= this.params.downtimeLimitMs) break;
      await yieldToGuest();
    }
    if (this.cancelRequested) return false;
    warmUp(saver.devicesToSave(), saver.dialect.vmdesc);
    // Switch-over: the guest stops, the rest goes in one go.
    if (this.vm.running) {
      this.vm.pause();
      this.pausedByUs = true;
    }
    this.stoppedAt = performance.now();
    if (!this.state.transition('active', 'device')) return false;
    saver.complete();
    await this.flush(transport, true);
    // Downtime and total-time end with the last byte handed to the OS, as QEMU's do
    // (migration_calculate_complete); closing the connection comes after.
    const flushedAt = performance.now();
    await transport.end();
    this.endedAt = flushedAt;
    return this.state.transition('device', 'completed');
  }

  /** Sends what the writer holds, throttled to max-bandwidth; `unthrottled` for the switch-over. */
  private async flush(transport: ByteTransport, unthrottled = false): Promise<void> {
    if (this.w.length === 0) return;
    // A copy of its own: the writer is reused at once, and the transport keeps the chunk until it is sent.
    const chunk = this.w.peek().slice();
    this.w.reset();
    await transport.write(chunk);
    this.transferred += chunk.length;
    const bw = this.params.maxBandwidth;
    if (bw > 0 && !unthrottled) {
      const due = this.startedAt + (this.transferred / bw) * 1000;
      const wait = due - performance.now();
      if (wait > 0) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, wait);
          this.wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        this.wake = null;
        this.lastYield = performance.now();
      }
    }
    // The guest is stopped during the switch-over (unthrottled): nothing to yield to, every ms is downtime.
    if (!unthrottled && performance.now() - this.lastYield > GUEST_SLICE_MS) {
      await yieldToGuest();
      this.lastYield = performance.now();
    }
  }

  /** query-migrate's view, with QEMU's field names. */
  info(): Record<string, unknown> {
    const now = performance.now();
    const s = this.state.status;
    const ended = isFinal(s);
    const total = this.ram?.totalBytes ?? 0;
    const stats = this.ram?.stats ?? { zeroPages: 0, normalPages: 0, syncs: 0, dirtyPagesRate: 0 };
    const elapsed = ((ended ? this.endedAt : now) - this.startedAt) / 1000;
    const out: Record<string, unknown> = { status: s };
    if (!this.started) {
      if (s === 'failed' && this.failure?.message) out['error-desc'] = this.failure.message;
      return out;
    }
    out['setup-time'] = Math.round(this.setupTime);
    out['total-time'] = Math.round(elapsed * 1000);
    if (s === 'completed') out.downtime = Math.round(this.endedAt - this.stoppedAt);
    if (s === 'active' || s === 'device') out['expected-downtime'] = Math.round(this.expectedDowntime);
    if (s === 'failed' && this.failure?.message) out['error-desc'] = this.failure.message;
    out.ram = {
      transferred: this.transferred,
      remaining: this.ram?.remainingBytes ?? 0,
      total,
      duplicate: stats.zeroPages,
      skipped: 0,
      normal: stats.normalPages,
      'normal-bytes': stats.normalPages * 4096,
      'dirty-sync-count': stats.syncs,
      'page-size': 4096,
      mbps: elapsed > 0 ? (this.transferred * 8) / 1e6 / elapsed : 0,
      'pages-per-second': elapsed > 0 ? Math.round((stats.zeroPages + stats.normalPages) / elapsed) : 0,
      'dirty-pages-rate': stats.dirtyPagesRate,
    };
    return out;
  }

  /** Completed passes over RAM. */
  get passCount(): number {
    return this.passes;
  }

  /** Ms the guest was stopped (after completion). */
  get downtimeMs(): number {
    return this.endedAt - this.stoppedAt;
  }
}

/** Lets the guest's timers run between passes, so it keeps dirtying memory as a running guest does. */
function yieldToGuest(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

