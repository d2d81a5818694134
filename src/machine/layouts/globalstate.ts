/**
 * QEMU's "globalstate" section (migration/global_state.c): the run state of the source at switch-over,
 * a NUL-terminated name in a 100-byte buffer. The destination resumes the guest only if it was running.
 */
import { buffer, defineVmsd, u32, type StateOf } from '../../vmstate/index.js';

/** RUN_STATE name buffer size in QEMU's GlobalState. */
const RUNSTATE_SIZE = 100;

export const globalStateVmsd = defineVmsd({
  name: 'globalstate',
  version: 1,
  fields: [u32('size'), buffer('runstate', RUNSTATE_SIZE)],
});

export type GlobalState = StateOf<typeof globalStateVmsd>;

/** A global state holding `runstate` (e.g. "running", "paused"). */
export function newGlobalState(runstate = 'running'): GlobalState {
  const s: GlobalState = { size: 0, runstate: new Uint8Array(RUNSTATE_SIZE) };
  setRunState(s, runstate);
  return s;
}

/** Stores a run state name as QEMU does: size counts the terminating NUL. */
export function setRunState(s: GlobalState, runstate: string): void {
  const bytes = new TextEncoder().encode(runstate);
  s.runstate.fill(0);
  s.runstate.set(bytes.subarray(0, RUNSTATE_SIZE - 1));
  s.size = Math.min(bytes.length, RUNSTATE_SIZE - 1) + 1;
}

/** The run state name a global state holds. */
export function runStateOf(s: GlobalState): string {
  const end = s.runstate.indexOf(0);
  return new TextDecoder().decode(s.runstate.subarray(0, end < 0 ? s.runstate.length : end));
}
