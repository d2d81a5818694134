/**
 * Live migration, the destination side: read the stream in order as it arrives and load each section
 * into the VM's registry (QEMU's process_incoming_migration). Only a stream that loaded to its end
 * completes; anything else fails, and the caller must not resume a half-loaded VM.
 */
import { loadSnapshot, type SaveRegistry } from '../savevm/index.js';
import { ChunkedSource, type PullSource } from '../stream/index.js';
import { MigrationStateMachine, type MigrationStatus } from './status.js';

export class IncomingMigration {
  readonly state = new MigrationStateMachine();
  private startedAt = 0;
  private endedAt = 0;
  private received = 0;
  private error: string | undefined;
  /** The failure, once the migration failed. */
  failure: unknown;

  constructor(
    private readonly registry: SaveRegistry,
    private readonly machineType: string,
  ) {}

  /** Marks the destination as waiting for a connection. */
  listening(): void {
    this.state.transition('none', 'setup');
  }

  /** Loads the stream from `source`; resolves with completed or failed (never rejects). */
  async run(source: PullSource, options: { checkLoadOrder?: boolean } = {}): Promise<MigrationStatus> {
    this.state.transition('none', 'setup');
    this.startedAt = performance.now();
    this.state.transition('setup', 'active');
    const counting: PullSource = {
      readInto: async (t) => {
        const n = await source.readInto(t);
        this.received += n;
        return n;
      },
    };
    try {
      await loadSnapshot(this.registry, new ChunkedSource(counting), { machineName: this.machineType, checkLoadOrder: options.checkLoadOrder });
      this.endedAt = performance.now();
      this.state.transition('active', 'completed');
    } catch (e) {
      this.endedAt = performance.now();
      this.failure = e;
      this.error = (e as Error).message;
      this.state.transition('active', 'failed');
    }
    return this.state.status;
  }

  /** query-migrate on the destination. */
  info(): Record<string, unknown> {
    const s = this.state.status;
    if (s === 'none' || s === 'setup') return s === 'none' ? {} : { status: s };
    const out: Record<string, unknown> = { status: s, 'total-time': Math.round((this.endedAt || performance.now()) - this.startedAt) };
    if (this.error) out['error-desc'] = this.error;
    out.ram = { transferred: this.received };
    return out;
  }
}
