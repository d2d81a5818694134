/**
 * The ends of a migration, opened from a parsed URI (stream/address.ts): `tcp:HOST:PORT`, `unix:PATH`,
 * `exec:COMMAND` (the stream goes to the command's standard input, or comes from its standard output),
 * `file:PATH`. Outgoing ends give a ByteTransport with back-pressure; incoming ends give a PullSource.
 * With TLS options, tcp and unix connections are wrapped in TLS (tls-session.ts) before any stream byte.
 */
import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { IoError, UsageError } from '../errors.js';
import { formatMigrationUri, pullFromReadable, type MigrationUri, type PullSource } from '../stream/index.js';
import { listenAt } from './listen-socket.js';
import { startTlsClient, tlsAcceptor, type TlsClientOptions, type TlsServerOptions } from './tls-session.js';

/** Where an outgoing stream goes. */
export interface ByteTransport {
  /**
   * Resolves when the transport can take more (at once, or at drain when the peer is slow). The chunk is
   * sent as it is, not copied: the caller must not change it until `sent` is called, once the chunk has
   * been handed to the OS (or the connection failed).
   */
  write(chunk: Uint8Array, sent?: () => void): Promise<void>;
  /** Finishes the stream and resolves when everything was flushed. */
  end(): Promise<void>;
  /** Drops the connection at once. */
  destroy(): void;
  /** What the destination sends back on the same connection (the return path); tcp: and unix: only. */
  openReturnPath?(): PullSource;
}

function fromWritable(stream: NodeJS.WritableStream & { destroy(): void; writableLength?: number }, closed: Promise<void>): ByteTransport {
  let failure: Error | null = null;
  const fail = (e: Error) => (failure ??= e);
  const closedError = () => new IoError('the connection was closed');
  stream.on('error', fail);
  stream.on('close', () => fail(closedError()));
  return {
    write(chunk, sent) {
      if (failure) {
        sent?.();
        return Promise.reject(failure);
      }
      return new Promise<void>((resolve, reject) => {
        const cleanup = () => {
          stream.off('error', onError);
          stream.off('close', onClose);
          stream.off('drain', onDrain);
        };
        const onError = (e: Error) => {
          cleanup();
          reject(e);
        };
        const onClose = () => onError(failure ?? closedError());
        const onDrain = () => {
          cleanup();
          resolve();
        };
        stream.once('error', onError);
        stream.once('close', onClose);
        const ok = stream.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength), (e?: Error | null) => {
          sent?.();
          if (e) {
            fail(e);
            onError(e);
          }
        });
        if (ok) onDrain();
        else stream.once('drain', onDrain);
      });
    },
    end() {
      if (failure) return Promise.reject(failure);
      return new Promise<void>((resolve, reject) => {
        stream.once('error', reject);
        // A peer that already went away makes end() fail too, not report a delivered stream.
        stream.end((e?: Error | null) => (e ? reject(e) : closed.then(resolve, reject)));
      });
    },
    destroy() {
      stream.destroy();
    },
  };
}

/** The URI kinds TLS can wrap: sockets, not files or commands. */
function refuseTlsOn(u: MigrationUri): void {
  if (u.kind === 'exec' || u.kind === 'file') throw new UsageError(`TLS is not supported on ${u.kind}: migrations, only on tcp: and unix:`, { kind: u.kind });
}

/** Opens the outgoing end of a migration; with `tls`, the stream goes through a TLS session on the socket. */
export async function connectOutgoing(u: MigrationUri, tls?: TlsClientOptions): Promise<ByteTransport> {
  if (tls) refuseTlsOn(u);
  switch (u.kind) {
    case 'tcp':
    case 'unix': {
      const sock = u.kind === 'tcp' ? connect(u.port, u.host) : connect(u.path);
      await new Promise<void>((resolve, reject) => {
        sock.once('connect', resolve);
        sock.once('error', reject);
      });
      sock.setNoDelay(true);
      const stream = tls ? await startTlsClient(sock, tls) : sock;
      return { ...fromWritable(stream, Promise.resolve()), openReturnPath: () => pullFromReadable(stream) };
    }
    case 'file': {
      const out = createWriteStream(u.path);
      await new Promise<void>((resolve, reject) => {
        out.once('open', () => resolve());
        out.once('error', reject);
      });
      return fromWritable(out, new Promise((resolve) => out.once('close', () => resolve())));
    }
    case 'exec': {
      const child = spawn('/bin/sh', ['-c', u.command], { stdio: ['pipe', 'ignore', 'inherit'] });
      const exited = new Promise<void>((resolve, reject) =>
        child.once('exit', (code) => (code === 0 ? resolve() : reject(new IoError(`exec: ${u.command} exited with ${code}`, { command: u.command, exitCode: code })))),
      );
      exited.catch(() => undefined);
      return fromWritable(child.stdin, exited);
    }
  }
}

