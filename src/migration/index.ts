// Live migration: the status machine, transports, and the precopy source and destination.
export { canTransition, isFinal, MIGRATION_TRANSITIONS, MigrationStateMachine } from './status.js';
export type { MigrationStatus } from './status.js';
export { connectOutgoing, listenIncoming } from './transport.js';
export { listenAt } from './listen-socket.js';
export type { ByteTransport, IncomingConnection, IncomingEndpoint } from './transport.js';
export { DEFAULT_PARAMETERS, OutgoingMigration } from './outgoing.js';
export type { MigratableVm, MigrationCapabilities, MigrationParameters, OutgoingTls } from './outgoing.js';
export { IncomingMigration } from './incoming.js';
export type { IncomingOptions } from './incoming.js';
export { encodePong, encodeShut, readReturnPathMessage, RpMessage, SourceReturnPath } from './return-path.js';
export type { ReturnPathMessage } from './return-path.js';
export { MigrationError } from './migration-error.js';

// TLS: x509 credentials, who may connect, and the handshakes
export { TLS_FILES, TlsCredsX509 } from './tls-credentials.js';
export type { TlsCredsX509Options, TlsEndpoint } from './tls-credentials.js';
export { AuthzList, AuthzSimple, globMatches } from './authz.js';
export type { Authz, AuthzPolicy, AuthzRule } from './authz.js';
export { distinguishedName } from './tls-session.js';
export type { TlsClientOptions, TlsServerOptions } from './tls-session.js';
export type { MigrationPhase } from './migration-error.js';

// Migration URIs (tcp:, unix:, exec:, file:), as QEMU takes them
export { formatMigrationUri, parseMigrationUri } from '../stream/index.js';
export type { MigrationUri } from '../stream/index.js';
// Standing between a source QEMU and its destination
export { ProxyError, runProxy } from './proxy.js';
export type { ProxyOptions, ProxyResult, ProxyWatch } from './proxy.js';
export type { LiveStreamStats } from './stream-watch.js';
