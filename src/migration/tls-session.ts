/**
 * TLS over a migration's socket, both ends, with Node's TLS (OpenSSL). The stream itself is unchanged:
 * TLS only wraps the connection, as QEMU's `tls-creds` does.
 *
 * Source (client): after the TCP or unix connect,
 *   1. handshake with the client credentials: this end's certificate when it has one;
 *   2. with verify-peer, the server's certificate must chain to ca-cert.pem, be valid now, and name the
 *      host (`tls-hostname`, else the host of the URI);
 *   3. only then does the stream go out.
 * Destination (server): for every connection accepted while waiting,
 *   1. handshake with the server credentials, asking for the client's certificate;
 *   2. with verify-peer, the client must have sent a certificate that chains to ca-cert.pem and is valid
 *      now; with `tls-authz`, its subject's distinguished name (written as QEMU writes it, attributes in
 *      certificate order: `C=GB,O=Example,CN=client.example.com`) must be allowed;
 *   3. a connection that fails any step is closed before one byte of the stream is read, and the
 *      destination keeps waiting; the first that passes carries the migration.
 * The destination speaks TLS 1.2 at most. A TLS 1.3 server sends session tickets after the handshake
 * (OpenSSL always does, and Node cannot turn them off); a QEMU source never reads its migration socket,
 * so they stay unread there, and its close then resets the connection, dropping the end of the stream.
 * TLS 1.2 sends them within the handshake, which the client reads.
 */
import type { Socket } from 'node:net';
import { isIP } from 'node:net';
import { checkServerIdentity, connect as tlsConnect, createServer as createTlsServer, type PeerCertificate, type TLSSocket } from 'node:tls';
import type { X509Certificate } from 'node:crypto';
import { IoError } from '../errors.js';
import type { Authz } from './authz.js';
import type { TlsCredsX509 } from './tls-credentials.js';

/** TLS for an outgoing migration. */
export interface TlsClientOptions {
  /** Credentials with endpoint client. */
  readonly creds: TlsCredsX509;
  /** The name the server's certificate must carry. */
  readonly hostname: string;
}

/** TLS for an incoming migration. */
export interface TlsServerOptions {
  /** Credentials with endpoint server. */
  readonly creds: TlsCredsX509;
  /** Who may connect, asked with the client certificate's distinguished name. Defaults to anyone the CA signed. */
  readonly authz?: Authz;
  /** Told of every connection refused, with the peer's address and why; the destination waits on. */
  readonly onRejected?: (peer: string, reason: string) => void;
}

/** Runs the client handshake over a connected socket; resolves with the TLS socket to send the stream on. */
export function startTlsClient(socket: Socket, o: TlsClientOptions): Promise<TLSSocket> {
  const verify = o.creds.verifyPeer;
  return new Promise((resolve, reject) => {
    const tls = tlsConnect({
      socket,
      ...o.creds.secureOptions,
      // SNI carries names only, never addresses (RFC 6066).
      servername: isIP(o.hostname) ? undefined : o.hostname,
      rejectUnauthorized: verify,
      checkServerIdentity: (_host: string, cert: PeerCertificate) => (verify ? checkServerIdentity(o.hostname, cert) : undefined),
    });
    const fail = (e: Error) => {
      tls.destroy();
      reject(new IoError(`TLS handshake with ${o.hostname} failed: ${e.message}`, { hostname: o.hostname }, e));
    };
    tls.once('error', fail);
    tls.once('secureConnect', () => {
      tls.off('error', fail);
      resolve(tls);
    });
  });
}

/** QEMU's words for OpenSSL's verification failures (qcrypto_tls_session_check_certificate). */
const VERIFY_REASONS: Readonly<Record<string, string>> = {
  CERT_HAS_EXPIRED: 'The certificate has expired',
  CERT_NOT_YET_VALID: 'The certificate is not yet activated',
  CERT_REVOKED: 'The certificate has been revoked',
  UNABLE_TO_GET_ISSUER_CERT: "The certificate hasn't got a known issuer",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "The certificate hasn't got a known issuer",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "The certificate hasn't got a known issuer",
  SELF_SIGNED_CERT_IN_CHAIN: "The certificate hasn't got a known issuer",
  DEPTH_ZERO_SELF_SIGNED_CERT: "The certificate hasn't got a known issuer",
};

