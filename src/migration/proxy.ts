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
 * The result says how many bytes went each way and whether the stream went by whole; a ProxyError says
 * which side failed, after how many bytes, and why.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { IoError } from '../errors.js';
import { findVmdescTrailer } from '../savevm/index.js';
import { formatSocketAddress, type SocketAddress } from '../stream/index.js';
import { listenAt } from './listen-socket.js';

/** Options for runProxy. */
export interface ProxyOptions {
  readonly listen: SocketAddress;
  readonly to: SocketAddress;
  /** A file that gets every byte the source sends, as a stream file `analyze` and the others read. */
  readonly capture?: string;
  /** Called once listening, with the address bound (a tcp port 0 resolved). */
  readonly onListening?: (address: string) => void;
}

/** How a relayed migration went. */
export interface ProxyResult {
  /** Bytes of the stream, source to destination. */
  readonly bytes: number;
  /** Bytes of the return path, destination to source. */
  readonly returned: number;
}

/** A relayed migration that did not go by whole: which side, after how many stream bytes, and why. */
export class ProxyError extends IoError {
  constructor(
    readonly side: 'source' | 'destination' | 'capture',
    readonly bytes: number,
    why: string,
  ) {
    super(`${side === 'capture' ? 'the capture file' : `the ${side}`} ${why} (after ${bytes} bytes of the stream)`, { side, bytes });
  }
}

/** Bytes that may wait to go to the destination (or the capture file) before the source is held. */
const QUEUED_BYTES = 4 << 20;

/** The most of a stream's end kept to find its trailer (the VMDESCRIPTION is at most 256 MiB, usually KiB). */
const TAIL_BYTES = 16 << 20;

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
  return relay(source, dest, capture);
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

function relay(source: Socket, dest: Socket, capture: WriteStream | null): Promise<ProxyResult> {
  let bytes = 0;
  let returned = 0;
  let failure: ProxyError | null = null;
  let sourceEnded = false;
  const tail: Uint8Array[] = [];
  let tailBytes = 0;
  // The source is read only while neither the destination nor the capture file is behind.
  const behind = new Set<'dest' | 'capture'>();
  const hold = (who: 'dest' | 'capture') => {
    behind.add(who);
    source.pause();
  };
  const release = (who: 'dest' | 'capture') => {
    behind.delete(who);
    if (behind.size === 0) source.resume();
  };
  const fail = (e: ProxyError) => {
    failure ??= e;
    source.destroy();
    dest.destroy();
  };

  source.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    tail.push(chunk);
    tailBytes += chunk.length;
    while (tailBytes - tail[0].length >= TAIL_BYTES) tailBytes -= (tail.shift() as Buffer).length;
    // Node's streams ask for a pause past 16 KiB queued, which for 64 KiB socket reads is every chunk:
    // a few MiB may wait before the source is held.
    capture?.write(chunk);
    if (capture && capture.writableLength > QUEUED_BYTES) hold('capture');
    dest.write(chunk);
    if (dest.writableLength > QUEUED_BYTES) hold('dest');
  });
  dest.on('drain', () => release('dest'));
  capture?.on('drain', () => release('capture'));
  dest.on('data', (chunk: Buffer) => {
    returned += chunk.length;
    if (!source.write(chunk)) dest.pause();
  });
  source.on('drain', () => dest.resume());

  source.on('end', () => {
    sourceEnded = true;
    if (!endsWithTrailer(tail, bytes)) return fail(new ProxyError('source', bytes, 'closed its connection before its stream ended (no EOF and VMDESCRIPTION at the end)'));
    dest.end();
  });
  dest.on('end', () => {
    if (!sourceEnded) return fail(new ProxyError('destination', bytes, 'closed its connection while the source was still sending'));
    source.end();
  });
  source.on('error', (e) => fail(new ProxyError('source', bytes, `lost its connection: ${e.message}`)));
  dest.on('error', (e) => fail(new ProxyError('destination', bytes, `lost its connection: ${e.message}`)));
  capture?.on('error', (e) => fail(new ProxyError('capture', bytes, `cannot be written: ${e.message}`)));

  const closed = (s: Socket) => new Promise<void>((resolve) => (s.destroyed && s.closed ? resolve() : s.once('close', () => resolve())));
  return Promise.all([closed(source), closed(dest)]).then(async () => {
    if (capture) await new Promise<void>((resolve) => capture.end(resolve));
    if (failure) throw failure;
    return { bytes, returned };
  });
}

/** True if the stream's last bytes are EOF and then the VMDESCRIPTION trailer, as a whole precopy stream ends. */
function endsWithTrailer(tail: readonly Uint8Array[], streamLength: number): boolean {
  const bytes = Buffer.concat(tail);
  return findVmdescTrailer(bytes, streamLength - bytes.length, streamLength) >= 0;
}
