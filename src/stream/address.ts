/**
 * Where a stream goes or comes from, written as QEMU writes it: socket addresses (QMP's `-qmp`, without
 * the `server`/`wait` flags) and the migration URIs built on them.
 *
 *   socket-address = "unix:" PATH             a unix socket at PATH (not empty)
 *                  | "tcp:" HOST ":" PORT     HOST: a name, an IPv4 address, or an IPv6 address in brackets;
 *                                             PORT: 0 to 65535, 0 asking the kernel for a free port (servers)
 *   migration-uri  = socket-address
 *                  | "exec:" COMMAND          the stream goes to the command's stdin, or comes from its stdout
 *                  | "file:" PATH
 *
 * Only parsing: the sockets, files and commands are opened by whoever uses the address.
 */
import { UsageError } from '../errors.js';

/** A parsed socket address. */
export type SocketAddress =
  | { readonly kind: 'unix'; readonly path: string }
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number };

/** A parsed migration URI. */
export type MigrationUri = SocketAddress | { readonly kind: 'exec'; readonly command: string } | { readonly kind: 'file'; readonly path: string };

/** Parses `unix:PATH` or `tcp:HOST:PORT`; the UsageError for anything else starts with `label`, e.g. `QMP address 'x'`. */
export function parseSocketAddress(text: string, label: string): SocketAddress {
  const bad = (why: string) => new UsageError(`${label}: ${why}`, { address: text });
  if (text.startsWith('unix:')) {
    const path = text.slice('unix:'.length);
    if (!path) throw bad('the unix socket path is empty');
    return { kind: 'unix', path };
  }
  if (text.startsWith('tcp:')) {
    const rest = text.slice('tcp:'.length);
    const colon = rest.lastIndexOf(':');
    if (colon < 0) throw bad('expected tcp:HOST:PORT');
    const hostText = rest.slice(0, colon);
    const portText = rest.slice(colon + 1);
    // Unbracketed, "::1:4444" could split anywhere; QEMU's inet_parse refuses it too.
    const m = /^(?:\[([^[\]]*)\]|([^:[\]]*))$/.exec(hostText);
    if (!m) throw bad(`host '${hostText}' is not a name, an IPv4 address or an IPv6 address in brackets`);
    const host = m[1] ?? m[2];
    if (!host) throw bad('the host is empty');
    if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) throw bad(`port '${portText}' is not a number from 0 to 65535`);
    return { kind: 'tcp', host, port: Number(portText) };
  }
  throw bad('expected unix:PATH or tcp:HOST:PORT');
}

/** Writes an address back as parseSocketAddress reads it, bracketing an IPv6 host. */
export function formatSocketAddress(address: SocketAddress): string {
  if (address.kind === 'unix') return `unix:${address.path}`;
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  return `tcp:${host}:${address.port}`;
}

/** Parses a migration URI; the UsageError names the URI and what is wrong. */
export function parseMigrationUri(uri: string): MigrationUri {
  const label = `migration URI ${uri}`;
  const colon = uri.indexOf(':');
  const scheme = colon < 0 ? '' : uri.slice(0, colon);
  const rest = uri.slice(colon + 1);
  switch (scheme) {
    case 'tcp':
    case 'unix':
      return parseSocketAddress(uri, label);
    case 'file':
      if (!rest) throw new UsageError(`${label}: expected file:PATH`, { address: uri });
      return { kind: 'file', path: rest };
    case 'exec':
      if (!rest.trim()) throw new UsageError(`${label}: expected exec:COMMAND`, { address: uri });
      return { kind: 'exec', command: rest };
    default:
      throw new UsageError(`${label}: unknown transport (use tcp:, unix:, exec: or file:)`, { address: uri });
  }
}

/** Writes a migration URI back as parseMigrationUri reads it. */
export function formatMigrationUri(uri: MigrationUri): string {
  switch (uri.kind) {
    case 'exec':
      return `exec:${uri.command}`;
    case 'file':
      return `file:${uri.path}`;
    default:
      return formatSocketAddress(uri);
  }
}
