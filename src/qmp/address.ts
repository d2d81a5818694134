/** QMP socket addresses: `unix:PATH` or `tcp:HOST:PORT`, as QEMU's `-qmp` takes them (see stream/address.ts). */
import { parseSocketAddress, type SocketAddress } from '../stream/index.js';

/** Parses a QMP address; the UsageError starts with `QMP address '...'`. */
export function parseQmpAddress(address: string): SocketAddress {
  return parseSocketAddress(address, `QMP address '${address}'`);
}
