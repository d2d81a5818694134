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
 *
 * With the return-path capability (tcp: and unix: only) the destination answers on the same connection
 * (return-path.ts) and the switch-over becomes a handshake in which exactly one side ends up running:
 *   1. setup sends OPEN_RETURN_PATH and PING 1 after the configuration, as QEMU does;
 *   2. the switch-over sends the whole state (END and FULL sections), then PING 2, and waits for PONG 2:
 *      the destination answers it only once it loaded every section before it. Until PONG 2 is read any
 *      failure (the connection cut, SHUT with an error, no answer in time) fails the migration and the
 *      guest resumes here: the destination runs only after it read the EOF that follows PONG 2;
 *   3. PONG 2 read, this side has let go of the guest for good: it sends EOF and the trailer (the
 *      destination, once past EOF, runs), and waits for SHUT. SHUT 0: completed. SHUT with an error (the
 *      destination gave up and will not run): failed, and the guest resumes. No SHUT (the connection cut,
 *      no answer in time): failed, and the guest stays stopped, since the destination may be running it.
 * QEMU itself commits at SHUT: its destination runs before it sends SHUT, and a source that misses it
 * resumes, so a cut there leaves both running. Here the one ambiguous moment is after PONG 2 reached
 * the source and before its EOF reached the destination: a cut then leaves neither running (the source
 * failed and paused, with its state intact: `cont` resumes it).
 */
import { StreamSaver, writePing, type QemuDialect, type SaveRegistry } from '../savevm/index.js';
import { RamHandler } from '../ram/index.js';
import { UsageError } from '../errors.js';
import { ByteWriter, parseMigrationUri, type MigrationUri } from '../stream/index.js';
import { MigrationError } from './migration-error.js';
import { isFinal, MigrationStateMachine, type MigrationStatus } from './status.js';
import { SourceReturnPath } from './return-path.js';
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

/** migrate-set-capabilities values that change what a migration does. */
export interface MigrationCapabilities {
  /** QEMU's return-path: the destination answers on the connection (tcp: and unix: only). Defaults to false. */
  readonly returnPath?: boolean;
  /** How long the source waits for each answer on the return path, in ms. Defaults to 10 s. */
  readonly returnPathTimeoutMs?: number;
}

/** The PING the switch-over ends with: its PONG says the destination loaded the whole state. */
const SWITCHOVER_PING = 2;

/** Sent chunks' buffers kept for reuse: enough for the chunks a socket holds while the next is written. */
const MAX_SPARE_BUFFERS = 4;

/** The longest the migration keeps the event loop before letting the guest's timers run. */
const GUEST_SLICE_MS = 5;

export class OutgoingMigration {
  readonly state = new MigrationStateMachine();
  private readonly w = new ByteWriter(2 << 20);
  /** Buffers of chunks already sent, for the writer to fill again. */
  private readonly spareBuffers: Uint8Array[] = [];
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
  /** Set once PONG 2 came back: the guest is the destination's from then on, and never resumes here. */
  private committed = false;
  /** Why the return path broke, when it did: what a migration that then fails reports. */
  private returnPathFailure: Error | null = null;

  /**
   * A migration of `vm` to `uri` (tcp:, unix:, exec:, file:), over TLS with `tls`; throws UsageError for
   * a bad URI, or for a return path over exec: or file:, which have no way back.
   */
  constructor(
    private readonly vm: MigratableVm,
    uri: string,
    private readonly params: MigrationParameters,
    private readonly onPass: (pass: number) => void = () => undefined,
    private readonly capabilities: MigrationCapabilities = {},
    private readonly tls?: OutgoingTls,
  ) {
    this.uri = parseMigrationUri(uri);
    if (capabilities.returnPath && (this.uri.kind === 'exec' || this.uri.kind === 'file')) {
      throw new UsageError(`the return-path capability needs a tcp: or unix: URI: ${this.uri.kind}: has no way back from the destination`);
    }
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
    // Past PONG 2 the destination may be running the guest: too late to take it back.
    if (this.committed) return;
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
        // A write that failed because the return path broke (and dropped the connection) reports the latter.
        thrown = this.returnPathFailure && !(e instanceof MigrationError) ? this.returnPathFailure : e;
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
    const returnPath = this.capabilities.returnPath ? this.openReturnPath(transport) : null;
    const saver = new StreamSaver(this.w, this.vm.registry, { machineName: this.vm.machineType, dialect: this.vm.dialect, returnPath: returnPath !== null });
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
    if (returnPath) return this.switchOverWithReturnPath(saver, transport, returnPath);
    saver.complete();
    await this.flush(transport, true);
    // Downtime and total-time end with the last byte handed to the OS, as QEMU's do
    // (migration_calculate_complete); closing the connection comes after.
    const flushedAt = performance.now();
    await transport.end();
    this.endedAt = flushedAt;
    return this.state.transition('device', 'completed');
  }

  /** The return path over the connection; its failure drops the connection, which fails the migration. */
  private openReturnPath(transport: ByteTransport): SourceReturnPath {
    if (!transport.openReturnPath) throw new MigrationError('setup', 'Unable to open return-path: the connection has no way back');
    return new SourceReturnPath(transport.openReturnPath(), (e) => {
      this.returnPathFailure ??= e;
      transport.destroy();
      this.wake?.();
    });
  }

  /** Steps 2 and 3 of the return path's switch-over (see the top of this file); true once completed. */
  private async switchOverWithReturnPath(saver: StreamSaver, transport: ByteTransport, returnPath: SourceReturnPath): Promise<boolean> {
    const timeoutMs = this.capabilities.returnPathTimeoutMs ?? 10_000;
    saver.completeState();
    writePing(this.w, SWITCHOVER_PING);
    await this.flush(transport, true);
    await returnPath.waitForPong(SWITCHOVER_PING, timeoutMs);
    this.committed = true;
    this.pausedByUs = false;
    let status: number;
    try {
      saver.finish();
      await this.flush(transport, true);
      status = await returnPath.waitForShut(timeoutMs);
    } catch (e) {
      const shut = returnPath.shut;
      // SHUT with an error: the destination gave up and will not run the guest, so it resumes here.
      if (shut !== null && shut !== 0) this.pausedByUs = true;
      else e = new MigrationError('device', e, 'the destination loaded the whole state but did not confirm it (the guest stays stopped, as the destination may be running it): ');
      throw e;
    }
    if (status !== 0) {
      this.pausedByUs = true;
      throw new MigrationError('device', `the destination failed to load the stream (SHUT ${status})`);
    }
    this.endedAt = performance.now();
    transport.destroy();
    return this.state.transition('device', 'completed');
  }

  /** Sends what the writer holds, throttled to max-bandwidth; `unthrottled` for the switch-over. */
  private async flush(transport: ByteTransport, unthrottled = false): Promise<void> {
    if (this.w.length === 0) return;
    // The transport keeps the chunk until it is sent; the writer goes on in a buffer sent earlier, so the
    // stream needs neither a copy nor fresh memory per chunk (fresh memory is page faults).
    const chunk = this.w.take(this.spareBuffers.pop());
    await transport.write(chunk, () => {
      if (this.spareBuffers.length < MAX_SPARE_BUFFERS) this.spareBuffers.push(new Uint8Array(chunk.buffer));
    });
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

