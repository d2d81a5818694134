/**
 * PCI functions and bridges: config space with type 0 and type 1 headers, the bus tree, and
 * firmware-style bus numbering. A function's bus number is read live from its parent bridge's
 * secondary-bus register, so its requester ID (bus << 8 | devfn) is always what the registers say now,
 * never a cached copy: after a restore it is whatever the bridges' loaded state says.
 */
import { UsageError } from '../errors.js';

/** Type 1 header registers (PCI-to-PCI bridge). */
const PCI_PRIMARY_BUS = 0x18;
export const PCI_SECONDARY_BUS = 0x19;
export const PCI_SUBORDINATE_BUS = 0x1a;
/** Header type register; bit 7 marks a multi-function device. */
const PCI_HEADER_TYPE = 0x0e;
const PCI_CLASS_PROG = 0x09;

/** What a function is, which decides its IDs, header type and QEMU section layout. */
export type PciKind = 'root-port' | 'switch-upstream' | 'switch-downstream' | 'pcie-pci-bridge' | 'dma-engine';

/** Vendor, device and class of each kind (QEMU's IDs for the bridges it has; our own for dma-engine). */
export const PCI_IDS: Readonly<Record<PciKind, { vendor: number; device: number; classCode: number; bridge: boolean }>> = {
  'root-port': { vendor: 0x1b36, device: 0x000c, classCode: 0x060400, bridge: true },
  'switch-upstream': { vendor: 0x104c, device: 0x8232, classCode: 0x060400, bridge: true },
  'switch-downstream': { vendor: 0x104c, device: 0x8233, classCode: 0x060400, bridge: true },
  'pcie-pci-bridge': { vendor: 0x1b36, device: 0x000e, classCode: 0x060400, bridge: true },
  // Red Hat's QEMU vendor ID with a device ID of our own: a DMA engine QEMU does not have.
  'dma-engine': { vendor: 0x1b36, device: 0x10ff, classCode: 0xff0000, bridge: false },
};

export class PciFunction {
  /** slot << 3 | function. */
  readonly devfn: number;
  /** QEMU's device path: `0000:00` then `:SS.F` per hop from the root bus, e.g. `0000:00:03.0:00.0`. */
  readonly path: string;
  readonly config: Uint8Array;

  constructor(
    readonly kind: PciKind,
    readonly id: string,
    readonly slot: number,
    readonly fn: number,
    /** The bridge whose secondary bus this function sits on; null for the root bus (bus 0). */
    readonly parent: PciBridge | null,
    express: boolean,
  ) {
    this.devfn = (slot << 3) | fn;
    this.path = `${parent ? parent.path : '0000:00'}:${hex2(slot)}.${fn}`;
    this.config = new Uint8Array(express ? 4096 : 256);
    const ids = PCI_IDS[kind];
    this.setU16(0x00, ids.vendor);
    this.setU16(0x02, ids.device);
    this.config[PCI_CLASS_PROG] = ids.classCode & 0xff;
    this.config[0x0a] = (ids.classCode >> 8) & 0xff;
    this.config[0x0b] = (ids.classCode >> 16) & 0xff;
    this.config[PCI_HEADER_TYPE] = ids.bridge ? 1 : 0;
  }

  /** The bus this function sits on, as the parent bridge's register says at this moment. */
  get bus(): number {
    return this.parent ? this.parent.secondaryBus : 0;
  }

  /** The requester ID its DMA carries: bus << 8 | devfn. */
  get requesterId(): number {
    return (this.bus << 8) | this.devfn;
  }

  /** `bb:ss.f` as `info pci` and lspci print it. */
  get bdf(): string {
    return `${hex2(this.bus)}:${hex2(this.slot)}.${this.fn}`;
  }

  setU16(offset: number, v: number): void {
    this.config[offset] = v & 0xff;
    this.config[offset + 1] = (v >> 8) & 0xff;
  }

  getU16(offset: number): number {
    return this.config[offset] | (this.config[offset + 1] << 8);
  }
}

export class PciBridge extends PciFunction {
  readonly children: PciFunction[] = [];

  get primaryBus(): number {
    return this.config[PCI_PRIMARY_BUS];
  }

  get secondaryBus(): number {
    return this.config[PCI_SECONDARY_BUS];
  }

  get subordinateBus(): number {
    return this.config[PCI_SUBORDINATE_BUS];
  }

  setBusNumbers(primary: number, secondary: number, subordinate: number): void {
    this.config[PCI_PRIMARY_BUS] = primary;
    this.config[PCI_SECONDARY_BUS] = secondary;
    this.config[PCI_SUBORDINATE_BUS] = subordinate;
  }
}

/** Sets bit 7 of the header type on every function of a slot that has more than one function. */
export function markMultifunction(functions: readonly PciFunction[]): void {
  const bySlot = new Map<number, PciFunction[]>();
  for (const f of functions) bySlot.set(f.slot, [...(bySlot.get(f.slot) ?? []), f]);
  for (const group of bySlot.values()) if (group.length > 1) for (const f of group) f.config[PCI_HEADER_TYPE] |= 0x80;
}

/**
 * Numbers the buses as SeaBIOS does (pci_bios_init_bus_rec): depth first, bridges in devfn order on each
 * bus; a bridge gets the next bus number as its secondary, 0xff as subordinate while its children are
 * numbered, then the last number used below it. Returns the highest bus number.
 */
export function enumerateBuses(rootBus: readonly PciFunction[]): number {
  let last = 0;
  const visit = (bus: number, functions: readonly PciFunction[]) => {
    for (const f of [...functions].sort((a, b) => a.devfn - b.devfn)) {
      if (!(f instanceof PciBridge)) continue;
      const secondary = ++last;
      if (secondary > 0xff) throw new UsageError('more than 256 buses: a PCI segment has at most 256');
      f.setBusNumbers(bus, secondary, 0xff);
      visit(secondary, f.children);
      f.config[PCI_SUBORDINATE_BUS] = last;
    }
  };
  visit(0, rootBus);
  return last;
}

/** Every function below `rootBus`, parents before children, each bus in devfn order. */
export function allFunctions(rootBus: readonly PciFunction[]): PciFunction[] {
  const out: PciFunction[] = [];
  const walk = (fs: readonly PciFunction[]) => {
    for (const f of [...fs].sort((a, b) => a.devfn - b.devfn)) {
      out.push(f);
      if (f instanceof PciBridge) walk(f.children);
    }
  };
  walk(rootBus);
  return out;
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}
