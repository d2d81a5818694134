/**
 * stop: pauses the guest; the VM emits STOP.
 *
 *   -> {"execute": "stop"}
 *   <- {"return": {}}
 */
import { checkArguments } from '../arguments.js';
import type { QmpCommand } from '../command.js';

/** The stop command. */
export const stop: QmpCommand = {
  name: 'stop',
  run(vm, args) {
    checkArguments(args, {});
    vm.stop();
  },
};
