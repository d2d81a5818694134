// Bytes in, bytes out: no node:* imports here, so this runs in a browser too.
export { ByteReader } from './reader.js';
export { ByteWriter } from './writer.js';
export { ChunkedSource, pullFromIterable, pullFromReadable } from './chunked-source.js';
export type { PullSource, ChunkedSourceOptions } from './chunked-source.js';
export { forEachNonZeroRun } from './non-zero-runs.js';
export { formatQemuJson, QemuJsonWriter, qemuJsonString } from './qemu-json.js';
export { formatMigrationUri, formatSocketAddress, parseMigrationUri, parseSocketAddress } from './address.js';
export type { MigrationUri, SocketAddress } from './address.js';
