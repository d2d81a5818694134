/**
 * object-add: creates a user object, the objects TLS migrations use. The properties sit beside
 * `qom-type` and `id`, as QEMU 7.2's flat `ObjectOptions` union has them:
 *
 *   -> {"execute": "object-add", "arguments": {"qom-type": "tls-creds-x509", "id": "tls0",
 *        "dir": "/etc/pki/qemu", "endpoint": "server", "verify-peer": true}}
 *   <- {"return": {}}
 *   -> {"execute": "object-add", "arguments": {"qom-type": "authz-list", "id": "auth0", "policy": "deny",
 *        "rules": [{"match": "CN=*.example.com,*", "policy": "allow", "format": "glob"}]}}
 *   <- {"return": {}}
 *
 * vmstate knows three types: tls-creds-x509, authz-simple and authz-list; their members and types are
 * QEMU's (TlsCredsX509Properties, AuthZSimpleProperties, AuthZListProperties).
 */
import { checkArguments, type ArgSpec } from '../arguments.js';
import type { QmpCommand } from '../command.js';
import { QmpError } from '../vm-control.js';

/** Each object type's properties, besides qom-type and id. */
export const OBJECT_PROPERTIES: Readonly<Record<string, ArgSpec>> = {
  'authz-list': {
    policy: { type: { enum: ['deny', 'allow'] }, optional: true },
    rules: {
      type: {
        list: {
          struct: {
            match: { type: 'str' },
            policy: { type: { enum: ['deny', 'allow'] } },
            format: { type: { enum: ['exact', 'glob'] }, optional: true },
          },
        },
      },
      optional: true,
    },
  },
  'authz-simple': { identity: { type: 'str' } },
  'tls-creds-x509': {
    'verify-peer': { type: 'bool', optional: true },
    dir: { type: 'str', optional: true },
    endpoint: { type: { enum: ['client', 'server'] }, optional: true },
    priority: { type: 'str', optional: true },
    loaded: { type: 'bool', optional: true },
    'sanity-check': { type: 'bool', optional: true },
    passwordid: { type: 'str', optional: true },
  },
};

/** Checks object-add's arguments: the type first, then that type's properties. */
export function checkObjectArguments(args: Readonly<Record<string, unknown>>): Readonly<Record<string, unknown>> {
  const head: ArgSpec = { 'qom-type': { type: { enum: Object.keys(OBJECT_PROPERTIES) } }, id: { type: 'str' } };
  const { 'qom-type': type, id, ...props } = args;
  checkArguments({ ...(type === undefined ? {} : { 'qom-type': type }), ...(id === undefined ? {} : { id }) }, head);
  checkArguments(props, OBJECT_PROPERTIES[type as string]);
  return args;
}

/** The object-add command. */
export const objectAdd: QmpCommand = {
  name: 'object-add',
  run(vm, args) {
    if (!vm.objectAdd) throw new QmpError('CommandNotFound', 'The command object-add has not been found');
    checkObjectArguments(args);
    vm.objectAdd({ ...args });
  },
};
