/**
 * A QMP client, for the CLI and tests. It speaks the protocol in server.ts from the other side:
 *
 *   1. Connect and read the greeting line (`{"QMP": {...}}`).
 *   2. Send `{"execute": "qmp_capabilities"}` and wait for its `{"return": {}}`.
 *   3. Each `execute` sends `{"execute": NAME, "arguments": ARGS, "id": N}` with a fresh integer N and
 *      settles when the reply carrying the same id arrives: `return` resolves, `error` rejects with a
 *      QmpError of the reply's class and desc.
 *   4. Lines with an `event` member are events: they go to the `event` listeners and into a bounded
 *      backlog that waitForEvent searches first, so an event that arrived before the wait began is not
 *      missed.
 *
 * Every wait is bounded: connecting, each command and each waitForEvent time out (Defaults to 10 s),
 * rejecting with IoError. A closed connection rejects everything pending with IoError.
 */
import { Socket, connect } from 'node:net';
import { IoError } from '../errors.js';
import { parseQmpAddress } from './address.js';
import { QmpError, type QmpErrorClass } from './vm-control.js';

/** The server's greeting (QEMU's `QMP` banner). */
export interface QmpGreeting {
  /** The version and the capabilities the server offers. */
  readonly QMP: {
    readonly version: { readonly qemu: { readonly micro: number; readonly minor: number; readonly major: number }; readonly package: string };
    readonly capabilities: readonly string[];
  };
}

/** An asynchronous event from the server. */
export interface QmpEvent {
  /** The event's name, e.g. `STOP` or `MIGRATION`. */
  readonly event: string;
  /** The event's data; absent for events without any. */
  readonly data?: Readonly<Record<string, unknown>>;
  /** When the server emitted it. */
  readonly timestamp: { readonly seconds: number; readonly microseconds: number };
}

/** Options for QmpClient.connect. */
export interface QmpClientOptions {
  /** How long connecting (greeting and negotiation included) and each command may take, in ms. Defaults to 10000. */
  readonly timeoutMs?: number;
}

/** Longest line accepted from the server (64 MiB), so a broken server cannot exhaust memory. */
const MAX_LINE_CHARS = 64 * 1024 * 1024;
/** Events kept for waitForEvent; the oldest go first. */
const EVENT_BACKLOG = 1024;
const DEFAULT_TIMEOUT_MS = 10_000;

interface Pending {
  readonly command: string;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
}

interface EventWaiter {
  readonly name: string;
  readonly predicate: (e: QmpEvent) => boolean;
  readonly resolve: (e: QmpEvent) => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A negotiated QMP connection. */
export class QmpClient {
  /** The greeting the server sent. */
  readonly greeting: QmpGreeting;
  private readonly socket: Socket;
  private readonly address: string;
  private readonly timeoutMs: number;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners = new Set<(e: QmpEvent) => void>();
  private readonly waiters = new Set<EventWaiter>();
  private readonly backlog: QmpEvent[] = [];
  private nextId = 1;
  private closedError: IoError | undefined;
  private closing: Promise<void> | undefined;

  private constructor(socket: Socket, address: string, greeting: QmpGreeting, rest: LineReader, timeoutMs: number) {
    this.socket = socket;
    this.address = address;
    this.greeting = greeting;
    this.timeoutMs = timeoutMs;
    rest.onLine = (line) => this.receive(line);
    rest.onEnd = (why) => this.fail(why);
  }

  /** Connects to `unix:PATH` or `tcp:HOST:PORT`, reads the greeting and negotiates capabilities. */
  static async connect(address: string, options: QmpClientOptions = {}): Promise<QmpClient> {
    const where = parseQmpAddress(address);
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const socket = where.kind === 'unix' ? connect({ path: where.path }) : connect({ host: where.host, port: where.port });
    const reader = new LineReader(socket);
    const early: string[] = [];
    let client: QmpClient;
    try {
      const greeting = await new Promise<QmpGreeting>((resolve, reject) => {
        const timer = setTimeout(() => reject(new IoError(`QMP server at ${address} sent no greeting within ${timeoutMs} ms`, { address })), timeoutMs);
        reader.onEnd = (why) => {
          clearTimeout(timer);
          reject(new IoError(`QMP connection to ${address} ${why}`, { address }));
        };
        reader.onLine = (line) => {
          clearTimeout(timer);
          reader.onLine = (later) => early.push(later); // replayed once the client exists
          let parsed: unknown;
          try {
            parsed = JSON.parse(line);
          } catch {
            parsed = undefined;
          }
          if (isPlainObject(parsed) && isPlainObject(parsed.QMP)) resolve(parsed as unknown as QmpGreeting);
          else reject(new IoError(`QMP server at ${address} sent no greeting but: ${line.slice(0, 200)}`, { address }));
        };
      });
      client = new QmpClient(socket, address, greeting, reader, timeoutMs);
      for (const line of early) client.receive(line);
    } catch (e) {
      socket.destroy();
      throw e;
    }
    try {
      await client.execute('qmp_capabilities');
    } catch (e) {
      await client.close();
      throw e;
    }
    return client;
  }

