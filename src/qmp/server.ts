/**
 * The QMP server: QEMU's JSON control protocol over a unix or TCP socket.
 *
 * Protocol, per connection (QEMU docs/interop/qmp-spec.txt, as QEMU 7.2 speaks it):
 *
 *   1. The server sends the greeting, one line:
 *        {"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "vmstate"}, "capabilities": []}}
 *   2. The client sends requests: JSON objects `{"execute": NAME, "arguments": {...}, "id": ANY}`, with
 *      `arguments` and `id` optional. Requests need no separator; one read may hold several and one
 *      request may span several reads (see request-splitter.ts). A request is at most 1 MiB.
 *   3. The first command must be `qmp_capabilities`; until it succeeds every other command fails with
 *      CommandNotFound "Expecting capabilities negotiation with 'qmp_capabilities'".
 *   4. Every request gets exactly one reply, in request order:
 *        {"return": VALUE, "id": ID}                          on success
 *        {"error": {"class": CLASS, "desc": TEXT}, "id": ID}  on failure
 *      `id` is echoed when the request had one (not for input that is not a JSON object).
 *      Session rules and error texts: session.ts; argument errors: arguments.ts.
 *   5. Once negotiated, a connection also receives every event the VM emits, interleaved between replies:
 *        {"event": NAME, "data": {...}, "timestamp": {"seconds": S, "microseconds": US}}
 *      `data` is left out when the event has none; the timestamp is wall-clock time. MIGRATION and
 *      MIGRATION_PASS are sent only while the `events` migration capability is on (QEMU's rule). Once
 *      the client has shut down its sending side, it gets the replies to what it sent, and no more events.
 *   6. Every message the server sends is one line of QEMU-formatted JSON (stream/qemu-json.ts) ending in "\r\n".
 *   7. A request over 1 MiB, or nested deeper than 1024 brackets, gets a GenericError reply and the
 *      server closes that connection. A client that stops reading while more than 16 MiB of output is
 *      queued for it is disconnected. Neither, nor a client going away, affects other connections.
 */
import { Socket, createServer } from 'node:net';
import { formatQemuJson, formatSocketAddress, type SocketAddress } from '../stream/index.js';
import { parseQmpAddress } from './address.js';
import type { QmpCommand } from './command.js';
import { qmpCommands } from './commands/index.js';
import { MAX_REQUEST_BYTES, RequestSplitter } from './request-splitter.js';
import { errorReply, QmpSession } from './session.js';
import type { VmControl } from './vm-control.js';
import { listenAt } from '../migration/index.js';

/** The version the greeting announces: the QEMU release whose protocol and stream format vmstate follows. */
export const QMP_VERSION = { qemu: { micro: 0, minor: 2, major: 7 }, package: 'vmstate' } as const;

/** Output queued for one client beyond which it is disconnected (16 MiB). */
const MAX_OUTPUT_BACKLOG = 16 * 1024 * 1024;

/** Events sent only while the `events` migration capability is on (migration.c `migrate_use_events()`). */
const MIGRATION_EVENTS: ReadonlySet<string> = new Set(['MIGRATION', 'MIGRATION_PASS']);

/** Options for startQmpServer. */
export interface QmpServerOptions {
  /** The commands to dispatch besides qmp_capabilities. Defaults to qmpCommands. */
  readonly commands?: readonly QmpCommand[];
  /** The longest request accepted, in bytes. Defaults to 1 MiB. */
  readonly maxRequestBytes?: number;
}

/** A listening QMP server. */
export interface QmpServer {
  /** The bound address, `unix:PATH` or `tcp:HOST:PORT` with the real port when 0 was asked for. */
  readonly address: string;
  /** Stops listening, drops every connection and unsubscribes from the VM's events. */
  close(): Promise<void>;
}

