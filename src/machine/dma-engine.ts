/**
 * dma-engine: a PCI device of our own (QEMU has no equivalent) that copies a buffer from one IOVA to
 * another through its IOMMU and computes a checksum of what it read. Its registers are its saved state;
 * a DMA that the IOMMU refuses ends in status FAULT, never in an exception.
 */
import { GuestMemoryError } from '../ram/index.js';
import { defineVmsd, struct, u32, u64, type StateOf } from '../vmstate/index.js';
import { DmaFault } from './iommu.js';
import { newPciDeviceState, pciDeviceVmsd } from './layouts/pci.js';
import type { PciFunction } from './pci.js';

/** STATUS register values. */
export const DmaStatus = { IDLE: 0, DONE: 1, FAULT: 2 } as const;

/** Largest transfer one command may ask for. */
const DMA_MAX_LEN = 1 << 20;

export const dmaEngineVmsd = defineVmsd({
  name: 'dma-engine',
  version: 1,
  fields: [
    struct('parent_obj', pciDeviceVmsd),
    u64('src'),
    u64('dst'),
    u32('len'),
    u32('status'),
    u32('checksum'),
    u32('completed'),
    u32('faults'),
    u64('fault_iova'),
  ],
});

export type DmaEngineState = StateOf<typeof dmaEngineVmsd>;

/** How the engine reaches memory: translate through the IOMMU that owns its bus now, then guest RAM. */
export interface DmaPort {
  translate(dev: PciFunction, iova: number, write: boolean): number;
  read(phys: number, len: number): Uint8Array;
  write(phys: number, bytes: Uint8Array): void;
}

export class DmaEngine {
  readonly state: DmaEngineState;

  constructor(
    readonly fn: PciFunction,
    private readonly port: DmaPort,
  ) {
    const pci = newPciDeviceState(fn.config.length === 4096);
    // The saved config space is the function's live config space: loading it updates the device.
    this.state = {
      parent_obj: { ...pci, config: fn.config },
      src: 0n,
      dst: 0n,
      len: 0,
      status: DmaStatus.IDLE,
      checksum: 0,
      completed: 0,
      faults: 0,
      fault_iova: 0n,
    };
  }

  /** Programs a transfer (the driver's register writes). */
  program(src: number, dst: number, len: number): void {
    this.state.src = BigInt(src);
    this.state.dst = BigInt(dst);
    this.state.len = Math.min(len, DMA_MAX_LEN);
  }

  /** Runs the programmed transfer page by page; ends DONE with the checksum, or FAULT. */
  run(): void {
    const s = this.state;
    const src = Number(s.src);
    const dst = Number(s.dst);
    let sum = 0x811c9dc5; // FNV-1a, 32-bit
    try {
      for (let off = 0; off < s.len; ) {
        const n = Math.min(4096 - ((src + off) % 4096), 4096 - ((dst + off) % 4096), s.len - off);
        const data = this.port.read(this.port.translate(this.fn, src + off, false), n);
        for (let i = 0; i < data.length; i++) sum = Math.imul(sum ^ data[i], 0x01000193) >>> 0;
        this.port.write(this.port.translate(this.fn, dst + off, true), data);
        off += n;
      }
      s.status = DmaStatus.DONE;
      s.checksum = sum;
      s.completed++;
    } catch (e) {
      if (!(e instanceof DmaFault || e instanceof GuestMemoryError)) throw e;
      s.status = DmaStatus.FAULT;
      s.checksum = 0;
      s.faults++;
      s.fault_iova = BigInt(e instanceof DmaFault ? e.iova : e.address);
    }
  }
}
