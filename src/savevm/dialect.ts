/**
 * The QEMU releases whose streams vmstate writes ("dialects"), and what each writes differently. The
 * bytes of device state are the same; the framing around them and the VMDESCRIPTION are not:
 *
 *   7.2    header, configuration, START/PART/END, FULL, EOF, trailer {"page_size", "devices"}
 *   10.0   the trailer starts with "configuration", the configuration record as a description
 *          (8.2 on); machine types from 10.0 on send the command SWITCHOVER_START just before the END
 *          sections (send-switchover-start); devices are described by 10.0's rules (VmdescRules)
 *
 * A release is added here as one more record; everything that writes a stream reads these fields.
 */
import { VMDESC_RULES_10_0, VMDESC_RULES_7_2, type VmdescRules } from '../vmstate/index.js';

/** What one QEMU release writes differently. */
export interface QemuDialect {
  /** The release ("7.2", "10.0"), which is also the version its newest machine types end in (pc-q35-10.0). */
  readonly version: string;
  /** The VMDESCRIPTION describes the configuration record, as its first member "configuration" (8.2 on). */
  readonly describesConfiguration: boolean;
  /**
   * Machine types of this version or later send MIG_CMD_SWITCHOVER_START before the END sections; older
   * ones turn it off (send-switchover-start). Null when the release never sends it.
   */
  readonly switchoverStartSince: string | null;
  /** How device state is described. */
  readonly vmdesc: VmdescRules;
}

/** Every dialect vmstate writes, by release, oldest first. */
export const QEMU_DIALECTS: Readonly<Record<string, QemuDialect>> = Object.freeze({
  '7.2': Object.freeze({ version: '7.2', describesConfiguration: false, switchoverStartSince: null, vmdesc: VMDESC_RULES_7_2 }),
  '10.0': Object.freeze({ version: '10.0', describesConfiguration: true, switchoverStartSince: '10.0', vmdesc: VMDESC_RULES_10_0 }),
});

/** The dialect written unless another is asked for: QEMU 7.2's. */
export const DEFAULT_DIALECT: QemuDialect = QEMU_DIALECTS['7.2'];

/** The newest release vmstate writes the streams of. */
export const NEWEST_DIALECT: QemuDialect = Object.values(QEMU_DIALECTS).reduce((a, b) => (compareVersions(a.version, b.version) >= 0 ? a : b));

/** The version a machine type name ends in ("pc-q35-9.2" gives 9.2), or null ("virt", an alias of the newest). */
export function machineTypeVersion(machineType: string): string | null {
  return /-(\d+\.\d+)$/.exec(machineType)?.[1] ?? null;
}

/** Orders release versions ("7.2" < "10.0"): negative, zero or positive. */
export function compareVersions(a: string, b: string): number {
  const [x, y] = [a, b].map((v) => v.split('.').map(Number));
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * The oldest dialect that has a machine type (a release has the machine types up to its own version);
 * null for a name without a version or one newer than every dialect.
 */
export function dialectForMachineType(machineType: string): QemuDialect | null {
  const v = machineTypeVersion(machineType);
  if (v === null) return null;
  return Object.values(QEMU_DIALECTS).find((q) => compareVersions(q.version, v) >= 0) ?? null;
}

/** True when a QEMU of `dialect` has the machine type (its version is not newer than the release). */
export function hasMachineType(dialect: QemuDialect, machineType: string): boolean {
  const v = machineTypeVersion(machineType);
  return v === null || compareVersions(v, dialect.version) <= 0;
}

/** Whether a stream of `dialect` for `machineType` carries SWITCHOVER_START (unversioned names are the newest). */
export function sendsSwitchoverStart(dialect: QemuDialect, machineType: string | undefined): boolean {
  const since = dialect.switchoverStartSince;
  if (since === null) return false;
  const v = machineType === undefined ? null : machineTypeVersion(machineType);
  return v === null || compareVersions(v, since) >= 0;
}
