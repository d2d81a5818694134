/**
 * What the machine needs of an IOMMU, whatever its architecture: a device-side translate, the guest-driver
 * side that programs it (as an OS driver would, through guest RAM and registers), and its saved state.
 * Each unit owns a range of bus numbers (an ACPI DMAR scope, an IORT mapping); a device belongs to the
 * unit whose range holds its bus number at the moment of the DMA.
 */
import type { GuestRam } from '../ram/index.js';
import type { AnyVmsd, LoadContext } from '../vmstate/index.js';
import type { PciFunction } from './pci.js';

/** A DMA the IOMMU refused: no context or stream entry, no mapping, or translation off for that device. */
export class DmaFault extends Error {
  constructor(
    readonly device: string,
    readonly requesterId: number,
    readonly iova: number,
    readonly reason: string,
  ) {
    super(`${device} (RID ${requesterId.toString(16).padStart(4, '0')}): DMA to IOVA 0x${iova.toString(16)} faulted: ${reason}`);
  }
}

/** Hands out guest-physical memory for IOMMU tables (the guest's own allocator). */
export interface GuestAllocator {
  /** `bytes` of zeroed guest memory aligned to `align`; returns its guest-physical address. */
  alloc(bytes: number, align: number): number;
}

/** Everything a unit reaches in the machine. */
export interface IommuContext {
  readonly ram: GuestRam;
  /** Every PCI function that can master DMA (bridges do not); the unit picks those on its buses. */
  readonly functions: () => readonly PciFunction[];
}

export interface IommuModel {
  readonly id: string;
  /** First and last bus number this unit translates for. */
  readonly busRange: readonly [number, number];
  /** Section idstr and description (QEMU's layout where QEMU has the device). */
  readonly idstr: string;
  readonly vmsd: AnyVmsd;
  readonly state: object;

  /** Device side: the guest-physical address for `iova`, or a DmaFault. */
  translate(dev: PciFunction, iova: number, write: boolean): number;

  /** Guest driver: allocate and program the unit's tables, then enable translation. */
  driverInit(alloc: GuestAllocator): void;
  /** Guest driver: map `len` bytes at `iova` to `phys` in the domain of `dev` (creating it on first use). */
  driverMap(alloc: GuestAllocator, dev: PciFunction, iova: number, phys: number, len: number): void;
  /** Guest driver: invalidate the unit's caches after changing its tables. */
  driverFlush(): void;
}

/**
 * Called by a unit's post-load for each device before it reads the device's bus number: the machine
 * reads the bridges above the device through the registry, so the load-order guard sees a bridge that
 * has not been loaded yet.
 */
export type BridgeToucher = (dev: PciFunction, ctx: LoadContext) => void;

/** True if `bus` lies in the unit's range. */
export function ownsBus(unit: IommuModel, bus: number): boolean {
  return bus >= unit.busRange[0] && bus <= unit.busRange[1];
}
