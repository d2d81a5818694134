// Helpers for interpreter tests: save a state to bytes plus its VMDESCRIPTION text, load bytes back.
import assert from 'node:assert/strict';
import { ByteReader, ByteWriter, loadState, QemuJsonWriter, saveState, type AnyVmsd, type LoadContext } from '../../src/index.js';
import type { VmdescRules } from '../../src/vmstate/index.js';

/**
 * Saves twice: with the description (as `rules` say, QEMU 7.2's by default) and without (which skips
 * describing and reuses cached text); both must give the same bytes.
 */
export function save(vmsd: AnyVmsd, state: object, version?: number, rules?: VmdescRules): { bytes: number[]; desc: string } {
  const w = new ByteWriter(16);
  const desc = new QemuJsonWriter();
  desc.startObject();
  saveState(w, vmsd, state, desc, version, rules);
  desc.endObject();
  const bare = new ByteWriter(16);
  saveState(bare, vmsd, state, undefined, version, rules);
  assert.deepEqual([...bare.peek()], [...w.peek()], 'the same bytes with and without the description');
  return { bytes: [...w.peek()], desc: desc.toString() };
}

export function load<S extends object>(vmsd: AnyVmsd, bytes: number[] | Uint8Array, version: number, state: S = {} as S, peer?: LoadContext['peer']): S {
  const r = new ByteReader(bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes));
  loadState(r, vmsd, state, version, peer);
  if (r.remaining !== 0) throw new Error(`${r.remaining} bytes left after load`);
  return state;
}
