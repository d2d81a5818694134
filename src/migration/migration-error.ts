/**
 * A failed migration: the phase it failed in and the failure under it. The message is what query-migrate
 * reports as `error-desc`.
 */
import { VmstateError } from '../errors.js';

/**
 * Where a migration was when it failed: QEMU's MigrationStatus names for the source (setup, active,
 * device), and `load` for the destination reading the stream into its devices (qemu_loadvm_state).
 */
export type MigrationPhase = 'setup' | 'active' | 'device' | 'load';

/** A migration failed in `phase` because of `cause`. */
export class MigrationError extends VmstateError {
  readonly code = 'MIGRATION' as const;

  /** The message is the cause's, after `prefix` (e.g. QEMU's "Failed to connect: "). */
  constructor(
    readonly phase: MigrationPhase,
    cause: unknown,
    prefix = '',
  ) {
    super(prefix + (cause instanceof Error ? cause.message : String(cause)), { phase }, { cause });
  }
}
