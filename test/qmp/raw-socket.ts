// A QMP connection spoken by hand: write raw text, read the server's lines exactly as sent.
import { after } from 'node:test';
import net from 'node:net';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Arrivals } from '../support/arrivals.js';

const tempDirs: string[] = [];
after(() => Promise.all(tempDirs.map((dir) => fs.rm(dir, { recursive: true, force: true }))));

/** A fresh `unix:` address in a private temporary directory, removed when the test file ends. */
export async function tempUnixAddress(): Promise<{ address: string; path: string; dir: string }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vmstate-qmp-'));
  tempDirs.push(dir);
  const p = path.join(dir, 'qmp.sock');
  return { address: `unix:${p}`, path: p, dir };
}

/** The greeting line the server sends, without its "\r\n". */
export const GREETING = '{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "vmstate"}, "capabilities": []}}';

/** A raw socket to the server that collects "\r\n"-terminated lines. */
export class RawQmp {
  /** Everything received, as sent (the server writes ASCII only). */
  received = '';
  private pendingText = '';
  private readonly lines = new Arrivals<string>('line');
  /** Settles when the server closes the connection. */
  readonly closed: Promise<void>;

  private constructor(readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      this.received += text;
      let at: number;
      let rest = this.pendingText + text;
      while ((at = rest.indexOf('\r\n')) >= 0) {
        this.lines.push(rest.slice(0, at));
        rest = rest.slice(at + 2);
      }
      this.pendingText = rest;
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) =>
      socket.on('close', () => {
        this.lines.end();
        resolve();
      }),
    );
  }

  /** Connects to `unix:PATH` or `tcp:HOST:PORT`. */
  static async open(address: string): Promise<RawQmp> {
    const socket = address.startsWith('unix:')
      ? net.connect({ path: address.slice(5) })
      : net.connect({ host: address.slice(4, address.lastIndexOf(':')), port: Number(address.slice(address.lastIndexOf(':') + 1)) });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawQmp(socket);
  }

  /** Connects, checks the greeting and negotiates capabilities. */
  static async negotiated(address: string): Promise<RawQmp> {
    const raw = await RawQmp.open(address);
    if ((await raw.next()) !== GREETING) throw new Error('unexpected greeting');
    if ((await raw.request('{"execute": "qmp_capabilities"}')) !== '{"return": {}}') throw new Error('negotiation failed');
    return raw;
  }

  /** The next line from the server; rejects after `timeoutMs` or when the connection closes. */
  next(timeoutMs = 2000): Promise<string> {
    return this.lines.next(timeoutMs);
  }

  /** The next line parsed as JSON. */
  async nextJson(timeoutMs = 2000): Promise<Record<string, unknown>> {
    return JSON.parse(await this.next(timeoutMs)) as Record<string, unknown>;
  }

  /** Resolves true if no line arrives within `ms`. */
  async quietFor(ms: number): Promise<boolean> {
    try {
      await this.next(ms);
      return false;
    } catch {
      return true;
    }
  }

  /** Writes raw text. */
  write(text: string | Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(text, (e) => (e ? reject(e) : resolve())));
  }

  /** Writes `text` and returns the next line. */
  async request(text: string): Promise<string> {
    await this.write(text);
    return this.next();
  }

  /** Drops the connection. */
  destroy(): void {
    this.socket.destroy();
  }
}
