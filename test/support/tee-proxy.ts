// A migration between two real QEMUs, recorded: a unix socket the source migrates to, joined to the
// destination's, that copies what the source sends (the stream) into a file and passes the destination's
// answers (the return path) back untouched. Capabilities that need a live peer (return-path,
// switchover-ack, a real switch to postcopy) can then be captured as a file.
import { createWriteStream } from 'node:fs';
import net from 'node:net';

/** A running {@link teeProxy}. */
export interface TeeProxy {
  /** Settles when the source's connection has ended and the file holds everything it sent. */
  readonly recorded: Promise<void>;
  /** Stops listening and drops any connection still open. */
  close(): void;
}

/**
 * Listens on the unix socket `listen`; its first connection is joined to the unix socket `target`, and
 * every byte it sends is also written to `file`. Later connections (a postcopy preempt channel) are
 * joined too but not recorded.
 */
export function teeProxy(listen: string, target: string, file: string): TeeProxy {
  const out = createWriteStream(file);
  const sockets = new Set<net.Socket>();
  let connections = 0;
  let settle: { resolve: () => void; reject: (e: Error) => void } | undefined;
  const recorded = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
  recorded.catch(() => undefined); // a caller that never awaits it must not see an unhandled rejection
  const server = net.createServer((client) => {
    const recording = connections++ === 0;
    const upstream = net.createConnection(target);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    }
    client.on('data', (chunk: Buffer) => {
      if (recording) out.write(chunk);
      upstream.write(chunk);
    });
    client.on('end', () => {
      upstream.end();
      if (recording) out.end(() => settle?.resolve());
    });
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    upstream.on('end', () => client.end());
    const fail = (e: Error) => {
      client.destroy();
      upstream.destroy();
      if (recording) settle?.reject(e);
    };
    client.on('error', fail);
    upstream.on('error', fail);
  });
  server.listen(listen);
  return {
    recorded,
    close() {
      server.close();
      for (const s of sockets) s.destroy();
      out.end();
    },
  };
}
