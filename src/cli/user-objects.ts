/**
 * The VM process's user objects (QEMU's /objects container): made with -object or object-add, found by
 * id when a migration names them in tls-creds and tls-authz.
 */
import { AuthzList, AuthzSimple, TlsCredsX509, type Authz, type AuthzPolicy, type AuthzRule, type TlsEndpoint } from '../migration/index.js';
import { QmpError } from '../qmp/index.js';

type UserObject = TlsCredsX509 | Authz;

const generic = (message: string) => new QmpError('GenericError', message);

/** The objects of one VM process, by id. */
export class UserObjects {
  private readonly objects = new Map<string, UserObject>();

  /** Creates an object from object-add's arguments (already checked against its type's properties). */
  add(props: Readonly<Record<string, unknown>>): void {
    const id = props.id as string;
    if (!/^[A-Za-z][A-Za-z0-9_.-]*$/.test(id)) throw generic(`Parameter 'id' expects an identifier`);
    if (this.objects.has(id)) throw generic(`attempt to add duplicate property '${id}' to object (type 'container')`);
    this.objects.set(id, create(props));
  }

  /** Deletes the object `id`. */
  del(id: string): void {
    if (!this.objects.delete(id)) throw generic(`object '${id}' not found`);
  }

  /** The credentials `id` names, for `endpoint`; throws QmpError with QEMU's messages otherwise. */
  creds(id: string, endpoint: TlsEndpoint): TlsCredsX509 {
    const o = this.objects.get(id);
    if (!o) throw generic(`No TLS credentials with id '${id}'`);
    if (!(o instanceof TlsCredsX509)) throw generic(`Object with id '${id}' is not TLS credentials`);
    if (o.endpoint !== endpoint) throw generic(`Expected TLS credentials for a ${endpoint} endpoint`);
    return o;
  }

  /** The authorization object `id` names. */
  authz(id: string): Authz {
    const o = this.objects.get(id);
    if (!o || o instanceof TlsCredsX509) throw generic(`Cannot find QAuthZ object ID ${id}`);
    return o;
  }
}

function create(props: Readonly<Record<string, unknown>>): UserObject {
  const id = props.id as string;
  switch (props['qom-type']) {
    case 'authz-simple':
      return new AuthzSimple(id, props.identity as string);
    case 'authz-list':
      return new AuthzList(id, (props.rules ?? []) as AuthzRule[], (props.policy ?? 'deny') as AuthzPolicy);
    default: {
      for (const unsupported of ['priority', 'passwordid'] as const) {
        if (props[unsupported] !== undefined) throw generic(`Property '${unsupported}' of tls-creds-x509 is not supported by vmstate`);
      }
      if (typeof props.dir !== 'string') throw generic(`tls-creds-x509 '${id}' needs a dir holding its certificates`);
      try {
        return TlsCredsX509.load({ id, dir: props.dir, endpoint: props.endpoint as TlsEndpoint | undefined, verifyPeer: props['verify-peer'] as boolean | undefined });
      } catch (e) {
        throw generic((e as Error).message);
      }
    }
  }
}
