/**
 * Builds the PCI tree a machine description asks for: one PciFunction per device node, bridges holding
 * the functions on their secondary bus. Bus numbers stay zero until enumerateBuses (the firmware's job)
 * or a restored config space sets them.
 */
import type { DeviceNode, MachineDescription } from './description.js';
import { markMultifunction, PCI_IDS, PciBridge, PciFunction } from './pci.js';

/** The functions of a machine: the root bus's, and every function by its description id. */
export interface PciTree {
  readonly rootBus: PciFunction[];
  readonly byId: Map<string, PciFunction>;
}

/** Makes the functions of `desc`; those behind a pcie-pci-bridge are conventional PCI (256-byte config). */
export function buildPciTree(desc: MachineDescription): PciTree {
  const byId = new Map<string, PciFunction>();
  const bus = (nodes: readonly DeviceNode[], parent: PciBridge | null, express: boolean): PciFunction[] => {
    const functions = nodes.map((node) => {
      const f = PCI_IDS[node.kind].bridge
        ? new PciBridge(node.kind, node.id, node.slot, node.fn, parent, express)
        : new PciFunction(node.kind, node.id, node.slot, node.fn, parent, express);
      byId.set(node.id, f);
      if (f instanceof PciBridge) f.children.push(...bus(node.children, f, express && node.kind !== 'pcie-pci-bridge'));
      return f;
    });
    markMultifunction(functions);
    return functions;
  };
  return { rootBus: bus(desc.devices, null, true), byId };
}
