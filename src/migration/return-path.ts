/**
 * The return path: the messages a destination sends back to its source on the migration's own
 * connection, in the layout of QEMU's migrate_send_rp_message (migration/migration.c, QEMU 7.2):
 *
 *   message := be16 type  be16 length  payload[length]
 *   SHUT    := type 1 (MIG_RP_MSG_SHUT)  length 4  be32 status   the destination is done; 0 = loaded
 *   PONG    := type 2 (MIG_RP_MSG_PONG)  length 4  be32 value    answers the source's PING with its value
 *
 * QEMU's other messages (page requests, the received bitmap, RESUME_ACK, SWITCHOVER_ACK) belong to
 * postcopy and its recovery, which vmstate does not do: a source that gets one fails the migration.
 */
import { IoError, StreamTruncatedError } from '../errors.js';
import { ByteReader, ByteWriter, ChunkedSource, type PullSource } from '../stream/index.js';

/** MIG_RP_MSG_* numbers vmstate sends and reads (QEMU's enum mig_rp_message_type). */
export const RpMessage = {
  SHUT: 1,
  PONG: 2,
} as const;

/** One return-path message, decoded. */
export type ReturnPathMessage = { readonly type: 'shut'; readonly status: number } | { readonly type: 'pong'; readonly value: number };

/** The bytes of SHUT with `status` (0: the destination loaded the whole stream). */
export function encodeShut(status: number): Uint8Array {
  return encode(RpMessage.SHUT, status);
}

/** The bytes of PONG echoing PING's `value`. */
export function encodePong(value: number): Uint8Array {
  return encode(RpMessage.PONG, value);
}

function encode(type: number, value: number): Uint8Array {
  const w = new ByteWriter(8);
  w.putBe16(type);
  w.putBe16(4);
  w.putBe32(value);
  return w.peek().slice();
}

/** Reads one message; throws IoError for a type or length vmstate does not take. */
export function readReturnPathMessage(r: ByteReader): ReturnPathMessage {
  const type = r.getBe16();
  const length = r.getBe16();
  if ((type !== RpMessage.SHUT && type !== RpMessage.PONG) || length !== 4) {
    throw new IoError(`return path: unexpected message type ${type} with length ${length}`, { type, length });
  }
  const value = r.getBe32();
  return type === RpMessage.SHUT ? { type: 'shut', status: value } : { type: 'pong', value };
}

/**
 * The source's end of the return path: reads messages as they come and lets the migration wait for a
 * PONG or for SHUT. The first failure (the connection ending or breaking, a message it cannot read, a
 * wait timing out) is kept and every wait after it fails with it.
 */
export class SourceReturnPath {
  private readonly pongs = new Set<number>();
  private shutStatus: number | null = null;
  private broken: Error | null = null;
  private readonly waiters = new Set<() => void>();

  /** Starts reading `from`; `onBroken` is told of the first failure (the migration then drops the connection). */
  constructor(
    from: PullSource,
    private readonly onBroken: (e: Error) => void,
  ) {
    void this.read(new ChunkedSource(from, { chunkSize: 4096 }));
  }

  /** Reads messages until SHUT, or the first failure. */
  private async read(src: ChunkedSource): Promise<void> {
    try {
      while (this.shutStatus === null) {
        if (await src.isAtEnd()) throw new IoError('the destination closed the return path');
        const m = await src.read(readReturnPathMessage);
        if (m.type === 'pong') this.pongs.add(m.value);
        else this.shutStatus = m.status;
        this.notify();
        if (this.shutStatus !== null && this.shutStatus !== 0) throw new IoError(`the destination failed to load the stream (SHUT ${this.shutStatus})`);
      }
    } catch (e) {
      if (e instanceof IoError) this.fail(e);
      else if (e instanceof StreamTruncatedError) this.fail(new IoError('the return path closed in the middle of a message', {}, e));
      else this.fail(new IoError(`the return path broke: ${e instanceof Error ? e.message : String(e)}`, {}, e));
    }
  }

  private fail(e: Error): void {
    if (this.broken) return;
    this.broken = e;
    this.notify();
    this.onBroken(e);
  }

  private notify(): void {
    for (const w of this.waiters) w();
  }

  /** Whether SHUT came, and with which status; null before. */
  get shut(): number | null {
    return this.shutStatus;
  }

  /**
   * Resolves once PONG `value` came back. Rejects if SHUT comes first (the destination gave up), if the
   * return path breaks, or after `timeoutMs`.
   */
  waitForPong(value: number, timeoutMs: number): Promise<void> {
    return this.waitUntil(`PONG ${value}`, timeoutMs, () => {
      if (this.pongs.has(value)) return true;
      if (this.shutStatus !== null) throw new IoError(`the destination sent SHUT ${this.shutStatus} instead of PONG ${value}`, { status: this.shutStatus });
      return false;
    });
  }

  /** Resolves with SHUT's status once it came. Rejects if the return path breaks first, or after `timeoutMs`. */
  async waitForShut(timeoutMs: number): Promise<number> {
    await this.waitUntil('SHUT', timeoutMs, () => this.shutStatus !== null);
    return this.shutStatus as number;
  }

  /** Waits until `done` holds (it may throw to give up); a break or the timeout rejects. */
  private waitUntil(what: string, timeoutMs: number, done: () => boolean): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const check = () => {
        let ok: boolean;
        try {
          ok = done();
        } catch (e) {
          finish();
          reject(e);
          return;
        }
        if (ok) {
          finish();
          resolve();
        } else if (this.broken) {
          finish();
          reject(this.broken);
        }
      };
      const timer = setTimeout(() => {
        finish();
        const e = new IoError(`the destination sent no ${what} within ${timeoutMs} ms`);
        this.fail(e);
        reject(e);
      }, timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }
}
