/**
 * x-vmstate-query-workload (vmstate's own, hence the x- prefix QEMU uses for such commands): the guest
 * workload's step, RAM hash and device registers, so both ends of a migration can be compared.
 *
 *   -> {"execute": "x-vmstate-query-workload"}
 *   <- {"return": {"step": 42, "ram-hash": "9f86...", "engines": "0000:00:03.0:00.0:1:..."}}
 */
import { checkArguments } from '../arguments.js';
import type { QmpCommand } from '../command.js';
import { QmpError } from '../vm-control.js';

/** The x-vmstate-query-workload command. */
export const xVmstateQueryWorkload: QmpCommand = {
  name: 'x-vmstate-query-workload',
  run(vm, args) {
    checkArguments(args, {});
    if (!vm.queryWorkload) throw new QmpError('CommandNotFound', 'The command x-vmstate-query-workload has not been found');
    return vm.queryWorkload();
  },
};
