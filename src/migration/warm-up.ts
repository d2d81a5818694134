/**
 * The warm-up before a switch-over: while the guest still runs, every device is saved into a scratch
 * buffer that is thrown away. It compiles the save's hot paths and fills the description cache, so the
 * save with the guest stopped that follows is short. V8 compiles a function well only after it has run a
 * while, so a machine with few devices is saved several times over.
 */
import type { SaveEntry } from '../savevm/index.js';
import { ByteWriter, QemuJsonWriter } from '../stream/index.js';
import { saveState, type AnyVmsd, type VmdescRules } from '../vmstate/index.js';

/** Device saves a warm-up aims at, and the most rounds it takes to get there. */
const WARM_UP_SAVES = 400;
const WARM_UP_MAX_ROUNDS = 20;

/**
 * Saves `devices` (StreamSaver.devicesToSave()) about WARM_UP_SAVES times in all, described by `rules`
 * (the dialect's, whose cache the real save reads), and keeps nothing.
 */
export function warmUp(devices: Iterable<readonly [SaveEntry, AnyVmsd]>, rules: VmdescRules): void {
  const scratch = new ByteWriter(1 << 20);
  // A hook may have effects: only the real save runs it.
  const hookless = [...devices].filter(([, vmsd]) => !vmsd.preSave && !vmsd.postSave);
  const rounds = Math.min(WARM_UP_MAX_ROUNDS, Math.ceil(WARM_UP_SAVES / Math.max(1, hookless.length)));
  for (let round = 0; round < rounds; round++) {
    const desc = new QemuJsonWriter();
    for (const [e, vmsd] of hookless) {
      desc.startObject();
      saveState(scratch, vmsd, e.state as object, desc, vmsd.version, rules);
      desc.endObject();
      scratch.reset();
    }
  }
}
