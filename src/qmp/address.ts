/**
 * QMP socket addresses, written as QEMU's `-qmp` option writes them, without the `server`/`wait` flags:
 *
 *   address = "unix:" PATH                 a unix socket at PATH
 *           | "tcp:" HOST ":" PORT         HOST is a name, an IPv4 address or a bracketed IPv6 address;
 *                                          PORT 0 asks the kernel for a free port (servers only)
 */
import { UsageError } from '../errors.js';

/** A parsed QMP address. */
export type QmpAddress =
  | { readonly kind: 'unix'; readonly path: string }
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number };

/** Parses `unix:PATH` or `tcp:HOST:PORT`; throws UsageError for anything else. */
export function parseQmpAddress(address: string): QmpAddress {
  const bad = (why: string) => new UsageError(`QMP address '${address}': ${why}`, { address });
  if (address.startsWith('unix:')) {
    const path = address.slice('unix:'.length);
    if (!path) throw bad('the unix socket path is empty');
    return { kind: 'unix', path };
  }
  if (address.startsWith('tcp:')) {
    const rest = address.slice('tcp:'.length);
    const colon = rest.lastIndexOf(':');
    if (colon < 0) throw bad('expected tcp:HOST:PORT');
    let host = rest.slice(0, colon);
    const portText = rest.slice(colon + 1);
    if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
    if (!host) throw bad('the host is empty');
    if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) throw bad(`port '${portText}' is not a number from 0 to 65535`);
    return { kind: 'tcp', host, port: Number(portText) };
  }
  throw bad('expected unix:PATH or tcp:HOST:PORT');
}

/** Writes an address back in the `unix:PATH` / `tcp:HOST:PORT` form, bracketing IPv6 hosts. */
export function formatQmpAddress(address: QmpAddress): string {
  if (address.kind === 'unix') return `unix:${address.path}`;
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  return `tcp:${host}:${address.port}`;
}