/** Listens on `address` (`unix:PATH` or `tcp:HOST:PORT`) and serves QMP for `vm` on every connection. */
export async function startQmpServer(address: string, vm: VmControl, options: QmpServerOptions = {}): Promise<QmpServer> {
  const where = parseQmpAddress(address);
  const commands = new Map((options.commands ?? qmpCommands).map((c) => [c.name, c]));
  const maxRequestBytes = options.maxRequestBytes ?? MAX_REQUEST_BYTES;
  const connections = new Set<Connection>();

  const server = createServer((socket) => {
    const conn = new Connection(socket, vm, commands, maxRequestBytes, () => connections.delete(conn));
    connections.add(conn);
  });

  await listenAt(server, where);
  // Errors after listening (e.g. EMFILE on accept) must not crash the process.
  server.on('error', () => {});

  const unsubscribe = vm.onEvent((event, data) => {
    if (MIGRATION_EVENTS.has(event) && !eventsCapabilityOn(vm)) return;
    const line = formatQemuJson({ event, data, timestamp: timestamp() }) + '\r\n';
    for (const conn of connections) if (conn.negotiated) conn.sendLine(line);
  });

  let bound: SocketAddress = where;
  const info = server.address();
  if (where.kind === 'tcp' && info !== null && typeof info === 'object') bound = { kind: 'tcp', host: info.address, port: info.port };

  let closing: Promise<void> | undefined;
  return {
    address: formatSocketAddress(bound),
    close() {
      closing ??= new Promise<void>((resolve) => {
        unsubscribe();
        server.close(() => resolve());
        for (const conn of connections) conn.destroy();
      });
      return closing;
    },
  };
}

function eventsCapabilityOn(vm: VmControl): boolean {
  try {
    return vm.queryCapabilities().some((c) => c.capability === 'events' && c.state);
  } catch {
    return false;
  }
}

/** Wall-clock time as QEMU's event timestamp (g_get_real_time). */
function timestamp(): { seconds: number; microseconds: number } {
  const us = Math.floor((performance.timeOrigin + performance.now()) * 1000);
  return { seconds: Math.floor(us / 1e6), microseconds: us % 1e6 };
}

/** One client connection: splits its input, dispatches requests and writes replies and events. */
class Connection {
  private readonly splitter: RequestSplitter;
  private readonly session: QmpSession;
  private closed = false;

  constructor(
    private readonly socket: Socket,
    vm: VmControl,
    commands: ReadonlyMap<string, QmpCommand>,
    maxRequestBytes: number,
    onClose: () => void,
  ) {
    this.splitter = new RequestSplitter(maxRequestBytes);
    this.session = new QmpSession(vm, commands);
    socket.setNoDelay(true);
    socket.on('error', () => this.destroy());
    socket.on('close', () => {
      this.closed = true;
      onClose();
    });
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    this.send({ QMP: { version: QMP_VERSION, capabilities: [] } });
  }

  /** Whether this client has negotiated capabilities and so receives events. */
  get negotiated(): boolean {
    return this.session.negotiated && !this.closed;
  }

  /**
   * Writes one already formatted line, unless the client has stopped reading, or has shut down its side
   * and the socket is ending: a write then would destroy it, and the replies still queued with it.
   */
  sendLine(line: string, done?: () => void): void {
    if (this.closed || this.socket.destroyed || this.socket.writableEnded) {
      done?.();
      return;
    }
    if (this.socket.writableLength > MAX_OUTPUT_BACKLOG) {
      this.destroy();
      done?.();
      return;
    }
    this.socket.write(line, done && (() => done()));
  }

  /** Drops the connection at once. */
  destroy(): void {
    this.closed = true;
    this.socket.destroy();
  }

  private send(message: Record<string, unknown>, done?: () => void): void {
    this.sendLine(formatQemuJson(message) + '\r\n', done);
  }

  private receive(chunk: Buffer): void {
    for (const item of this.splitter.push(chunk)) {
      if (this.closed) return;
      if (item.kind === 'error') {
        this.send(errorReply('GenericError', item.desc));
        if (item.fatal) {
          this.closed = true;
          this.socket.end();
        }
        continue;
      }
      const { reply, afterReply } = this.session.handle(item.text);
      this.send(reply, afterReply && (() => runQuietly(afterReply)));
    }
  }
}

function runQuietly(fn: () => void): void {
  try {
    fn();
  } catch {
    // The reply is already sent; there is no one left to tell.
  }
}
