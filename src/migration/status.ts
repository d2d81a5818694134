/**
 * QEMU's MigrationStatus (qapi/migration.json) as a pure table of allowed transitions, and a small
 * runner that moves between them with compare-and-set, as QEMU's migrate_set_state does, telling
 * listeners (the QMP MIGRATION event) about every change.
 */

/** The statuses vmstate uses, by QEMU's names. */
export type MigrationStatus = 'none' | 'setup' | 'active' | 'device' | 'completed' | 'failed' | 'cancelling' | 'cancelled';

/** Where each status may go next. Precopy: none -> setup -> active -> device -> completed. */
export const MIGRATION_TRANSITIONS: Readonly<Record<MigrationStatus, readonly MigrationStatus[]>> = {
  none: ['setup', 'failed', 'cancelling'],
  setup: ['active', 'failed', 'cancelling'],
  active: ['device', 'completed', 'failed', 'cancelling'],
  device: ['completed', 'failed', 'cancelling'],
  cancelling: ['cancelled', 'failed'],
  completed: [],
  failed: [],
  cancelled: [],
};

/** True if `to` may follow `from`. */
export function canTransition(from: MigrationStatus, to: MigrationStatus): boolean {
  return MIGRATION_TRANSITIONS[from].includes(to);
}

/** True once a migration has ended, one way or another. */
export function isFinal(s: MigrationStatus): boolean {
  return MIGRATION_TRANSITIONS[s].length === 0;
}

export class MigrationStateMachine {
  private current: MigrationStatus = 'none';
  private readonly listeners: ((s: MigrationStatus) => void)[] = [];

  get status(): MigrationStatus {
    return this.current;
  }

  /** Moves from `from` to `to` if the status is still `from` and the table allows it; returns whether it did. */
  transition(from: MigrationStatus, to: MigrationStatus): boolean {
    if (this.current !== from || !canTransition(from, to)) return false;
    this.current = to;
    for (const l of this.listeners) l(to);
    return true;
  }

  /** Calls `listener` with every new status. */
  onChange(listener: (s: MigrationStatus) => void): void {
    this.listeners.push(listener);
  }
}
