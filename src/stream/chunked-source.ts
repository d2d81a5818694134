/**
 * An async byte source that only buffers. Parsers stay synchronous over a window of bytes; when a parse
 * step runs out of bytes before the source has ended, the source reads more and the step runs again from
 * where it started. Memory is bounded by the largest single step (a RAM page, one device section), never
 * by the stream: a multi-GB stream flows through a window of a few MiB.
 */
import { StreamFormatError, StreamTruncatedError } from '../errors.js';
import { ByteReader } from './reader.js';

/** Something bytes can be pulled from: a file, a socket, a buffer. */
export interface PullSource {
  /** Reads up to `target.length` bytes into `target`; resolves to the count, 0 at the end. */
  readInto(target: Uint8Array): Promise<number>;
}

/** Options for ChunkedSource. */
export interface ChunkedSourceOptions {
  /** Bytes asked of the source per read. Defaults to 4 MiB. */
  readonly chunkSize?: number;
  /** Largest window one parse step may need. Defaults to 512 MiB. */
  readonly maxWindow?: number;
  /**
   * How many bytes the source will deliver, when known (a file's size). A smaller stream then gets a
   * buffer of its own size rather than two chunks, and no read asks for much more than is left.
   */
  readonly sizeHint?: number;
}

export class ChunkedSource {
  private buf: Uint8Array;
  private start = 0;
  private end = 0;
  /** Absolute stream offset of buf[0]. */
  private base = 0;
  private ended = false;
  private readonly chunkSize: number;
  private readonly maxWindow: number;
  /** Absolute offset the source is expected to end at; forgotten if it turns out to be wrong. */
  private sizeHint: number | undefined;

  constructor(
    private readonly source: PullSource,
    options: ChunkedSourceOptions = {},
  ) {
    this.chunkSize = options.chunkSize ?? 4 << 20;
    this.maxWindow = options.maxWindow ?? 512 << 20;
    this.sizeHint = options.sizeHint;
    this.buf = new Uint8Array(this.sizeHint === undefined ? this.chunkSize * 2 : Math.min(this.chunkSize * 2, this.readSize()));
  }

  /** A source over bytes already in memory. */
  static fromBytes(bytes: Uint8Array): ChunkedSource {
    const s = new ChunkedSource({ readInto: async () => 0 }, { chunkSize: 16 });
    s.buf = bytes;
    s.end = bytes.length;
    s.ended = true;
    return s;
  }

  /** Absolute offset of the next unconsumed byte. */
  get offset(): number {
    return this.base + this.start;
  }

  /** True once the source has ended and every byte has been consumed. */
  get atEnd(): boolean {
    return this.ended && this.start === this.end;
  }

  /** Resolves true if no byte is left, reading from the source to find out. */
  async isAtEnd(): Promise<boolean> {
    await this.fill(1);
    return this.atEnd;
  }

  /** Reads until at least `n` unconsumed bytes are buffered or the source ends. */
  async fill(n: number): Promise<void> {
    while (this.end - this.start < n && !this.ended) {
      if (n > this.maxWindow) {
        throw new StreamFormatError(`one record needs more than ${this.maxWindow} bytes`, { offset: this.offset, path: '' });
      }
      const room = this.readSize();
      if (this.buf.length - this.end < room) this.compact(room);
      const got = await this.source.readInto(this.buf.subarray(this.end));
      if (got === 0) {
        this.ended = true;
      } else {
        this.end += got;
        if (this.sizeHint !== undefined && this.base + this.end > this.sizeHint) this.sizeHint = undefined;
      }
    }
  }

  /** Bytes to make room for before the next read: a chunk, or what the size hint says is left plus one (to see the end). */
  private readSize(): number {
    if (this.sizeHint === undefined) return this.chunkSize;
    const left = this.sizeHint - (this.base + this.end);
    return Math.min(this.chunkSize, Math.max(left, 0) + 1);
  }

  /** Moves the unconsumed bytes to the front so that `room` bytes fit after them, growing the buffer if they cannot. */
  private compact(room: number): void {
    const live = this.end - this.start;
    const need = live + room;
    const target = need > this.buf.length ? new Uint8Array(Math.min(Math.max(need, this.buf.length * 2), this.maxWindow + this.chunkSize)) : this.buf;
    if (target === this.buf) this.buf.copyWithin(0, this.start, this.end);
    else target.set(this.buf.subarray(this.start, this.end));
    this.buf = target;
    this.base += this.start;
    this.start = 0;
    this.end = live;
  }

  /**
   * Runs one synchronous parse step over the buffered bytes and consumes what it read. If the step runs
   * out of bytes while the source has more, more is read and the step runs again from its last commit()
   * (or from where it started), so a step must have no side effects it has not committed.
   */
  async step<T>(parse: (r: ByteReader) => T): Promise<T> {
    let want = Math.min(this.chunkSize, 64 * 1024);
    for (;;) {
      if (this.end - this.start < want && !this.ended) await this.fill(want);
      const r = new ByteReader(this.buf.subarray(this.start, this.end), this.base + this.start, 0, this.ended);
      try {
        const value = parse(r);
        this.start += r.pos;
        return value;
      } catch (e) {
        if (!(e instanceof StreamTruncatedError) || this.ended) throw e;
        if (r.committed > 0) {
          this.start += r.committed;
          want = this.chunkSize;
        } else {
          want = Math.max((this.end - this.start) * 2, this.chunkSize);
        }
      }
    }
  }
}

/** Adapts an async iterable of chunks (a socket, a Node read stream) to a PullSource. */
export function pullFromIterable(chunks: AsyncIterable<Uint8Array>): PullSource {
  const it = chunks[Symbol.asyncIterator]();
  let pending: Uint8Array | null = null;
  return {
    async readInto(target) {
      if (pending === null || pending.length === 0) {
        const next = await it.next();
        if (next.done) return 0;
        pending = next.value;
      }
      const n = Math.min(pending.length, target.length);
      target.set(pending.subarray(0, n));
      pending = pending.subarray(n);
      return n;
    },
  };
}
