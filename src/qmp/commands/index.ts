// Every QMP command the server dispatches (qmp_capabilities is the server's own).
import type { QmpCommand } from '../command.js';
import { cont } from './cont.js';
import { migrate } from './migrate.js';
import { migrateCancel } from './migrate-cancel.js';
import { migrateIncoming } from './migrate-incoming.js';
import { migrateSetCapabilities } from './migrate-set-capabilities.js';
import { migrateSetParameters } from './migrate-set-parameters.js';
import { objectAdd } from './object-add.js';
import { objectDel } from './object-del.js';
import { queryMigrate } from './query-migrate.js';
import { queryMigrateCapabilities } from './query-migrate-capabilities.js';
import { queryMigrateParameters } from './query-migrate-parameters.js';
import { queryStatus } from './query-status.js';
import { quit } from './quit.js';
import { stop } from './stop.js';
import { xVmstateQueryWorkload } from './x-vmstate-query-workload.js';

export {
  cont,
  migrate,
  migrateCancel,
  migrateIncoming,
  migrateSetCapabilities,
  migrateSetParameters,
  objectAdd,
  objectDel,
  queryMigrate,
  queryMigrateCapabilities,
  queryMigrateParameters,
  queryStatus,
  quit,
  stop,
  xVmstateQueryWorkload,
};

/** All commands the server dispatches. */
export const qmpCommands: readonly QmpCommand[] = [
  queryStatus,
  stop,
  cont,
  quit,
  migrate,
  migrateIncoming,
  migrateCancel,
  queryMigrate,
  migrateSetParameters,
  queryMigrateParameters,
  migrateSetCapabilities,
  queryMigrateCapabilities,
  objectAdd,
  objectDel,
  xVmstateQueryWorkload,
];
