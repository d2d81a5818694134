/**
 * quit: ends the VM process. The reply is written first, then the VM is told to quit, so the client
 * sees `{"return": {}}` before the connection drops (as with QEMU).
 *
 *   -> {"execute": "quit"}
 *   <- {"return": {}}
 */
import { checkArguments } from '../arguments.js';
import type { QmpCommand } from '../command.js';

/** The quit command. */
export const quit: QmpCommand = {
  name: 'quit',
  run(_vm, args) {
    checkArguments(args, {});
  },
  afterReply(vm) {
    vm.quit();
  },
};
