// The JSON control plane (QMP): the VM interface the commands drive, the server, the commands and a client.

// The VM behind QMP
export { QmpError } from './vm-control.js';
export type { MigrationCapabilityStatus, QmpErrorClass, VmControl } from './vm-control.js';

// Server
export { QMP_VERSION, startQmpServer } from './server.js';
export type { QmpServer, QmpServerOptions } from './server.js';
export { MAX_REQUEST_BYTES } from './request-splitter.js';

// Commands
export { qmpCommands } from './commands/index.js';
export { objectAdd, OBJECT_PROPERTIES } from './commands/object-add.js';
export type { QmpCommand } from './command.js';
export { checkArguments } from './arguments.js';
export type { ArgSpec, ArgType } from './arguments.js';

// Client
export { QmpClient } from './client.js';
export type { QmpClientOptions, QmpEvent, QmpGreeting } from './client.js';

// Addresses, and QEMU's JSON as every message is written
export { parseQmpAddress } from './address.js';
export { formatQemuJson, formatSocketAddress } from '../stream/index.js';
export type { SocketAddress } from '../stream/index.js';
