/**
 * query-migrate-parameters: every migration parameter the VM implements, with its value.
 *
 *   -> {"execute": "query-migrate-parameters"}
 *   <- {"return": {"max-bandwidth": 134217728, "downtime-limit": 300, ...}}
 */
import { checkArguments } from '../arguments.js';
import type { QmpCommand } from '../command.js';

/** The query-migrate-parameters command. */
export const queryMigrateParameters: QmpCommand = {
  name: 'query-migrate-parameters',
  run(vm, args) {
    checkArguments(args, {});
    return vm.queryParameters();
  },
};
