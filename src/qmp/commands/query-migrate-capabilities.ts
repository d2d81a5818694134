/**
 * query-migrate-capabilities: every migration capability the VM implements, with its state.
 *
 *   -> {"execute": "query-migrate-capabilities"}
 *   <- {"return": [{"capability": "events", "state": false}, ...]}
 */
import { checkArguments } from '../arguments.js';
import type { QmpCommand } from '../command.js';

/** The query-migrate-capabilities command. */
export const queryMigrateCapabilities: QmpCommand = {
  name: 'query-migrate-capabilities',
  run(vm, args) {
    checkArguments(args, {});
    return vm.queryCapabilities();
  },
};
