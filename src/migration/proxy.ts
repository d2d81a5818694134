/**
 * A migration proxy: it stands where the source migrates to and passes the migration on to the real
 * destination, the rest of the migration staying QEMU's.
 *
 *   1. listen at LISTEN (tcp: or unix:) and take the first connection (one migration per listen);
 *   2. connect to TO; if that fails, the source's connection is cut, so its migration fails;
 *   3. relay the stream source -> destination and whatever comes back (the return path) the other way,
 *      byte for byte, with back-pressure both ways; with a capture file, every stream byte goes there too;
 *   4. a side that fails is passed on: the source cut off (reset, or closed before the stream's EOF and
 *      trailer went by) cuts the destination, which sees a truncated stream; the destination closing
 *      while the source still sends resets the source, whose migration fails.
 *
 * Watching (`watch`), the proxy decodes the stream as it passes: the setup and RAM phase go on as soon
 * as they are decoded (a window of a few MiB, never more), counted as they go; the device phase (from the
 * first device section on, what QEMU sends at the switch-over) is held until its VMDESCRIPTION has come,
 * then checked against the order rules, changed as asked (analyze/device-phase.ts) and sent on.
 *
 * The result says how many bytes went each way and whether the stream went by whole; a ProxyError says
 * which side failed, after how many bytes, and why.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { asksForChanges, rewriteDevicePhase, type DevicePhaseEdits, type DevicePhaseResult } from '../analyze/index.js';
import { IoError, StreamTruncatedError } from '../errors.js';
import { findVmdescTrailer } from '../savevm/index.js';
import { ByteWriter, ChunkedSource, formatSocketAddress, type SocketAddress } from '../stream/index.js';
import { listenAt } from './listen-socket.js';
import { StreamTap, watchUntilDevices, type LiveStreamStats } from './stream-watch.js';

/** Options for runProxy. */
export interface ProxyOptions {
  readonly listen: SocketAddress;
  readonly to: SocketAddress;
  /** A file that gets every byte the source sends, as a stream file `analyze` and the others read. */
  readonly capture?: string;
  /** Decode the stream as it passes, and check or change its device phase. */
  readonly watch?: ProxyWatch;
  /** Called once listening, with the address bound (a tcp port 0 resolved). */
  readonly onListening?: (address: string) => void;
}

/** What a watching proxy does with the stream. */
export interface ProxyWatch {
  /** The release whose order rules are checked, and the changes to make to the device phase. */
  readonly edits: DevicePhaseEdits;
  /** After each section of the setup and RAM phase, with the stream bytes received so far. */
  readonly onProgress?: (stats: Readonly<LiveStreamStats>, bytes: number) => void;
  /** Once the device phase has come and been rewritten, just before it goes on. */
  readonly onDevicePhase?: (result: DevicePhaseResult) => void;
  /**
   * The stream could not be decoded: without changes to make, the proxy relays the rest unwatched and
   * says why here; with changes, the migration fails.
   */
  readonly onUnwatched?: (why: Error) => void;
}

/** How a relayed migration went. */
export interface ProxyResult {
  /** Bytes of the stream, source to destination. */
  readonly bytes: number;
  /** Bytes of the return path, destination to source. */
  readonly returned: number;
  /** Bytes that went to the destination (differs from `bytes` when the device phase was changed). */
  readonly sent: number;
  /** What a watching proxy counted, while it could decode the stream. */
  readonly watched?: Readonly<LiveStreamStats>;
}

/** A relayed migration that did not go by whole: which side, after how many stream bytes, and why. */
export class ProxyError extends IoError {
  constructor(
    readonly side: 'source' | 'destination' | 'capture' | 'proxy',
    readonly bytes: number,
    why: string,
  ) {
    super(`${side === 'capture' ? 'the capture file' : `the ${side}`} ${why} (after ${bytes} bytes of the stream)`, { side, bytes });
  }
}

/** Bytes that may wait to go to the destination (or the capture file, or the decoder) before the source is held. */
const QUEUED_BYTES = 4 << 20;

/** The most of a stream's end kept to find its trailer (the VMDESCRIPTION is at most 256 MiB, usually KiB). */
const TAIL_BYTES = 16 << 20;

/** The most a held device phase may take: a VMDESCRIPTION's 256 MiB and as much device state. */
const DEVICE_PHASE_BYTES = 512 << 20;

/** Relays one migration from LISTEN to TO; resolves when both connections are closed. */
export async function runProxy(o: ProxyOptions): Promise<ProxyResult> {
  // Half-open: the source's end of stream must not end the return path coming back to it.
  const server = createServer({ allowHalfOpen: true });
  await listenAt(server, o.listen);
  const bound = server.address();
  o.onListening?.(formatSocketAddress(o.listen.kind === 'tcp' && bound && typeof bound === 'object' ? { ...o.listen, port: bound.port } : o.listen));
  const source = await new Promise<Socket>((resolve) =>
    server.once('connection', (s) => {
      server.close();
      resolve(s);
    }),
  );
  let dest: Socket;
  try {
    dest = await connectTo(o.to);
  } catch (e) {
    source.destroy();
    throw new ProxyError('destination', 0, `cannot be reached at ${formatSocketAddress(o.to)}: ${(e as Error).message}`);
  }
  const capture = o.capture === undefined ? null : createWriteStream(o.capture);
  return relay(source, dest, capture, o.watch);
}

