/**
 * Live migration, the destination side: listen at the URI, then read the stream in order as it arrives
 * and load each section into the VM's registry (QEMU's process_incoming_migration). Only a stream that
 * loaded to its end completes; anything else fails, and the caller must not resume a half-loaded VM.
 * With TLS, a client refused by the handshake or its checks is closed unread and the wait goes on
 * (status setup): the stream is the first accepted client's.
 *
 * The return path (QEMU's, see return-path.ts) opens when the stream says OPEN_RETURN_PATH, on tcp: and
 * unix: (exec: and file: have no way back: their commands are passed over). Then every PING is answered
 * with PONG once the sections before it are loaded, and the load ends with SHUT: 0 when it completed,
 * 1 when it failed. With it, the load is complete at EOF: the source sends EOF only after it read the
 * PONG for the PING that follows the whole state, so from EOF on this side owns the guest, and a cut in
 * the trailer that follows does not fail it (QEMU's destination does not fail on the trailer either).
 */
import { loadSnapshot, type DecodedCommand, type SaveRegistry } from '../savevm/index.js';
import { ChunkedSource, parseMigrationUri, type PullSource } from '../stream/index.js';
import { MigrationError } from './migration-error.js';
import { encodePong, encodeShut } from './return-path.js';
import { MigrationStateMachine, type MigrationStatus } from './status.js';
import type { TlsServerOptions } from './tls-session.js';
import { listenIncoming, type IncomingEndpoint } from './transport.js';

/** Options for IncomingMigration.run. */
export interface IncomingOptions {
  /** Refuse a load that reads state before it is loaded. Defaults to false. */
  readonly checkLoadOrder?: boolean;
  /** Called once listening, with the address bound (a tcp port 0 resolved). */
  readonly onListening?: (address: string) => void;
  /** TLS on the connection (tls-creds, tls-authz): clients that fail it are refused and waited past. */
  readonly tls?: TlsServerOptions;
}

/** The longest the destination waits for its last return-path message to go out. */
const REPLY_TIMEOUT_MS = 2000;

/** Resolves when `p` does, or after `ms`, whichever comes first. */
function within(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]).finally(() => clearTimeout(timer));
}

export class IncomingMigration {
  readonly state = new MigrationStateMachine();
  private startedAt = 0;
  private endedAt = 0;
  private received = 0;
  private failure: MigrationError | undefined;

  /**
   * A destination for the stream at `uri` (tcp:, unix:, exec:, file:), loading into `registry`; the
   * stream's configuration must name `machineType` (or one of them).
   */
  constructor(
    private readonly registry: SaveRegistry,
    private readonly machineType: string | readonly string[],
    private readonly uri: string,
  ) {}

  /** Why the migration failed, once it has. */
  get error(): MigrationError | undefined {
    return this.failure;
  }

  /**
   * Listens (status setup), takes the first connection and loads its stream; resolves with completed or
   * failed, never rejects. When it cannot listen the status stays none and `error` has phase setup.
   */
  async run(options: IncomingOptions = {}): Promise<MigrationStatus> {
    let endpoint: IncomingEndpoint;
    try {
      endpoint = await listenIncoming(parseMigrationUri(this.uri), options.tls);
    } catch (e) {
      this.failure = new MigrationError('setup', e);
      return this.state.status;
    }
    this.state.transition('none', 'setup');
    options.onListening?.(endpoint.uri);
    const source = await endpoint.accept();
    this.startedAt = performance.now();
    this.state.transition('setup', 'active');
    const readChunk = source.readChunk?.bind(source);
    const counting: PullSource = {
      readInto: async (t) => {
        const n = await source.readInto(t);
        this.received += n;
        return n;
      },
      readChunk:
        readChunk &&
        (async () => {
          const chunk = await readChunk();
          this.received += chunk?.length ?? 0;
          return chunk;
        }),
    };
    let returnPath = false;
    let loaded = false;
    // Replies go out in order; a failed one is left to the reads, which see the same broken connection.
    let replies = Promise.resolve();
    const reply = (bytes: Uint8Array) => {
      const send = source.reply;
      if (returnPath && send) replies = replies.then(() => send(bytes)).catch(() => undefined);
    };
    const onCommand = (c: DecodedCommand) => {
      if (c.name === 'OPEN_RETURN_PATH') returnPath = source.reply !== undefined;
      else if (c.name === 'PING') reply(encodePong(c.value));
    };
    try {
      await loadSnapshot(this.registry, new ChunkedSource(counting), {
        machineName: this.machineType,
        checkLoadOrder: options.checkLoadOrder,
        live: source.reply !== undefined,
        // A destination whose load failed never runs: undoing it would only cost a copy of what it wrote.
        atomic: false,
        openAfterTrailer: () => returnPath,
        onCommand,
        onLoaded: () => (loaded = true),
      });
    } catch (e) {
      if (!(returnPath && loaded)) this.failure = new MigrationError('load', e);
    }
    this.endedAt = performance.now();
    reply(encodeShut(this.failure ? 1 : 0));
    await within(replies, REPLY_TIMEOUT_MS);
    this.state.transition('active', this.failure ? 'failed' : 'completed');
    // A failed load leaves the source's bytes unread: closing outright would reset the connection over SHUT.
    if (returnPath && this.failure && source.closeAfterReply) source.closeAfterReply(REPLY_TIMEOUT_MS);
    else source.close();
    return this.state.status;
  }

  /** query-migrate on the destination. */
  info(): Record<string, unknown> {
    const s = this.state.status;
    if (s === 'none' || s === 'setup') return s === 'none' ? {} : { status: s };
    const out: Record<string, unknown> = { status: s, 'total-time': Math.round((this.endedAt || performance.now()) - this.startedAt) };
    if (this.failure?.message) out['error-desc'] = this.failure.message;
    out.ram = { transferred: this.received };
    return out;
  }
}
