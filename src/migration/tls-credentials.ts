/**
 * X.509 credentials for TLS migrations, as QEMU's `tls-creds-x509` object takes them: a folder holding
 * PEM files under fixed names, and which end of the connection they are for.
 *
 *   dir/ca-cert.pem                      the CA that signed the peer's certificate      (always required)
 *   dir/ca-crl.pem                       revoked certificates                          (server, optional)
 *   dir/server-cert.pem, server-key.pem  this end's certificate and key                (server, required)
 *   dir/client-cert.pem, client-key.pem  this end's certificate and key                (client, optional)
 *
 * `verify-peer` (on unless turned off, as in QEMU) makes a server require a certificate from the client
 * signed by the CA, and a client check the server's certificate against the CA and the host name. The
 * files are read once, when the object is created; crypto is Node's (OpenSSL), nothing home-made.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { UsageError } from '../errors.js';

/** Which end of a TLS connection credentials are for (QEMU's `QCryptoTLSCredsEndpoint`). */
export type TlsEndpoint = 'server' | 'client';

/** The properties of a `tls-creds-x509` object that vmstate reads. */
export interface TlsCredsX509Options {
  /** The object's id, which `tls-creds` names. */
  readonly id: string;
  /** The folder holding the PEM files. */
  readonly dir: string;
  /** Defaults to client, as in QEMU. */
  readonly endpoint?: TlsEndpoint;
  /** Defaults to true, as in QEMU. */
  readonly verifyPeer?: boolean;
}

/** PEM file names in a credentials folder (QEMU's QCRYPTO_TLS_CREDS_X509_* names). */
export const TLS_FILES = {
  caCert: 'ca-cert.pem',
  caCrl: 'ca-crl.pem',
  serverCert: 'server-cert.pem',
  serverKey: 'server-key.pem',
  clientCert: 'client-cert.pem',
  clientKey: 'client-key.pem',
} as const;

/** strerror's words for the failures a credentials file meets most, as QEMU reports them. */
const ERRNO_TEXT: Readonly<Record<string, string>> = {
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  EISDIR: 'Is a directory',
  ENOTDIR: 'Not a directory',
};

/** Loaded `tls-creds-x509` credentials. */
export class TlsCredsX509 {
  /** The object's id. */
  readonly id: string;
  /** The folder the files were read from. */
  readonly dir: string;
  /** Which end these credentials are for. */
  readonly endpoint: TlsEndpoint;
  /** Whether the peer's certificate is checked (and, for a server, required). */
  readonly verifyPeer: boolean;
  /** What Node's TLS takes: the CA, the CRL, and this end's certificate and key when it has them. */
  readonly secureOptions: Readonly<SecureContextOptions>;
  /** Whether this end has a certificate to present. */
  readonly hasCertificate: boolean;

  private constructor(o: TlsCredsX509Options, secureOptions: SecureContextOptions, hasCertificate: boolean) {
    this.id = o.id;
    this.dir = o.dir;
    this.endpoint = o.endpoint ?? 'client';
    this.verifyPeer = o.verifyPeer ?? true;
    this.secureOptions = secureOptions;
    this.hasCertificate = hasCertificate;
  }

  /** Reads the folder; a missing required file or one OpenSSL cannot use is a UsageError naming it. */
  static load(o: TlsCredsX509Options): TlsCredsX509 {
    const server = (o.endpoint ?? 'client') === 'server';
    const read = (name: string, required: boolean): Buffer | undefined => {
      const file = path.join(o.dir, name);
      try {
        return readFileSync(file);
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        if (!required && err.code === 'ENOENT') return undefined;
        const why = ERRNO_TEXT[err.code ?? ''] ?? err.message;
        throw new UsageError(`Unable to access credentials ${file}: ${why}`, { id: o.id, path: file });
      }
    };
    const ca = read(TLS_FILES.caCert, true);
    const crl = server ? read(TLS_FILES.caCrl, false) : undefined;
    const cert = read(server ? TLS_FILES.serverCert : TLS_FILES.clientCert, server);
    const key = read(server ? TLS_FILES.serverKey : TLS_FILES.clientKey, server);
    const pair = cert !== undefined && key !== undefined;
    const secureOptions: SecureContextOptions = { ca, ...(crl ? { crl } : {}), ...(pair ? { cert, key } : {}) };
    try {
      createSecureContext(secureOptions); // OpenSSL's verdict on the files now, not at the first connection
      return new TlsCredsX509(o, secureOptions, pair);
    } catch (e) {
      throw new UsageError(`Cannot load the credentials in ${o.dir}: ${(e as Error).message}`, { id: o.id, dir: o.dir });
    }
  }
}
