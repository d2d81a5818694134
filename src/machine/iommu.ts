/**
 * What the machine needs of an IOMMU, whatever its architecture: a device-side translate, the guest-driver
 * side that programs it (as an OS driver would, through guest RAM and registers), and its saved state.
 * Each unit owns a range of bus numbers (an ACPI DMAR scope, an IORT mapping); a device belongs to the
 * unit whose range holds its bus number at the moment of the DMA.
 */
import { VmstateError } from '../errors.js';
import type { GuestRam } from '../ram/index.js';
import type { AnyVmsd, LoadContext } from '../vmstate/index.js';
import type { PciBridge, PciFunction } from './pci.js';

/** A DMA the IOMMU refused: no context or stream entry, no mapping, or translation off for that device. */
export class DmaFault extends VmstateError {
  readonly code = 'DMA_FAULT' as const;

  constructor(
    readonly device: string,
    readonly requesterId: number,
    readonly iova: number,
    readonly reason: string,
  ) {
    super(`${device} (RID ${requesterId.toString(16).padStart(4, '0')}): DMA to IOVA 0x${iova.toString(16)} faulted: ${reason}`, {
      device,
      requesterId,
      iova,
      reason,
    });
  }
}

/** Hands out guest-physical memory for IOMMU tables (the guest's own allocator). */
export interface GuestAllocator {
  /** `bytes` of zeroed guest memory aligned to `align`; returns its guest-physical address. */
  alloc(bytes: number, align: number): number;
}

/** The DMA masters on one bus: the functions below one bridge (or on the root bus), which share its bus number. */
export interface BusGroup {
  /** The bridge whose secondary bus they sit on; null for the root bus. */
  readonly bridge: PciBridge | null;
  readonly functions: readonly PciFunction[];
}

/** Groups functions by the bus they sit on, in first-seen order. */
export function groupByBus(functions: readonly PciFunction[]): BusGroup[] {
  const groups = new Map<PciBridge | null, PciFunction[]>();
  for (const f of functions) {
    const list = groups.get(f.parent);
    if (list) list.push(f);
    else groups.set(f.parent, [f]);
  }
  return [...groups].map(([bridge, fs]) => ({ bridge, functions: fs }));
}

/** Everything a unit reaches in the machine. */
export interface IommuContext {
  readonly ram: GuestRam;
  /** Every PCI function that can master DMA (bridges do not), by bus; the unit picks those on its buses. */
  readonly busGroups: () => readonly BusGroup[];
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

/**
 * Calls `visit` with each DMA master on the unit's buses and its requester ID, the bus number read live
 * from the bridge above it. A post-load passes `load` and `touch`: the bridges above each bus are then
 * read through the registry first, once per bus, not once per device.
 */
export function forEachDeviceInScope(
  unit: IommuModel,
  groups: readonly BusGroup[],
  visit: (dev: PciFunction, requesterId: number) => void,
  load?: LoadContext,
  touch?: BridgeToucher,
): void {
  for (const g of groups) {
    if (g.functions.length === 0) continue;
    if (load && touch) touch(g.functions[0], load);
    const bus = g.bridge ? g.bridge.secondaryBus : 0;
    if (!ownsBus(unit, bus)) continue;
    for (const dev of g.functions) visit(dev, (bus << 8) | dev.devfn);
  }
}

/** True if `bus` lies in the unit's range. */
export function ownsBus(unit: IommuModel, bus: number): boolean {
  return bus >= unit.busRange[0] && bus <= unit.busRange[1];
}