  /**
   * Runs `command` with `args`; resolves with the reply's `return` (typed as T by the caller, unchecked),
   * rejects with QmpError for an error reply or IoError on timeout (Defaults to the client's) or a closed connection.
   */
  execute<T = unknown>(command: string, args?: Readonly<Record<string, unknown>>, timeoutMs = this.timeoutMs): Promise<T> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new IoError(`QMP command ${command} got no reply from ${this.address} within ${timeoutMs} ms`, { address: this.address, command }));
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (value: unknown) => void, reject, timer });
      const request = args === undefined ? { execute: command, id } : { execute: command, arguments: args, id };
      this.socket.write(JSON.stringify(request) + '\n');
    });
  }

  /** Calls `listener` with every event received from now on. */
  on(type: 'event', listener: (e: QmpEvent) => void): this {
    if (type === 'event') this.listeners.add(listener);
    return this;
  }

  /** Removes a listener added with on(). */
  off(type: 'event', listener: (e: QmpEvent) => void): this {
    if (type === 'event') this.listeners.delete(listener);
    return this;
  }

  /**
   * Resolves with the first event named `name` that satisfies `predicate`, taking it out of the backlog
   * of events already received if one is there; rejects with IoError after `timeoutMs` (Defaults to the
   * client's timeout) or when the connection closes.
   */
  waitForEvent(name: string, predicate: (e: QmpEvent) => boolean = () => true, timeoutMs = this.timeoutMs): Promise<QmpEvent> {
    const index = this.backlog.findIndex((e) => e.event === name && predicate(e));
    if (index >= 0) return Promise.resolve(this.backlog.splice(index, 1)[0]);
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise<QmpEvent>((resolve, reject) => {
      const waiter: EventWaiter = {
        name,
        predicate,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(waiter);
          reject(new IoError(`no QMP event ${name} from ${this.address} within ${timeoutMs} ms`, { address: this.address, event: name }));
        }, timeoutMs),
      };
      this.waiters.add(waiter);
    });
  }

  /** Drops the events received so far from the backlog waitForEvent searches. */
  clearEvents(): void {
    this.backlog.length = 0;
  }

  /** Closes the connection; pending commands and waits reject with IoError. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      if (this.socket.destroyed) resolve();
      else {
        this.socket.once('close', () => resolve());
        this.socket.end();
        // A server that never closes its side must not hold close() up.
        setTimeout(() => this.socket.destroy(), 1000).unref();
      }
      this.fail('closed by the client');
    });
    return this.closing;
  }

  private receive(line: string): void {
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch {
      return; // Not QMP; nothing can be matched to it.
    }
    if (!isPlainObject(message)) return;
    if (typeof message.event === 'string') {
      this.deliver(message as unknown as QmpEvent);
      return;
    }
    if (typeof message.id !== 'number') return;
    const pending = this.pending.get(message.id);
    if (!pending) return;
    this.pending.delete(message.id);
    clearTimeout(pending.timer);
    if (isPlainObject(message.error)) {
      const { class: errorClass, desc } = message.error;
      pending.reject(new QmpError(String(errorClass) as QmpErrorClass, String(desc)));
    } else {
      pending.resolve(message.return);
    }
  }

  private deliver(event: QmpEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // A listener's failure is its own; others still get the event.
      }
    }
    for (const waiter of this.waiters) {
      if (waiter.name === event.event && waiter.predicate(event)) {
        this.waiters.delete(waiter);
        clearTimeout(waiter.timer);
        waiter.resolve(event);
        return;
      }
    }
    this.backlog.push(event);
    if (this.backlog.length > EVENT_BACKLOG) this.backlog.shift();
  }

  private fail(why: string): void {
    if (this.closedError) return;
    this.closedError = new IoError(`QMP connection to ${this.address} ${why}`, { address: this.address });
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(this.closedError);
    }
    this.pending.clear();
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.reject(this.closedError);
    }
    this.waiters.clear();
  }
}

/** Splits a socket's input into lines and reports its end once. */
class LineReader {
  onLine: (line: string) => void = () => {};
  onEnd: (why: string) => void = () => {};
  private buffered = '';
  private ended = false;

  constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => this.receive(text));
    socket.on('error', (e) => this.end(`failed: ${e.message}`));
    socket.on('close', () => this.end('was closed'));
  }

  private receive(text: string): void {
    this.buffered += text;
    let newline: number;
    while ((newline = this.buffered.indexOf('\n')) >= 0) {
      const line = this.buffered.slice(0, newline).trim();
      this.buffered = this.buffered.slice(newline + 1);
      if (line) this.onLine(line);
      if (this.ended) return;
    }
    if (this.buffered.length > MAX_LINE_CHARS) {
      this.end(`sent a line over ${MAX_LINE_CHARS} characters`);
      this.socket.destroy();
    }
  }

  private end(why: string): void {
    if (this.ended) return;
    this.ended = true;
    this.onEnd(why);
  }
}
