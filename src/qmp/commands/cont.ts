/**
 * cont: resumes the guest; the VM emits RESUME.
 *
 *   -> {"execute": "cont"}
 *   <- {"return": {}}
 */
import { checkArguments } from '../arguments.js';
import type { QmpCommand } from '../command.js';

/** The cont command. */
export const cont: QmpCommand = {
  name: 'cont',
  run(vm, args) {
    checkArguments(args, {});
    vm.cont();
  },
};