/** The destination's end of a migration: the stream's bytes, and a way back on tcp: and unix:. */
export interface IncomingConnection extends PullSource {
  /** Sends bytes back to the source (the return path); resolves once they are handed to the OS. */
  reply?(bytes: Uint8Array): Promise<void>;
  /**
   * Closes after a last reply the peer must still read: our side ends, and what the peer goes on sending
   * is read and dropped until it closes, or for `ms` at most. Closing with its bytes unread would reset
   * the connection, and a reset can destroy the reply in the peer's kernel before the peer reads it.
   */
  closeAfterReply?(ms: number): void;
  close(): void;
}

/** An incoming end that is listening (tcp, unix) or ready (exec, file). */
export interface IncomingEndpoint {
  /** The address actually bound (tcp port 0 resolved). */
  readonly uri: string;
  /** Resolves with the bytes of the first connection. */
  accept(): Promise<IncomingConnection>;
  close(): void;
}

/**
 * Opens the incoming end of a migration. With `tls`, accept() resolves with the first client that passes
 * the handshake and its checks; the others are closed unread (and told to `tls.onRejected`).
 */
export async function listenIncoming(u: MigrationUri, tls?: TlsServerOptions): Promise<IncomingEndpoint> {
  if (tls) refuseTlsOn(u);
  if (u.kind === 'file' || u.kind === 'exec') {
    return {
      uri: formatMigrationUri(u),
      async accept() {
        if (u.kind === 'file') {
          const stream = createReadStream(u.path, { highWaterMark: 4 << 20 });
          return { ...pullFromReadable(stream), close: () => stream.destroy() };
        }
        const child = spawn('/bin/sh', ['-c', u.command], { stdio: ['ignore', 'pipe', 'inherit'] });
        return { ...pullFromReadable(child.stdout), close: () => child.kill() };
      },
      close() {},
    };
  }
  const server = createServer();
  await listenAt(server, u);
  const addr = server.address();
  const bound = u.kind === 'tcp' && addr && typeof addr === 'object' ? { ...u, port: addr.port } : u;
  return {
    uri: formatMigrationUri(bound),
    accept() {
      if (tls) {
        const acceptor = tlsAcceptor(tls);
        server.on('connection', (sock) => acceptor.offer(sock));
        return acceptor.accepted.then((sock) => {
          server.close(); // one migration per listen, as in QEMU
          return incomingConnection(sock);
        });
      }
      return new Promise((resolve) => {
        server.once('connection', (sock) => {
          server.close(); // one migration per listen, as in QEMU
          resolve(incomingConnection(sock));
        });
      });
    },
    close() {
      server.close();
    },
  };
}

/** A socket (plain or TLS) as the destination reads it and replies on it. */
function incomingConnection(sock: Socket): IncomingConnection {
  sock.on('error', () => undefined); // reads see it; a failed reply rejects
  const reply = (bytes: Uint8Array) => new Promise<void>((done, fail) => void sock.write(bytes, (e) => (e ? fail(e) : done())));
  const closeAfterReply = (ms: number) => {
    const timer = setTimeout(() => sock.destroy(), ms);
    sock.once('close', () => clearTimeout(timer));
    sock.removeAllListeners('data');
    sock.on('data', () => undefined);
    sock.resume();
    sock.end();
  };
  return { ...pullFromReadable(sock), reply, closeAfterReply, close: () => sock.destroy() };
}
