/**
 * migrate-set-parameters: sets migration parameters; only the members given change.
 *
 *   -> {"execute": "migrate-set-parameters", "arguments": {"max-bandwidth": 33554432, "downtime-limit": 300}}
 *   <- {"return": {}}
 *
 * The members and their types are QEMU 7.2's `MigrateSetParameters` (block-bitmap-mapping aside), so a
 * type error reads as QEMU's; whether a value is in range, and whether the VM implements a parameter
 * at all, is the VM's to say.
 */
import { checkArguments, type ArgSpec } from '../arguments.js';
import type { QmpCommand } from '../command.js';

/** QEMU 7.2's MigrateSetParameters members, in declaration order, all optional. */
const PARAMETERS: ArgSpec = {
  'announce-initial': { type: 'size', optional: true },
  'announce-max': { type: 'size', optional: true },
  'announce-rounds': { type: 'size', optional: true },
  'announce-step': { type: 'size', optional: true },
  'compress-level': { type: 'uint8', optional: true },
  'compress-threads': { type: 'uint8', optional: true },
  'compress-wait-thread': { type: 'bool', optional: true },
  'decompress-threads': { type: 'uint8', optional: true },
  'throttle-trigger-threshold': { type: 'uint8', optional: true },
  'cpu-throttle-initial': { type: 'uint8', optional: true },
  'cpu-throttle-increment': { type: 'uint8', optional: true },
  'cpu-throttle-tailslow': { type: 'bool', optional: true },
  'tls-creds': { type: 'StrOrNull', optional: true },
  'tls-hostname': { type: 'StrOrNull', optional: true },
  'tls-authz': { type: 'StrOrNull', optional: true },
  'max-bandwidth': { type: 'size', optional: true },
  'downtime-limit': { type: 'uint64', optional: true },
  'x-checkpoint-delay': { type: 'uint32', optional: true },
  'block-incremental': { type: 'bool', optional: true },
  'multifd-channels': { type: 'uint8', optional: true },
  'xbzrle-cache-size': { type: 'size', optional: true },
  'max-postcopy-bandwidth': { type: 'size', optional: true },
  'max-cpu-throttle': { type: 'uint8', optional: true },
  'multifd-compression': { type: { enum: ['none', 'zlib', 'zstd'] }, optional: true },
  'multifd-zlib-level': { type: 'uint8', optional: true },
  'multifd-zstd-level': { type: 'uint8', optional: true },
};

/** The migrate-set-parameters command. */
export const migrateSetParameters: QmpCommand = {
  name: 'migrate-set-parameters',
  run(vm, args) {
    checkArguments(args, PARAMETERS);
    vm.setParameters({ ...args });
  },
};
