/**
 * The shape of one QMP command: its name, its argument check and what it does to the VM.
 */
import type { VmControl } from './vm-control.js';

/** A QMP command the server can dispatch. */
export interface QmpCommand {
  /** The name clients `execute`, e.g. `query-status` or `migrate_cancel`. */
  readonly name: string;
  /** Checks `args` (throwing QmpError GenericError, QEMU's wording) and runs the command; returns the reply's `return` value, `{}` when undefined. */
  run(vm: VmControl, args: Readonly<Record<string, unknown>>): unknown;
  /** Runs once the reply has been written, for commands whose effect would cut the reply off (`quit`). */
  readonly afterReply?: (vm: VmControl) => void;
}
