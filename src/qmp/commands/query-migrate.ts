/**
 * query-migrate: the migration's status and statistics (QEMU's MigrationInfo), `{}` before any migration.
 *
 *   -> {"execute": "query-migrate"}
 *   <- {"return": {"status": "active", "total-time": 1200, "ram": {"transferred": 123456, ...}, ...}}
 */
import { checkArguments } from '../arguments.js';
import type { QmpCommand } from '../command.js';

/** The query-migrate command. */
export const queryMigrate: QmpCommand = {
  name: 'query-migrate',
  run(vm, args) {
    checkArguments(args, {});
    return vm.queryMigrate();
  },
};
