/**
 * QEMU's version rules for incoming state (migration/vmstate.c vmstate_load_state, savevm.c
 * vmstate_load): a section or subsection loads when its version lies between the local description's
 * minimum_version_id and version_id.
 */
import { LoadError } from '../errors.js';

/** Throws LoadError, naming `path`, unless `incoming` lies in [minVersion, version]. */
export function checkIncomingVersion(incoming: number, local: { readonly version: number; readonly minVersion: number }, path: string): void {
  if (incoming > local.version) {
    throw new LoadError(`incoming version_id ${incoming} is too new for local version_id ${local.version}`, path, { incoming, local: local.version });
  }
  if (incoming < local.minVersion) {
    throw new LoadError(`incoming version_id ${incoming} is too old for local minimum_version_id ${local.minVersion}`, path, {
      incoming,
      local: local.minVersion,
    });
  }
}
