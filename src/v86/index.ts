// v86 (the x86 emulator in JavaScript and WebAssembly) as vmstate sees it: its save_state() file read
// and written byte for byte, each of its devices as a vmstate description, and a whole machine's state
// as save entries that QEMU's stream format carries.
export { readV86State, writeV86State, V86_STATE_MAGIC, V86_STATE_VERSION } from './state-file.js';
export type { V86Map, V86TypedArray, V86Value } from './state-file.js';
export { v86Entries, V86_MACHINE_TYPE, V86_RAM_BLOCK } from './v86-registry.js';
export type { V86Entries } from './v86-registry.js';
export { V86_DEVICES } from './devices.js';
export { float64, type V86Device } from './slots.js';
