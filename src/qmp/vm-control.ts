/**
 * What the QMP commands drive: the running VM, seen only through this interface. The VM process
 * implements it; the QMP server and its commands use nothing else, so they run against any VM (or a
 * fake one in tests).
 */
import { VmstateError } from '../errors.js';

/** The error classes QMP replies carry (QEMU's `QapiErrorClass`, the subset vmstate uses). */
export type QmpErrorClass = 'GenericError' | 'CommandNotFound' | 'DeviceNotFound' | 'KVMMissingCap';

/** A QMP error: becomes `{"error": {"class": errorClass, "desc": message}}` in the reply. */
export class QmpError extends VmstateError {
  readonly code = 'QMP' as const;

  constructor(
    readonly errorClass: QmpErrorClass,
    message: string,
  ) {
    super(message, { class: errorClass, desc: message });
  }
}

/** A migration capability and whether it is on (QEMU's `MigrationCapabilityStatus`). */
export interface MigrationCapabilityStatus {
  /** QEMU's `MigrationCapability` name, e.g. `events`. */
  readonly capability: string;
  /** Whether the capability is enabled. */
  readonly state: boolean;
}

/** The VM as the QMP commands see it. Methods report refusals by throwing QmpError. */
export interface VmControl {
  /** The run state: one of QEMU's `RunState` names ('running', 'paused', 'postmigrate', 'inmigrate', 'prelaunch', 'finish-migrate'). */
  queryStatus(): { status: string; running: boolean };
  /** Pauses the guest; emits STOP. */
  stop(): void;
  /** Resumes the guest; emits RESUME. */
  cont(): void;
  /** Ends the VM process. Called after the reply to `quit` has been written. */
  quit(): void;
  /** Starts an outgoing migration to `uri` in the background; throws QmpError on a bad uri or when already migrating. */
  migrate(uri: string): void;
  /** Starts listening for an incoming migration on `uri`; only valid in 'inmigrate' with `-incoming defer`. */
  migrateIncoming(uri: string): void;
  /** Cancels the outgoing migration, if any. */
  migrateCancel(): void;
  /**
   * QEMU's `MigrationInfo`: status, total-time, downtime, setup-time, expected-downtime, and ram {transferred,
   * remaining, total, duplicate, normal, normal-bytes, dirty-sync-count, mbps, pages-per-second, dirty-pages-rate};
   * `{}` when no migration has run.
   */
  queryMigrate(): Record<string, unknown>;
  /**
   * Sets migration parameters. Receives only the members present in the request, already type-checked
   * against QEMU's `MigrateSetParameters` (max-bandwidth in bytes/s, downtime-limit in ms, ...); throws
   * QmpError GenericError for a value out of range or a parameter the VM does not implement.
   */
  setParameters(p: Record<string, unknown>): void;
  /** QEMU's `MigrationParameters`: every parameter the VM implements, with its current value. */
  queryParameters(): Record<string, unknown>;
  /** Turns migration capabilities on or off (names already checked against QEMU's `MigrationCapability`); at least `events`. */
  setCapabilities(caps: MigrationCapabilityStatus[]): void;
  /** Every capability the VM implements, with its state. */
  queryCapabilities(): MigrationCapabilityStatus[];
  /**
   * Subscribes to the VM's events: STOP, RESUME, MIGRATION {status}, MIGRATION_PASS {pass}. The QMP server
   * filters MIGRATION and MIGRATION_PASS by the `events` capability itself. Returns the unsubscribe function.
   */
  onEvent(listener: (event: string, data?: Record<string, unknown>) => void): () => void;
  /**
   * Creates a user object (tls-creds-x509, authz-simple, authz-list) from object-add's arguments, already
   * checked against the type's properties; throws QmpError for a duplicate id or unusable values.
   * Optional; object-add is CommandNotFound without it.
   */
  objectAdd?(props: Record<string, unknown>): void;
  /** Deletes a user object; throws QmpError when there is none with that id. Optional, as objectAdd. */
  objectDel?(id: string): void;
  /**
   * vmstate's own: what a migration must carry over, to compare both sides (step, RAM hash, device
   * registers). Optional; `x-vmstate-query-workload` is CommandNotFound without it.
   */
  queryWorkload?(): Record<string, unknown>;
}