function connectTo(to: SocketAddress): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = to.kind === 'tcp' ? connect({ host: to.host, port: to.port, allowHalfOpen: true }) : connect({ path: to.path, allowHalfOpen: true });
    s.once('connect', () => {
      s.off('error', reject);
      s.setNoDelay(true);
      resolve(s);
    });
    s.once('error', reject);
  });
}

type Holder = 'dest' | 'capture' | 'decoder';

function relay(source: Socket, dest: Socket, capture: WriteStream | null, watch: ProxyWatch | undefined): Promise<ProxyResult> {
  let bytes = 0;
  let returned = 0;
  let sent = 0;
  let failure: ProxyError | null = null;
  let sourceEnded = false;
  const tail: Uint8Array[] = [];
  let tailBytes = 0;
  // The source is read only while neither the destination, the capture file nor the decoder is behind.
  const behind = new Set<Holder>();
  const hold = (who: Holder) => {
    behind.add(who);
    source.pause();
  };
  const release = (who: Holder) => {
    behind.delete(who);
    if (behind.size === 0) source.resume();
  };
  const fail = (e: ProxyError) => {
    failure ??= e;
    source.destroy();
    dest.destroy();
  };
  const send = (chunk: Uint8Array) => {
    sent += chunk.length;
    dest.write(chunk);
    if (dest.writableLength > QUEUED_BYTES) hold('dest');
  };
  const watcher = watch ? new Watcher(watch, send, fail, hold, release, () => bytes) : null;

  source.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    tail.push(chunk);
    tailBytes += chunk.length;
    while (tailBytes - tail[0].length >= TAIL_BYTES) tailBytes -= (tail.shift() as Buffer).length;
    // Node's streams ask for a pause past 16 KiB queued, which for 64 KiB socket reads is every chunk:
    // a few MiB may wait before the source is held.
    capture?.write(chunk);
    if (capture && capture.writableLength > QUEUED_BYTES) hold('capture');
    if (watcher?.watching) watcher.arrived(chunk);
    else send(chunk);
  });
  dest.on('drain', () => release('dest'));
  capture?.on('drain', () => release('capture'));
  dest.on('data', (chunk: Buffer) => {
    returned += chunk.length;
    if (!source.write(chunk)) dest.pause();
  });
  source.on('drain', () => dest.resume());

  const endDest = () => {
    if (!sourceEnded || failure) return;
    if (watcher?.watching) {
      // The device phase goes on (and the destination's end after it) once it is rewritten.
      if (!watcher.complete) return watcher.sourceEnded(endDest);
    } else if (!endsWithTrailer(tail, bytes)) {
      return fail(new ProxyError('source', bytes, 'closed its connection before its stream ended (no EOF and VMDESCRIPTION at the end)'));
    }
    dest.end();
  };
  source.on('end', () => {
    sourceEnded = true;
    endDest();
  });
  dest.on('end', () => {
    // With a return path the destination may close first: after its answer, once the whole stream is in.
    const whole = sourceEnded || (watcher?.watching ? watcher.complete : endsWithTrailer(tail, bytes));
    if (!whole) return fail(new ProxyError('destination', bytes, 'closed its connection while the source was still sending'));
    source.end();
  });
  source.on('error', (e) => fail(new ProxyError('source', bytes, `lost its connection: ${e.message}`)));
  dest.on('error', (e) => fail(new ProxyError('destination', bytes, `lost its connection: ${e.message}`)));
  capture?.on('error', (e) => fail(new ProxyError('capture', bytes, `cannot be written: ${e.message}`)));

  const closed = (s: Socket) => new Promise<void>((resolve) => (s.destroyed && s.closed ? resolve() : s.once('close', () => resolve())));
  return Promise.all([closed(source), closed(dest)]).then(async () => {
    watcher?.stop();
    if (capture) await new Promise<void>((resolve) => capture.end(resolve));
    if (failure) throw failure;
    return { bytes, returned, sent, watched: watcher?.stats };
  });
}

/**
 * The decoding half of a watching relay. Bytes go on only once the decoder is past them, so the device
 * phase is found before any of it has gone; from there on they are held until the VMDESCRIPTION is in.
 */
class Watcher {
  /** False once the stream could not be decoded and is relayed as it comes. */
  watching = true;
  /** True once the device phase went on (or the stream ended without one). */
  complete = false;
  private readonly tap: StreamTap;
  private readonly src: ChunkedSource;
  /** Chunks the decoder has been given that have not gone on yet; `forwarded` is the stream offset of their start. */
  private readonly pending: Uint8Array[] = [];
  private forwarded = 0;
  private pendingBytes = 0;
  /** The device phase, from the offset of its first section, while it comes in. */
  private phaseAt: number | null = null;
  private readonly phase = new ByteWriter();
  private rewriting = false;
  private onComplete: (() => void) | null = null;
  readonly stats: LiveStreamStats = { pages: 0, resentPages: 0, passes: 0, sections: 0 };

