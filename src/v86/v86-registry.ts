/**
 * A whole v86 machine's state (the tree of readV86State) as save entries: the CPU's registers, each
 * device a section of its own description (devices.ts), and guest RAM as the RAM block "pc.ram" of the
 * iterative "ram" handler, as QEMU saves it. v86 keeps RAM packed in its state file (index 77: the
 * non-zero pages in order, index 78: a bitmap of which pages they are); the block holds it unpacked, and
 * packing it again gives v86's bytes back. The CPU state's indices and what sits at each are those of
 * CPU.get_state in v86's src/cpu.js.
 */
import { SaveError } from '../errors.js';
import { RamHandler } from '../ram/index.js';
import { SaveRegistry } from '../savevm/index.js';
import {
  acpiDevice,
  apicDevice,
  cpuDevice,
  dmaDevice,
  fdcDevice,
  ideDevice,
  ioapicDevice,
  ne2kDevice,
  parallelDevice,
  pciDevice,
  picDevice,
  pitDevice,
  ps2Device,
  rtcDevice,
  sb16Device,
  uartDevice,
  vgaDevice,
  vmwareMouseDevice,
} from './devices.js';
import type { V86Device } from './slots.js';
import type { V86Value } from './state-file.js';

/** The machine type a v86 stream's configuration names. */
export const V86_MACHINE_TYPE = 'v86-pc';
/** The RAM block that holds guest memory. */
export const V86_RAM_BLOCK = 'pc.ram';

const PAGE = 4096;
/** Where the CPU's state array keeps packed memory and its page bitmap. */
const PACKED_MEMORY = 77;
const PAGE_BITMAP = 78;
/** Where it keeps the two PICs: the master's array, whose index 5 holds the slave's. */
const PIC = 60;
const PIC_SLAVE = 5;

/** A device at an index of the CPU's state array, saved as idstr#instance. */
interface DeviceSlot {
  readonly index: number;
  readonly idstr: string;
  readonly instance: number;
  readonly device: V86Device;
}

const DEVICE_SLOTS: readonly DeviceSlot[] = [
  { index: 46, idstr: 'v86-apic', instance: 0, device: apicDevice },
  { index: 63, idstr: 'v86-ioapic', instance: 0, device: ioapicDevice },
  { index: 48, idstr: 'v86-pci', instance: 0, device: pciDevice },
  { index: 47, idstr: 'v86-rtc', instance: 0, device: rtcDevice },
  { index: 49, idstr: 'v86-dma', instance: 0, device: dmaDevice },
  { index: 50, idstr: 'v86-acpi', instance: 0, device: acpiDevice },
  { index: 52, idstr: 'v86-vga', instance: 0, device: vgaDevice },
  { index: 53, idstr: 'v86-ps2', instance: 0, device: ps2Device },
  { index: 54, idstr: 'v86-uart', instance: 0, device: uartDevice },
  { index: 79, idstr: 'v86-uart', instance: 1, device: uartDevice },
  { index: 80, idstr: 'v86-uart', instance: 2, device: uartDevice },
  { index: 81, idstr: 'v86-uart', instance: 3, device: uartDevice },
  { index: 55, idstr: 'v86-fdc', instance: 0, device: fdcDevice },
  { index: 85, idstr: 'v86-ide', instance: 0, device: ideDevice },
  { index: 58, idstr: 'v86-pit', instance: 0, device: pitDevice },
  { index: 59, idstr: 'v86-ne2k', instance: 0, device: ne2kDevice },
  { index: 61, idstr: 'v86-sb16', instance: 0, device: sb16Device },
  { index: 89, idstr: 'v86-vmware-mouse', instance: 0, device: vmwareMouseDevice },
  { index: 90, idstr: 'v86-parallel', instance: 0, device: parallelDevice },
  { index: 91, idstr: 'v86-parallel', instance: 1, device: parallelDevice },
];

/** Indices that hold devices not described yet: a state that has one is refused, never half-saved. */
const NOT_DESCRIBED: Readonly<Record<number, string>> = {
  45: 'virtio-9p',
  56: 'an IDE CD-ROM in the pre-2023 layout',
  57: 'an IDE disk in the pre-2023 layout',
  82: 'virtio-console',
  83: 'virtio-net',
  84: 'virtio-balloon',
};

/** A v86 machine's state as save entries, and the way back to v86's tree once they have been loaded. */
export interface V86Entries {
  readonly registry: SaveRegistry;
  /** Guest RAM, unpacked. */
  readonly ram: Uint8Array;
  /** The tree as the entries now hold it. */
  toTree(): V86Value[];
}

/**
 * Save entries holding `tree`'s state (a copy: loading into them does not change `tree`). A device that
 * has no description, or a value that does not fit its description, is SaveError.
 */
