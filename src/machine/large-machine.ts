/**
 * The generator of machines/large.json, so the file can be checked against it and never drifts.
 *
 * Layout: 128 root ports on the root bus as multifunction slots 1..16, functions 0..7. Functions 0..6 of
 * each slot lead to one 8-function dma-engine; function 7 leads to a switch (upstream port and four
 * downstream ports, each with a 2-function dma-engine). Each slot thus takes 13 buses and 64 engines:
 * 1024 engines on 209 buses. The 8 VT-d units take two slots' buses each (26 buses, 128 engines), the
 * first also bus 0 and the last the unused buses up to 255, so every unit translates for the same load.
 */
import type { DeviceNodeJson, IommuUnitJson, MachineDescriptionJson } from './description.js';

const SLOTS = 16;
const FUNCTIONS = 8;
const DOWNSTREAM_PORTS = 4;
const ENGINE_FUNCTIONS_BEHIND_SWITCH = 2;
/** Buses below one slot: one per plain root port, 1 + 1 + 4 for the root port holding the switch. */
const BUSES_PER_SLOT = FUNCTIONS - 1 + 2 + DOWNSTREAM_PORTS;
const SLOTS_PER_UNIT = 2;

/** The large machine's description, as written to machines/large.json. */
export function largeMachine(): MachineDescriptionJson {
  const devices: DeviceNodeJson[] = [];
  for (let slot = 1; slot <= SLOTS; slot++) {
    for (let fn = 0; fn < FUNCTIONS; fn++) {
      const at = `${slot}.${fn}`;
      // Root ports take chassis 1..128 in devfn order; downstream ports follow, four per switch.
      const chassis = (slot - 1) * FUNCTIONS + fn + 1;
      const children = fn < FUNCTIONS - 1 ? engines(`dma${at}`, FUNCTIONS) : [switchBelow(at, slot - 1)];
      devices.push({ type: 'root-port', id: `rp${at}`, slot, function: fn, chassis, children });
    }
  }
  return { name: 'large', flavour: 'q35', ram: '1G', iommus: units(), devices };
}

/** The text of machines/large.json: 2-space indent, trailing newline. */
export function largeMachineText(): string {
  return JSON.stringify(largeMachine(), null, 2) + '\n';
}

/** One dma-engine at slot 0 with `count` functions. */
function engines(prefix: string, count: number): DeviceNodeJson[] {
  return Array.from({ length: count }, (_, fn) => ({ type: 'dma-engine' as const, id: `${prefix}.${fn}`, slot: 0, function: fn }));
}

/** The `index`th switch (0-based): an upstream port and its downstream ports, each with an engine. */
function switchBelow(at: string, index: number): DeviceNodeJson {
  const downstream = Array.from({ length: DOWNSTREAM_PORTS }, (_, d): DeviceNodeJson => ({
    type: 'switch-downstream',
    id: `dn${at}.${d}`,
    slot: d,
    function: 0,
    chassis: SLOTS * FUNCTIONS + index * DOWNSTREAM_PORTS + d + 1,
    children: engines(`dma${at}.${d}`, ENGINE_FUNCTIONS_BEHIND_SWITCH),
  }));
  return { type: 'switch-upstream', id: `up${at}`, slot: 0, function: 0, children: downstream };
}

/** Even shares of the used buses, two slots per unit; the last unit also takes the unused buses up to 255. */
function units(): IommuUnitJson[] {
  const count = SLOTS / SLOTS_PER_UNIT;
  const width = SLOTS_PER_UNIT * BUSES_PER_SLOT;
  return Array.from({ length: count }, (_, i) => ({
    id: `dmar${i}`,
    buses: [i === 0 ? 0 : i * width + 1, i === count - 1 ? 0xff : (i + 1) * width],
  }));
}
