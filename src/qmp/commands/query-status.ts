/**
 * query-status: the VM's run state.
 *
 *   -> {"execute": "query-status"}
 *   <- {"return": {"status": "running", "singlestep": false, "running": true}}
 *
 * `singlestep` is always false; QEMU 7.2 still reports it.
 */
import { checkArguments } from '../arguments.js';
import type { QmpCommand } from '../command.js';

/** The query-status command. */
export const queryStatus: QmpCommand = {
  name: 'query-status',
  run(vm, args) {
    checkArguments(args, {});
    const { status, running } = vm.queryStatus();
    return { status, singlestep: false, running };
  },
};
