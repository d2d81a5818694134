/**
 * Binding a server to a socket address, for the migration listener and the QMP server alike.
 *
 * QEMU unlinks whatever is at a unix socket's path before binding. We remove only a stale socket: a
 * socket file that nobody accepts on any more (its process died). A regular file, a directory or a socket
 * that another process still listens on is left alone, and the error names the path and what is there.
 */
import { connect, type Server } from 'node:net';
import { lstat, unlink } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { IoError } from '../errors.js';
import { formatSocketAddress, type SocketAddress } from '../stream/index.js';

/** Listens on `address`; an IoError names the address when it cannot. */
export async function listenAt(server: Server, address: SocketAddress): Promise<void> {
  if (address.kind === 'unix') await clearStaleSocket(address.path);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      const ready = () => {
        server.off('error', reject);
        resolve();
      };
      if (address.kind === 'unix') server.listen({ path: address.path }, ready);
      else server.listen({ host: address.host, port: address.port }, ready);
    });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const where = formatSocketAddress(address);
    const why = err.code === 'EADDRINUSE' ? 'it is already in use' : err.message;
    throw new IoError(`cannot listen on ${where}: ${why}`, { address: where, errno: err.code }, e);
  }
}

/** Removes the socket file at `path` if nobody listens on it; throws if something else is there. */
async function clearStaleSocket(path: string): Promise<void> {
  let stats: Stats;
  try {
    stats = await lstat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new IoError(`cannot listen on unix:${path}: ${(e as Error).message}`, { path }, e);
  }
  if (!stats.isSocket()) {
    throw new IoError(`cannot listen on unix:${path}: ${path} is ${describeFile(stats)}, not a socket; not removing it`, { path });
  }
  if (await someoneListens(path)) {
    throw new IoError(`cannot listen on unix:${path}: another process is listening on it`, { path });
  }
  await unlink(path);
}

/** Whether a connection to the unix socket at `path` is accepted (ECONNREFUSED: the socket is stale). */
function someoneListens(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

function describeFile(stats: Stats): string {
  if (stats.isFile()) return 'a regular file';
  if (stats.isDirectory()) return 'a directory';
  if (stats.isSymbolicLink()) return 'a symbolic link';
  if (stats.isFIFO()) return 'a named pipe';
  if (stats.isCharacterDevice() || stats.isBlockDevice()) return 'a device';
  return 'another kind of file';
}
