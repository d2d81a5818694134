/**
 * migrate-incoming: starts listening for an incoming migration on a VM started with `-incoming defer`.
 *
 *   -> {"execute": "migrate-incoming", "arguments": {"uri": "tcp:0.0.0.0:4444"}}
 *   <- {"return": {}}
 */
import { checkArguments } from '../arguments.js';
import type { QmpCommand } from '../command.js';

/** The migrate-incoming command. */
export const migrateIncoming: QmpCommand = {
  name: 'migrate-incoming',
  run(vm, args) {
    checkArguments(args, { uri: { type: 'str' } });
    vm.migrateIncoming(args.uri as string);
  },
};
