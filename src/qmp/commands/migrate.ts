/**
 * migrate: starts an outgoing migration in the background; progress is read with query-migrate and
 * reported by MIGRATION events.
 *
 *   -> {"execute": "migrate", "arguments": {"uri": "tcp:10.0.0.2:4444"}}
 *   <- {"return": {}}
 *
 * `detach` is accepted and ignored, as QEMU does (migration always runs in the background).
 */
import { checkArguments } from '../arguments.js';
import type { QmpCommand } from '../command.js';

/** The migrate command. */
export const migrate: QmpCommand = {
  name: 'migrate',
  run(vm, args) {
    checkArguments(args, { uri: { type: 'str' }, detach: { type: 'bool', optional: true } });
    vm.migrate(args.uri as string);
  },
};