/**
 * A subject as QEMU's authz sees it (GnuTLS's gnutls_x509_crt_get_dn): `TYPE=VALUE` per attribute in
 * certificate order, joined by commas, RFC 4514 escapes in values.
 */
export function distinguishedName(cert: X509Certificate): string {
  // Node prints one attribute a line, in certificate order, values escaped as RFC 2253 says.
  return cert.subject
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => (line.startsWith('emailAddress=') ? `EMAIL=${line.slice('emailAddress='.length)}` : line))
    .join(',');
}

/** Why a handshaken client may not migrate in, or null when it may. */
function refusal(tls: TLSSocket, o: TlsServerOptions): string | null {
  if (!o.creds.verifyPeer) return null;
  const cert = tls.getPeerX509Certificate();
  if (!cert) return 'No certificate peers';
  if (!tls.authorized) {
    const code = String(tls.authorizationError ?? '');
    return VERIFY_REASONS[code] ?? `The certificate is not trusted (${code})`;
  }
  if (o.authz) {
    const dn = distinguishedName(cert);
    if (!o.authz.isAllowed(dn)) return `TLS x509 authz check for ${dn} is denied`;
  }
  return null;
}

/** Resolves true once bytes wait to be read on `tls` (none taken), false if it ends or fails first. */
function streamBegins(tls: TLSSocket): Promise<boolean> {
  // Errors after this go to whoever reads the stream; none may go unheard meanwhile.
  tls.on('error', () => undefined);
  return new Promise((resolve) => {
    const settle = (begun: boolean) => {
      tls.off('readable', onReadable);
      tls.off('end', onGone);
      tls.off('close', onGone);
      resolve(begun);
    };
    // read(0) takes nothing; with nothing buffered it lets a pending end be told ('end').
    const onReadable = () => (tls.readableLength > 0 ? settle(true) : tls.read(0));
    const onGone = () => settle(false);
    tls.on('readable', onReadable);
    tls.on('end', onGone);
    tls.on('close', onGone);
  });
}

/** Accepts TLS clients over raw sockets handed to `offer`; `accepted` settles with the first that passes. */
export interface TlsAcceptor {
  /** Starts the handshake on a socket just accepted. */
  offer(socket: Socket): void;
  /** The first client that passed every check and began its stream. */
  readonly accepted: Promise<TLSSocket>;
}

/** The server side of TLS for one incoming migration. */
export function tlsAcceptor(o: TlsServerOptions): TlsAcceptor {
  let done = false;
  let resolveAccepted: (tls: TLSSocket) => void = () => undefined;
  const accepted = new Promise<TLSSocket>((resolve) => (resolveAccepted = resolve));
  return {
    offer(socket) {
      if (done) {
        socket.destroy();
        return;
      }
      // Named now: a socket that failed its handshake has lost its address.
      const peer = socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : 'a unix socket peer';
      const refuse = (tls: TLSSocket, why: string) => {
        o.onRejected?.(peer, why);
        tls.destroy();
      };
      // A server per connection, never listened on: the socket is injected with 'connection', as Node's
      // documentation allows. Its checks are made here, so a refused client is named, not dropped silently.
      // TLS 1.2 at most: see the top of this file.
      const server = createTlsServer({ ...o.creds.secureOptions, maxVersion: 'TLSv1.2', requestCert: o.creds.verifyPeer, rejectUnauthorized: false });
      server.once('secureConnection', (tls: TLSSocket) => {
        const why = done ? 'another source was accepted first' : refusal(tls, o);
        if (why !== null) return refuse(tls, why);
        // A client may still give up once the handshake is over (a TLS 1.2 client checks the server's
        // certificate only then): it is the migration's source once its stream begins.
        void streamBegins(tls).then((begun) => {
          if (!begun) return refuse(tls, 'it closed the connection before sending a stream');
          if (done) return refuse(tls, 'another source was accepted first');
          done = true;
          resolveAccepted(tls);
        });
      });
      server.once('tlsClientError', (e: Error, tls: TLSSocket) => refuse(tls, `TLS handshake failed: ${e.message}`));
      server.emit('connection', socket);
    },
    accepted,
  };
}