export function v86Entries(tree: readonly V86Value[]): V86Entries {
  for (const [index, what] of Object.entries(NOT_DESCRIBED)) {
    if (tree[Number(index)] !== null && tree[Number(index)] !== undefined) {
      throw new SaveError(`v86 state index ${index} holds ${what}, which has no description yet`, 'v86');
    }
  }
  const ram = unpackMemory(tree);
  const registry = new SaveRegistry();
  const cpuTree = tree.map((v, i) => (DEVICE_SLOTS.some((d) => d.index === i) || i === PIC || i === PACKED_MEMORY || i === PAGE_BITMAP ? null : v));
  const states: { slot: DeviceSlot; state: Record<string, unknown> }[] = [];
  const cpuState = cpuDevice.toState(cpuTree, 'v86-cpu');
  registry.register({ idstr: 'v86-cpu', vmsd: cpuDevice.vmsd, state: cpuState });
  const pics = picStates(tree[PIC]);
  pics.forEach((state, instanceId) => registry.register({ idstr: 'v86-pic', instanceId, vmsd: picDevice.vmsd, state }));
  for (const slot of DEVICE_SLOTS) {
    const value = tree[slot.index];
    if (value === null || value === undefined) continue;
    const state = slot.device.toState(value, `${slot.idstr}#${slot.instance}`);
    registry.register({ idstr: slot.idstr, instanceId: slot.instance, vmsd: slot.device.vmsd, state });
    states.push({ slot, state });
  }
  // What each device needs loaded before it (links.ts), among the entries this PC has.
  for (const { slot } of states) {
    for (const s of slot.device.suppliers) {
      if (registry.find(s)) registry.addDependency(s, { idstr: slot.idstr, instanceId: slot.instance }, s.reason);
    }
  }
  registry.register({ idstr: 'ram', handler: new RamHandler([{ name: V86_RAM_BLOCK, data: ram }], { pagesPerIteration: 1024 }) });
  return {
    registry,
    ram,
    toTree() {
      const out = cpuDevice.toTree(cpuState) as V86Value[];
      for (const { slot, state } of states) out[slot.index] = slot.device.toTree(state);
      if (pics.length > 0) {
        const master = picDevice.toTree(pics[0]) as V86Value[];
        master[PIC_SLAVE] = pics.length > 1 ? picDevice.toTree(pics[1]) : null;
        out[PIC] = master;
      }
      const { packed, bitmap } = packMemory(ram);
      out[PACKED_MEMORY] = packed;
      out[PAGE_BITMAP] = bitmap;
      return out;
    },
  };
}

/** The master's and (if any) the slave's state from CPU.get_state_pic's array. */
function picStates(value: V86Value | undefined): Record<string, unknown>[] {
  if (value === null || value === undefined) return [];
  if (!Array.isArray(value)) return [picDevice.toState(value, 'v86-pic#0')];
  const master = value.map((v, i) => (i === PIC_SLAVE ? null : v));
  const slave = value[PIC_SLAVE];
  return [picDevice.toState(master, 'v86-pic#0'), ...(slave === null || slave === undefined ? [] : [picDevice.toState(slave, 'v86-pic#1')])];
}

/** Guest RAM from the packed pages and their bitmap (v86's CPU.unpack_memory). */
function unpackMemory(tree: readonly V86Value[]): Uint8Array {
  const size = tree[0];
  const packed = tree[PACKED_MEMORY];
  const bitmap = tree[PAGE_BITMAP];
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size <= 0 || size % PAGE !== 0 || size > 2 ** 32) {
    throw new SaveError(`memory_size ${String(size)} is not a whole number of pages up to 4 GiB`, 'v86-cpu');
  }
  if (!(packed instanceof Uint8Array) || !(bitmap instanceof Uint8Array) || bitmap.length !== Math.ceil(size / PAGE / 8)) {
    throw new SaveError('the packed memory or its page bitmap is missing or of the wrong size', 'ram');
  }
  const ram = new Uint8Array(size);
  let next = 0;
  for (let page = 0; page < size / PAGE; page++) {
    if ((bitmap[page >> 3] >> (page & 7)) & 1) {
      if ((next + 1) * PAGE > packed.length) throw new SaveError('the page bitmap marks more pages than the packed memory holds', 'ram');
      ram.set(packed.subarray(next * PAGE, (next + 1) * PAGE), page * PAGE);
      next++;
    }
  }
  if (next * PAGE !== packed.length) throw new SaveError('the packed memory holds more pages than its bitmap marks', 'ram');
  return ram;
}

/** The non-zero pages of `ram` in order, and a bitmap of which they are (v86's CPU.pack_memory). */
function packMemory(ram: Uint8Array): { packed: Uint8Array; bitmap: Uint8Array } {
  const pages = ram.length / PAGE;
  const bitmap = new Uint8Array(Math.ceil(pages / 8));
  const words = new Int32Array(ram.buffer, ram.byteOffset, ram.length >> 2);
  const nonZero: number[] = [];
  for (let page = 0; page < pages; page++) {
    for (let i = page * (PAGE >> 2), end = i + (PAGE >> 2); i < end; i++) {
      if (words[i] !== 0) {
        nonZero.push(page);
        bitmap[page >> 3] |= 1 << (page & 7);
        break;
      }
    }
  }
  const packed = new Uint8Array(nonZero.length * PAGE);
  nonZero.forEach((page, i) => packed.set(ram.subarray(page * PAGE, (page + 1) * PAGE), i * PAGE));
  return { packed, bitmap };
}
