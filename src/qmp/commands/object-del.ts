/**
 * object-del: deletes a user object made with object-add or -object.
 *
 *   -> {"execute": "object-del", "arguments": {"id": "tls0"}}
 *   <- {"return": {}}
 */
import { checkArguments } from '../arguments.js';
import type { QmpCommand } from '../command.js';
import { QmpError } from '../vm-control.js';

/** The object-del command. */
export const objectDel: QmpCommand = {
  name: 'object-del',
  run(vm, args) {
    if (!vm.objectDel) throw new QmpError('CommandNotFound', 'The command object-del has not been found');
    checkArguments(args, { id: { type: 'str' } });
    vm.objectDel(args.id as string);
  },
};
