/**
 * migrate_cancel: cancels the outgoing migration (QEMU spells this one with an underscore).
 *
 *   -> {"execute": "migrate_cancel"}
 *   <- {"return": {}}
 */
import { checkArguments } from '../arguments.js';
import type { QmpCommand } from '../command.js';

/** The migrate_cancel command. */
export const migrateCancel: QmpCommand = {
  name: 'migrate_cancel',
  run(vm, args) {
    checkArguments(args, {});
    vm.migrateCancel();
  },
};
