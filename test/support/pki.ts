// Certificates for the TLS tests, made afresh in a folder per run with Debian's openssl (never
// committed): a CA, a server certificate for localhost and 127.0.0.1, and client credentials folders,
// good and bad, laid out as tls-creds-x509's `dir` wants them (ca-cert.pem, {server,client}-{cert,key}.pem).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** The subject of the good client certificate, as QEMU's authz writes it (certificate order). */
export const CLIENT_DN = 'C=GB,O=Example,CN=client.example.com';
/** The subject of a client certificate the same CA signed, which authz lists refuse. */
export const INTRUDER_DN = 'C=GB,O=Example,CN=intruder.example.com';

/** Credentials folders, each ready to be a tls-creds-x509 `dir`. */
export interface Pki {
  /** endpoint=server: the destination's. */
  readonly server: string;
  /** endpoint=client: a certificate with CLIENT_DN. */
  readonly client: string;
  /** endpoint=client: only the CA, no certificate of its own. */
  readonly noCert: string;
  /** endpoint=client: a certificate from another CA. */
  readonly otherCa: string;
  /** endpoint=client: CLIENT_DN's certificate, expired yesterday. */
  readonly expired: string;
  /** endpoint=client: a good certificate with INTRUDER_DN. */
  readonly intruder: string;
}

function openssl(cwd: string, args: readonly string[]): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function subjectOf(dn: string): string {
  return '/' + dn.split(',').join('/');
}

/** Makes the CA, certificates and folders under `dir`. */
export function makePki(dir: string): Pki {
  const work = path.join(dir, 'pki-work');
  fs.mkdirSync(work, { recursive: true });
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  const makeCa = (name: string) =>
    openssl(work, ['req', '-x509', ...newKey, '-keyout', `${name}-key.pem`, '-out', `${name}-cert.pem`, '-days', '2', '-subj', `/O=vmstate tests/CN=${name}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  makeCa('ca');
  makeCa('other-ca');
  const sign = (name: string, subject: string, ca: string, days: number, ext: string) => {
    fs.writeFileSync(path.join(work, `${name}.ext`), `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n${ext}\n`);
    openssl(work, ['req', ...newKey, '-keyout', `${name}-key.pem`, '-out', `${name}.csr`, '-subj', subject]);
    openssl(work, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}-cert.pem`, '-CAkey', `${ca}-key.pem`, '-CAcreateserial',
      '-out', `${name}-cert.pem`, '-days', String(days), '-extfile', `${name}.ext`]);
  };
  sign('server', '/O=vmstate tests/CN=localhost', 'ca', 2, 'extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1');
  const clientExt = 'extendedKeyUsage=clientAuth';
  sign('client', subjectOf(CLIENT_DN), 'ca', 2, clientExt);
  sign('other', subjectOf(CLIENT_DN), 'other-ca', 2, clientExt);
  // OpenSSL 3.0's x509 takes a negative -days: valid until yesterday.
  sign('expired', subjectOf(CLIENT_DN), 'ca', -1, clientExt);
  sign('intruder', subjectOf(INTRUDER_DN), 'ca', 2, clientExt);

  const folder = (name: string, files: Readonly<Record<string, string>>) => {
    const d = path.join(dir, name);
    fs.mkdirSync(d, { recursive: true });
    fs.copyFileSync(path.join(work, 'ca-cert.pem'), path.join(d, 'ca-cert.pem'));
    for (const [to, from] of Object.entries(files)) fs.copyFileSync(path.join(work, from), path.join(d, to));
    return d;
  };
  const clientFolder = (name: string, from: string) => folder(name, { 'client-cert.pem': `${from}-cert.pem`, 'client-key.pem': `${from}-key.pem` });
  return {
    server: folder('server', { 'server-cert.pem': 'server-cert.pem', 'server-key.pem': 'server-key.pem' }),
    client: clientFolder('client', 'client'),
    noCert: folder('no-cert', {}),
    otherCa: clientFolder('other-ca', 'other'),
    expired: clientFolder('expired', 'expired'),
    intruder: clientFolder('intruder', 'intruder'),
  };
}
