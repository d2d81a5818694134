// Helpers for interpreter tests: save a state to bytes plus its VMDESCRIPTION text, load bytes back.
import { ByteReader, ByteWriter, loadState, QemuJsonWriter, saveState, type AnyVmsd, type LoadContext } from '../../src/index.js';

export function save(vmsd: AnyVmsd, state: object, version?: number): { bytes: number[]; desc: string } {
  const w = new ByteWriter(16);
  const desc = new QemuJsonWriter();
  desc.startObject();
  saveState(w, vmsd, state, desc, version);
  desc.endObject();
  return { bytes: [...w.peek()], desc: desc.toString() };
}

export function load<S extends object>(vmsd: AnyVmsd, bytes: number[] | Uint8Array, version: number, state: S = {} as S, peer?: LoadContext['peer']): S {
  const r = new ByteReader(bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes));
  loadState(r, vmsd, state, version, peer);
  if (r.remaining !== 0) throw new Error(`${r.remaining} bytes left after load`);
  return state;
}
