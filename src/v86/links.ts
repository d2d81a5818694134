/**
 * What v86 devices need of each other once loaded, as QEMU's devices do: a device that raises
 * interrupts needs the interrupt controllers (their masks and routing) in place, a PCI device its
 * function's config space (BARs, interrupt line) in the PCI host. Each such device's postLoad reads the
 * supplier's state (so the load-order guard refuses a stream that loads it first) and checks what a
 * running v86 relies on: a hostile stream's IRQ line 99, or a PCI device whose function the host lacks,
 * is a LoadError rather than a v86 that misbehaves later.
 */
import { LoadError } from '../errors.js';
import type { LoadContext } from '../vmstate/index.js';

/** The entries devices depend on, by idstr. */
export const PIC_IDSTR = 'v86-pic';
export const IOAPIC_IDSTR = 'v86-ioapic';
export const APIC_IDSTR = 'v86-apic';
export const PCI_IDSTR = 'v86-pci';

/** Lines the two PICs have; the IOAPIC has IOAPIC_LINES. */
const PIC_LINES = 16;
const IOAPIC_LINES = 24;

type State = Record<string, unknown>;

/** A supplier a device depends on: loaded (and saved) before it, for `reason`. */
export interface V86Supplier {
  readonly idstr: string;
  readonly instanceId?: number;
  readonly reason: string;
}

/** What one device needs of others: the entries it reads, and the check it makes after loading. */
export interface V86Link {
  readonly suppliers: readonly V86Supplier[];
  readonly postLoad: (state: State, ctx: LoadContext) => void;
}

/** A device that raises the interrupt lines `lines(state)` gives (fixed ones, or its own irq registers). */
export function raisesIrqs(device: string, lines: (s: State) => readonly unknown[]): V86Link {
  const reason = `${device} raises interrupts through the PICs and the IOAPIC, whose masks and routing must be loaded first`;
  return {
    suppliers: [
      { idstr: PIC_IDSTR, instanceId: 0, reason },
      { idstr: PIC_IDSTR, instanceId: 1, reason },
      { idstr: IOAPIC_IDSTR, reason },
    ],
    postLoad(s, ctx) {
      for (const line of lines(s)) {
        if (typeof line !== 'number' || !Number.isInteger(line) || line < 0 || line >= IOAPIC_LINES) {
          throw new LoadError(`IRQ ${String(line)} is not a line of the IOAPIC (0 to ${IOAPIC_LINES - 1})`, '');
        }
        ctx.peer({ idstr: IOAPIC_IDSTR });
        if (line < PIC_LINES) ctx.peer({ idstr: PIC_IDSTR, instanceId: line < 8 ? 0 : 1 });
      }
    },
  };
}

/** A PCI device at `devfn` (slot << 3 | function): the PCI host must hold that function's config space. */
export function pciFunction(device: string, devfn: number): V86Link {
  const where = `00:${(devfn >> 3).toString(16).padStart(2, '0')}.${devfn & 7}`;
  return {
    suppliers: [{ idstr: PCI_IDSTR, reason: `${device} is PCI function ${where}, whose config space (BARs, interrupt line) the PCI host holds` }],
    postLoad(_s, ctx) {
      const host = ctx.peer<State>({ idstr: PCI_IDSTR });
      if (host[`device_space_${devfn.toString(16).padStart(2, '0')}_present`] !== true) {
        throw new LoadError(`the PCI host has no function ${where} for it`, '');
      }
    },
  };
}