  constructor(
    private readonly watch: ProxyWatch,
    private readonly send: (chunk: Uint8Array) => void,
    private readonly fail: (e: ProxyError) => void,
    private readonly hold: (who: Holder) => void,
    private readonly release: (who: Holder) => void,
    private readonly received: () => number,
  ) {
    this.tap = new StreamTap(() => this.forward());
    // Small reads: the decoder asks for one record at a time and the window stays a few pages.
    this.src = new ChunkedSource(this.tap, { chunkSize: 1 << 20 });
    watchUntilDevices(this.src, this.stats, () => this.watch.onProgress?.(this.stats, this.received())).then(
      (at) => this.devicePhaseAt(at),
      (e: Error) => this.undecodable(e),
    );
  }

  /** A chunk from the source. */
  arrived(chunk: Uint8Array): void {
    if (this.phaseAt !== null) return this.phasePart(chunk);
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    this.tap.push(chunk);
    if (this.pendingBytes > QUEUED_BYTES) this.hold('decoder');
  }

  /** The source has ended; `then` runs once the device phase has gone on. */
  sourceEnded(then: () => void): void {
    this.tap.end();
    this.onComplete = then;
    if (this.phaseAt !== null && !this.rewriting) this.truncated();
  }

  stop(): void {
    this.tap.end();
  }

  /** Sends on what the decoder is past (up to the device phase, once it is found). */
  private forward(upTo = this.src.offset): void {
    while (this.pending.length > 0 && this.forwarded < upTo) {
      const chunk = this.pending[0];
      const n = Math.min(chunk.length, upTo - this.forwarded);
      this.send(n === chunk.length ? chunk : chunk.subarray(0, n));
      this.forwarded += n;
      this.pendingBytes -= n;
      if (n === chunk.length) this.pending.shift();
      else this.pending[0] = chunk.subarray(n);
    }
    if (this.pendingBytes <= QUEUED_BYTES) this.release('decoder');
  }

  private devicePhaseAt(at: number | null): void {
    if (at === null) {
      // A stream without device sections: it all goes on as it is.
      this.forward(Infinity);
      this.finish();
      return;
    }
    this.forward(at);
    this.phaseAt = at;
    const rest = this.pending.splice(0);
    this.pendingBytes = 0;
    this.release('decoder');
    for (const chunk of rest) this.phasePart(chunk);
    if (this.onComplete !== null && !this.rewriting && !this.complete) this.truncated();
  }

  private truncated(): void {
    this.fail(new ProxyError('source', this.received(), 'closed its connection before its stream ended (no EOF and VMDESCRIPTION at the end)'));
  }

  private phasePart(chunk: Uint8Array): void {
    if (this.complete) return this.send(chunk);
    this.phase.putBuffer(chunk);
    if (this.phase.length > DEVICE_PHASE_BYTES) {
      return this.fail(new ProxyError('source', this.received(), `sent a device phase over ${DEVICE_PHASE_BYTES} bytes without its VMDESCRIPTION`));
    }
    if (!this.rewriting) this.tryRewrite();
  }

  /** Rewrites and sends the device phase if it has ended (EOF and the VMDESCRIPTION, whose JSON ends in '}'). */
  private tryRewrite(): void {
    const phase = this.phase.peek();
    if (phase[phase.length - 1] !== 0x7d || findVmdescTrailer(phase, 0, phase.length) < 0) return;
    this.rewriting = true;
    rewriteDevicePhase(phase, this.phaseAt as number, this.watch.edits).then(
      (r) => {
        this.watch.onDevicePhase?.(r);
        this.send(r.bytes);
        this.finish();
      },
      (e: Error) => {
        this.rewriting = false;
        // What looked like the trailer was inside a section: wait for more.
        if (e instanceof StreamTruncatedError) return this.onComplete === null ? undefined : this.truncated();
        this.fail(new ProxyError('proxy', this.received(), `cannot pass the device phase on: ${e.message}`));
      },
    );
  }

  private finish(): void {
    this.complete = true;
    this.onComplete?.();
  }

  /** The decoder failed: without changes to make, the rest goes on as it comes. */
  private undecodable(e: Error): void {
    if (asksForChanges(this.watch.edits)) {
      if (e instanceof StreamTruncatedError && this.onComplete !== null) return this.truncated();
      return this.fail(new ProxyError('proxy', this.received(), `cannot decode the stream to change it: ${e.message}`));
    }
    this.watching = false;
    this.watch.onUnwatched?.(e);
    this.forward(Infinity);
    this.release('decoder');
    // A source that has ended is judged as an unwatched one is: by its last bytes.
    this.onComplete?.();
  }
}

/** True if the stream's last bytes are EOF and then the VMDESCRIPTION trailer, as a whole precopy stream ends. */
function endsWithTrailer(tail: readonly Uint8Array[], streamLength: number): boolean {
  const bytes = Buffer.concat(tail);
  return findVmdescTrailer(bytes, streamLength - bytes.length, streamLength) >= 0;
}
