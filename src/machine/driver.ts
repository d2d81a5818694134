/**
 * The guest workload: what a small OS would do with this machine, deterministically. It numbers the
 * buses (firmware), programs every IOMMU (tables in guest RAM, then translation on), gives every
 * dma-engine a source and a destination buffer mapped at fixed IOVAs, and then, step after step, fills
 * each source buffer with a pattern and has the engine copy and checksum it through the IOMMU.
 *
 * All of the driver's own state lives in guest RAM (the control block at CONTROL_BLOCK), so a snapshot
 * carries it and a restored machine goes on exactly where the source stopped.
 *
 * Control block (little-endian):
 *   +0  u32 magic "VMST"   +4 u32 step   +8 u64 next free guest-physical address   +16 u32 engine count
 *   +20 u32 buffer size    +24 per engine, in path order: u64 source, u64 destination (guest-physical)
 */
import { UsageError } from '../errors.js';
import type { GuestRam } from '../ram/index.js';
import type { DmaEngine } from './dma-engine.js';
import type { GuestAllocator, IommuModel } from './iommu.js';
import type { PciFunction } from './pci.js';

export const CONTROL_BLOCK = 0x1000;
const MAGIC = 0x54534d56; // "VMST"
/** Where the driver's allocations start (below is the control block's room). */
const ALLOC_BASE = 0x100000;
/** The IOVAs every engine uses: the same numbers in every domain. */
export const SRC_IOVA = 0x10000000;
const DST_IOVA = 0x20000000;
/** Bytes each engine copies per step. Defaults to one page. */
const BUFFER_SIZE = 4096;

/** One engine's result for one step. */
export interface DmaResult {
  readonly engine: string;
  readonly status: number;
  readonly checksum: number;
}

/** What the driver needs from the machine. */
export interface DriverHost {
  readonly ram: GuestRam;
  readonly engines: readonly DmaEngine[];
  readonly iommus: readonly IommuModel[];
  enumerate(): void;
  iommuFor(fn: PciFunction): IommuModel | undefined;
}

/** A bump allocator whose cursor lives in the control block. */
function allocator(ram: GuestRam): GuestAllocator {
  return {
    alloc(bytes, align) {
      const next = ram.readU64(CONTROL_BLOCK + 8);
      const addr = Math.ceil(next / align) * align;
      ram.writeU64(CONTROL_BLOCK + 8, addr + bytes);
      ram.write(addr, new Uint8Array(bytes)); // zeroed, as a fresh allocation must be
      return addr;
    },
  };
}

/** Firmware and driver start-up. */
export function bootDriver(host: DriverHost): void {
  const ram = host.ram;
  host.enumerate();
  ram.writeU32(CONTROL_BLOCK, MAGIC);
  ram.writeU32(CONTROL_BLOCK + 4, 0);
  ram.writeU64(CONTROL_BLOCK + 8, ALLOC_BASE);
  ram.writeU32(CONTROL_BLOCK + 16, host.engines.length);
  ram.writeU32(CONTROL_BLOCK + 20, BUFFER_SIZE);
  const alloc = allocator(ram);
  for (const unit of host.iommus) unit.driverInit(alloc);
  host.engines.forEach((engine, i) => {
    const src = alloc.alloc(BUFFER_SIZE, 4096);
    const dst = alloc.alloc(BUFFER_SIZE, 4096);
    ram.writeU64(CONTROL_BLOCK + 24 + i * 16, src);
    ram.writeU64(CONTROL_BLOCK + 32 + i * 16, dst);
    const unit = host.iommuFor(engine.fn);
    if (!unit) throw new UsageError(`${engine.fn.path}: no IOMMU translates for bus ${engine.fn.bus}`);
    unit.driverMap(alloc, engine.fn, SRC_IOVA, src, BUFFER_SIZE);
    unit.driverMap(alloc, engine.fn, DST_IOVA, dst, BUFFER_SIZE);
  });
  for (const unit of host.iommus) unit.driverFlush();
}

/** The step counter in the control block (0 if the driver never booted). */
export function driverStep(ram: GuestRam): number {
  return ram.readU32(CONTROL_BLOCK) === MAGIC ? ram.readU32(CONTROL_BLOCK + 4) : 0;
}

/** One step of the workload: every engine copies a fresh pattern. */
export function runStep(host: DriverHost): DmaResult[] {
  const ram = host.ram;
  if (ram.readU32(CONTROL_BLOCK) !== MAGIC) throw new UsageError('the driver has not booted: no control block in guest RAM');
  const step = ram.readU32(CONTROL_BLOCK + 4);
  const size = ram.readU32(CONTROL_BLOCK + 20);
  const pattern = new Uint8Array(size);
  const results = host.engines.map((engine, i) => {
    fillPattern(pattern, step, i);
    ram.write(ram.readU64(CONTROL_BLOCK + 24 + i * 16), pattern);
    engine.program(SRC_IOVA, DST_IOVA, size);
    engine.run();
    return { engine: engine.fn.path, status: engine.state.status, checksum: engine.state.checksum };
  });
  ram.writeU32(CONTROL_BLOCK + 4, step + 1);
  return results;
}

/** xorshift32 bytes seeded by step and engine: different for every transfer, the same on every run. */
function fillPattern(out: Uint8Array, step: number, engine: number): void {
  let x = (Math.imul(step + 1, 0x9e3779b1) ^ Math.imul(engine + 1, 0x85ebca6b)) >>> 0 || 1;
  for (let i = 0; i < out.length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
    out[i + 1] = (x >>> 8) & 0xff;
    out[i + 2] = (x >>> 16) & 0xff;
    out[i + 3] = (x >>> 24) & 0xff;
  }
}
