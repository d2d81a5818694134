/**
 * migrate-set-capabilities: turns migration capabilities on or off.
 *
 *   -> {"execute": "migrate-set-capabilities",
 *       "arguments": {"capabilities": [{"capability": "events", "state": true}]}}
 *   <- {"return": {}}
 *
 * Capability names are checked against QEMU 7.2's `MigrationCapability` enum; whether the VM
 * implements one, or allows the change now (not while migrating), is the VM's to say.
 */
import { checkArguments } from '../arguments.js';
import type { QmpCommand } from '../command.js';
import type { MigrationCapabilityStatus } from '../vm-control.js';

/** QEMU 7.2's MigrationCapability names. */
const CAPABILITIES: readonly string[] = [
  'xbzrle',
  'rdma-pin-all',
  'auto-converge',
  'zero-blocks',
  'compress',
  'events',
  'postcopy-ram',
  'x-colo',
  'release-ram',
  'block',
  'return-path',
  'pause-before-switchover',
  'multifd',
  'dirty-bitmaps',
  'postcopy-blocktime',
  'late-block-activate',
  'x-ignore-shared',
  'validate-uuid',
  'background-snapshot',
  'zero-copy-send',
  'postcopy-preempt',
];

/** The migrate-set-capabilities command. */
export const migrateSetCapabilities: QmpCommand = {
  name: 'migrate-set-capabilities',
  run(vm, args) {
    checkArguments(args, {
      capabilities: {
        type: { list: { struct: { capability: { type: { enum: CAPABILITIES } }, state: { type: 'bool' } } } },
      },
    });
    const caps = (args.capabilities as MigrationCapabilityStatus[]).map(({ capability, state }) => ({ capability, state }));
    vm.setCapabilities(caps);
  },
};
