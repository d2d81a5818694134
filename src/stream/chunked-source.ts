/**
 * An async byte source that only buffers. Parsers stay synchronous over a window of bytes, and the source
 * makes sure the window holds what they need before they start:
 *
 *   step(need, run)  reads until `need` bytes are buffered (or the stream ends), then runs `run` once. A
 *                    decoder with effects (one that loads state, or hands records on) says how much its
 *                    next step may read, so it never runs out half-way: running out is final.
 *   read(parse)      for a parse without effects (a framing record), whose length shows only as it is
 *                    read: when it runs out of bytes the source reads more and runs it again.
 *
 * Memory is bounded by the largest step (a RAM page, the device sections), never by the stream: a
 * multi-GB stream flows through a window of a few MiB.
 */
import { StreamFormatError, StreamTruncatedError } from '../errors.js';
import { ByteReader } from './reader.js';

/** Something bytes can be pulled from: a file, a socket, a buffer. */
export interface PullSource {
  /** Reads up to `target.length` bytes into `target`; resolves to the count, 0 at the end. */
  readInto(target: Uint8Array): Promise<number>;
  /** Moves to an absolute position ahead, where the next read starts (a file can; a socket cannot). */
  seek?(position: number): void;
  /**
   * Hands over the next bytes as they arrived, no copy: a chunk the caller may keep and read as long as
   * it likes (the source never writes to it again); null at the end. A source that has it is read only
   * through it.
   */
  readChunk?(): Promise<Uint8Array | null>;
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
  /** The window: this.own, or a chunk the source handed over (readChunk) and that is read in place. */
  private buf: Uint8Array;
  /** The buffer bytes are copied into when the window must join them (or the source has no readChunk). */
  private own: Uint8Array;
  /** What is left of a handed-over chunk after a join took the start of it. */
  private pending: Uint8Array | null = null;
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
    this.buf = this.own = new Uint8Array(this.sizeHint === undefined ? this.chunkSize * 2 : Math.min(this.chunkSize * 2, this.readSize()));
  }

  /** A source over bytes already in memory. */
  static fromBytes(bytes: Uint8Array): ChunkedSource {
    const s = new ChunkedSource({ readInto: async () => 0 }, { chunkSize: 16 });
    s.buf = s.own = bytes;
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

  /** Reads until at least `n` unconsumed bytes (at most the largest window) are buffered or the source ends. */
  async fill(n: number): Promise<void> {
    const want = Math.min(n, this.maxWindow);
    if (this.source.readChunk) return this.fillFromChunks(want);
    while (this.end - this.start < want && !this.ended) {
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

  /**
   * fill() over a source that hands its chunks over. A window that is used up takes the next chunk as it
   * is; one that holds part of a record gets only the bytes it lacks copied in after it, the rest of the
   * chunk waiting. A parser that asks for exactly its next record (as the RAM decoder does near a
   * window's end) thus has the bulk of a stream read in place: on a migration's destination that is one
   * copy of all of guest RAM saved.
   */
  private async fillFromChunks(want: number): Promise<void> {
    const source = this.source as Required<Pick<PullSource, 'readChunk'>>;
    while (this.end - this.start < want && !this.ended) {
      const chunk = this.pending ?? (await source.readChunk());
      this.pending = null;
      if (chunk === null) {
        this.ended = true;
        break;
      }
      if (chunk.length === 0) continue;
      const live = this.end - this.start;
      if (live === 0) {
        this.base += this.end;
        this.buf = chunk;
        this.start = 0;
        this.end = chunk.length;
      } else {
        const take = Math.min(chunk.length, want - live);
        this.join(chunk.subarray(0, take));
        if (take < chunk.length) this.pending = chunk.subarray(take);
      }
      if (this.sizeHint !== undefined && this.base + this.end > this.sizeHint) this.sizeHint = undefined;
    }
  }

  /** Makes the window the unconsumed bytes followed by `more`, in this.own. */
  private join(more: Uint8Array): void {
    this.compact(more.length);
    this.own.set(more, this.end);
    this.end += more.length;
  }

  /** Bytes to make room for before the next read: a chunk, or what the size hint says is left plus one (to see the end). */
  private readSize(): number {
    if (this.sizeHint === undefined) return this.chunkSize;
    const left = this.sizeHint - (this.base + this.end);
    return Math.min(this.chunkSize, Math.max(left, 0) + 1);
  }

  /**
   * Makes this.own the window, the unconsumed bytes at its front and `room` bytes free after them: moved
   * within it, copied from a chunk read in place, or into a larger one when they do not fit.
   */
  private compact(room: number): void {
    const live = this.end - this.start;
    const need = live + room;
    if (need > this.own.length) {
      const grown = new Uint8Array(Math.min(Math.max(need, this.own.length * 2), this.maxWindow + this.chunkSize));
      grown.set(this.buf.subarray(this.start, this.end));
      this.own = grown;
    } else if (this.buf === this.own) {
      this.own.copyWithin(0, this.start, this.end);
    } else {
      this.own.set(this.buf.subarray(this.start, this.end));
    }
    this.buf = this.own;
    this.base += this.start;
    this.start = 0;
    this.end = live;
  }

  /**
   * Moves to the absolute offset `to`, ahead of where the source stands: `bytes` gets what lies between,
   * in chunks; without it a source that can seek jumps there.
   */
  async skipTo(to: number, bytes?: (chunk: Uint8Array) => void): Promise<void> {
    if (to < this.offset) throw new StreamFormatError(`cannot go back to byte offset ${to}`, { offset: this.offset, path: '' });
    for (;;) {
      const take = Math.min(to - this.offset, this.end - this.start);
      bytes?.(this.buf.subarray(this.start, this.start + take));
      this.start += take;
      if (this.offset === to) return;
      if (bytes === undefined && this.source.seek) {
        this.source.seek(to);
        this.base = to;
        this.start = this.end = 0;
        return;
      }
      await this.fill(Math.min(to - this.offset, this.chunkSize));
      if (this.ended && this.start === this.end) throw new StreamTruncatedError(to - this.offset, 0, { offset: this.offset, path: '' });
    }
  }

  /**
   * Reads until `need` bytes are buffered or the source ends (`need` may be Infinity: the rest of the
   * stream, up to the largest window), runs `run` once over them and consumes what it read. Running out
   * of bytes there is final: a step that asked for too little fails rather than running again.
   */
  async step<T>(need: number, run: (r: ByteReader) => T): Promise<T> {
    await this.fill(Math.min(need, this.maxWindow));
    const r = this.window();
    let value: T;
    try {
      value = run(r);
    } catch (e) {
      if (e instanceof StreamTruncatedError && !this.ended) throw this.tooLong(need);
      throw e;
    }
    this.start += r.pos;
    return value;
  }

  /**
   * Runs a parse that has no effects over the buffered bytes and consumes what it read; when it runs out
   * of bytes before the source has ended, reads more and runs it again from the start. It runs first over
   * what is buffered, and then waits for no more than one byte past it each time: a live connection may
   * send nothing more until this record is answered.
   */
  async read<T>(parse: (r: ByteReader) => T): Promise<T> {
    let want = 1;
    for (;;) {
      if (this.end - this.start < want && !this.ended) await this.fill(want);
      const r = this.window();
      try {
        const value = parse(r);
        this.start += r.pos;
        return value;
      } catch (e) {
        if (!(e instanceof StreamTruncatedError) || this.ended) throw e;
        const have = this.end - this.start;
        if (have >= this.maxWindow) throw this.tooLong(have);
        want = have + 1;
      }
    }
  }

  private window(): ByteReader {
    return new ByteReader(this.buf.subarray(this.start, this.end), this.base + this.start, 0, this.ended);
  }

  private tooLong(need: number): StreamFormatError {
    const limit = Math.min(need, this.maxWindow);
    return new StreamFormatError(`one record needs more than ${limit} bytes`, { offset: this.offset, path: '' });
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
    async readChunk() {
      if (pending !== null && pending.length > 0) {
        const rest = pending;
        pending = null;
        return rest;
      }
      const next = await it.next();
      return next.done ? null : next.value;
    },
  };
}

/** A chunk at least this long is handed over as it is; shorter ones queued together are joined. */
const ADOPT_AT_LEAST = 64 << 10;
/** The most bytes one join copies. */
const JOIN_AT_MOST = 1 << 20;

/**
 * Adapts a Node readable stream (a socket, a file, a pipe) to a PullSource. One read takes every chunk
 * that has arrived, where the async iterator (pullFromIterable) costs a promise round trip per 64 KiB
 * socket chunk; readChunk hands a chunk over as it is, or joins small ones (TLS's 16 KiB records).
 * While more than `highWater` bytes wait unread the stream is paused, so a slow reader holds the sender
 * back. Bytes that arrived before an error are read first; a close without an end reads as
 * the end (the parser then reports a truncated stream).
 */
export function pullFromReadable(stream: NodeJS.ReadableStream, highWater = 8 << 20): PullSource {
  const queue: Uint8Array[] = [];
  /** Bytes of queue[0] already read. */
  let head = 0;
  let queued = 0;
  let ended = false;
  let paused = false;
  let failure: unknown = null;
  let wake: (() => void) | null = null;
  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  stream.on('data', (chunk: Uint8Array) => {
    queue.push(chunk);
    queued += chunk.length;
    if (queued >= highWater && !paused) {
      paused = true;
      stream.pause();
    }
    notify();
  });
  const end = () => {
    ended = true;
    notify();
  };
  stream.once('end', end);
  stream.once('close', end);
  stream.once('error', (e: unknown) => {
    failure = e;
    notify();
  });
  const arrived = async (): Promise<boolean> => {
    while (queued === 0) {
      if (failure !== null) throw failure;
      if (ended) return false;
      await new Promise<void>((resolve) => (wake = resolve));
    }
    return true;
  };
  const taken = (n: number) => {
    queued -= n;
    if (paused && queued < highWater) {
      paused = false;
      stream.resume();
    }
  };
  /** Moves queued bytes into `target` until it is full or nothing is queued; returns how many. */
  const copyQueued = (target: Uint8Array): number => {
    let n = 0;
    while (n < target.length && queue.length > 0) {
      const chunk = queue[0];
      const take = Math.min(chunk.length - head, target.length - n);
      target.set(chunk.subarray(head, head + take), n);
      n += take;
      head += take;
      if (head === chunk.length) {
        queue.shift();
        head = 0;
      }
    }
    taken(n);
    return n;
  };
  return {
    async readChunk() {
      if (!(await arrived())) return null;
      const first = queue[0].length - head;
      if (first >= ADOPT_AT_LEAST || queue.length === 1) {
        const chunk = (queue.shift() as Uint8Array).subarray(head);
        head = 0;
        taken(chunk.length);
        return chunk;
      }
      // Small chunks (TLS hands over one 16 KiB record at a time) cost more one by one than copied together.
      const joined = new Uint8Array(Math.min(queued, JOIN_AT_MOST));
      const n = copyQueued(joined);
      return n === joined.length ? joined : joined.subarray(0, n);
    },
    async readInto(target) {
      if (!(await arrived())) return 0;
      return copyQueued(target);
    },
  };
}
