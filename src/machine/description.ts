/**
 * The machine description: a JSON file that names the reference machine's flavour, RAM, IOMMU units and
 * PCI tree. Parsing checks everything up front and fails with a message that names the file and the JSON
 * path (`machines/x.json: devices[2].children[0]: ...`), so a machine that loads is one we can build.
 *
 * Format (unknown keys are errors, to catch typos):
 *
 *   machine  = { name, flavour, machineType?, ram, iommus, devices }
 *   name     = non-empty string
 *   flavour  = "q35" (Intel VT-d units) | "virt" (ARM SMMUv3 units)
 *   machineType = "pc-q35-*" for q35, "virt*" for virt, no newer than the newest QEMU vmstate writes;
 *                 absent: the flavour's of the QEMU release the machine speaks ("pc-q35-7.2", "virt-10.0")
 *   ram      = bytes, or a string "<digits>[K|M|G]"; whole 4 KiB pages, 16 MiB ..= 4 GiB
 *   iommus   = [ { id, buses: [first, last] }, ... ]   at least one; ranges in 0..255, not overlapping
 *   devices  = [ device, ... ]                          the root bus (bus 0)
 *   device   = { type, id, slot, function?, chassis?, children? }
 *
 * Placement: root-port on the root bus; switch-upstream under a root-port or switch-downstream;
 * switch-downstream under a switch-upstream; pcie-pci-bridge on the root bus or under a root-port or
 * switch-downstream; dma-engine anywhere. Below a root-port or switch-downstream (a PCIe link) only slot 0
 * exists; slot 0 of the root bus is the host bridge. Ids are unique across units and devices.
 *
 * Buses are numbered 0..N-1 with N = 1 + bridges (see enumerateBuses), so the units' ranges can be
 * checked against the buses without building the tree.
 */
import { readFileSync } from 'node:fs';
import { IoError, UsageError } from '../errors.js';
import { hasMachineType, NEWEST_DIALECT, type QemuDialect } from '../savevm/index.js';
import { PCI_IDS, type PciKind } from './pci.js';

/** Which architecture's machine: q35 with VT-d units, or virt with SMMUv3 units. */
export type MachineFlavour = 'q35' | 'virt';

/** One IOMMU unit and the bus numbers it translates for (both ends included). */
export interface IommuUnitDescription {
  readonly id: string;
  readonly first: number;
  readonly last: number;
}

/** One PCI function of the tree, with the functions on the bus below it if it is a bridge. */
export interface DeviceNode {
  readonly kind: PciKind;
  readonly id: string;
  readonly slot: number;
  readonly fn: number;
  /** Only root-port and switch-downstream have one; absent when the description gives none. */
  readonly chassis?: number;
  readonly children: readonly DeviceNode[];
}

/** A checked, normalized machine description. */
export interface MachineDescription {
  readonly name: string;
  readonly flavour: MachineFlavour;
  /** The machine type the file names; absent, the machine has its flavour's of the QEMU release it speaks. */
  readonly machineType?: string;
  readonly ramBytes: number;
  readonly iommus: readonly IommuUnitDescription[];
  /** The functions on the root bus (bus 0). */
  readonly devices: readonly DeviceNode[];
}

/** A device as written in the JSON file. */
export interface DeviceNodeJson {
  type: PciKind;
  id: string;
  slot: number;
  /** Defaults to 0. */
  function?: number;
  chassis?: number;
  children?: DeviceNodeJson[];
}

/** An IOMMU unit as written in the JSON file. */
export interface IommuUnitJson {
  id: string;
  buses: [number, number];
}

/** A machine description as written in the JSON file. */
export interface MachineDescriptionJson {
  name: string;
  flavour: MachineFlavour;
  /** Defaults to the flavour's machine type of the QEMU release the machine speaks: "pc-q35-7.2", "virt-10.0", ... */
  machineType?: string;
  ram: number | string;
  iommus: IommuUnitJson[];
  devices: DeviceNodeJson[];
}

/** The machine type a flavour has in a QEMU release when the description names none: pc-q35-10.0, virt-7.2. */
export function defaultMachineType(flavour: MachineFlavour, dialect: QemuDialect): string {
  return `${MACHINE_TYPE_STEM[flavour]}-${dialect.version}`;
}

/** Bus numbers of one PCI segment. */
const MAX_BUS = 0xff;
const PAGE_SIZE = 4096;
const MIN_RAM = 16 * 1024 * 1024;
const MAX_RAM = 4 * 1024 * 1024 * 1024;
const RAM_SUFFIXES: Readonly<Record<string, number>> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 };

const MACHINE_KEYS = ['name', 'flavour', 'machineType', 'ram', 'iommus', 'devices'];
const IOMMU_KEYS = ['id', 'buses'];
const DEVICE_KEYS = ['type', 'id', 'slot', 'function', 'chassis', 'children'];
const KINDS = Object.keys(PCI_IDS) as PciKind[];
const MACHINE_TYPE_PREFIX: Readonly<Record<MachineFlavour, string>> = { q35: 'pc-q35-', virt: 'virt' };
/** A flavour's machine types are the stem, a dash and a QEMU release. */
const MACHINE_TYPE_STEM: Readonly<Record<MachineFlavour, string>> = { q35: 'pc-q35', virt: 'virt' };

/** Where a device sits: the bridge above it (null for the root bus). */
interface Parent {
  readonly kind: PciKind;
  readonly id: string;
}

/** A function already placed on a bus, to report clashes against. */
interface Placed {
  readonly path: string;
  readonly id: string;
  readonly slot: number;
  readonly fn: number;
}

/** Parses and checks a machine description; `source` (usually the file name) starts every error message. */
export function parseMachineDescription(text: string, source: string): MachineDescription {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${source}: not valid JSON: ${(e as Error).message}`, { source });
  }
  return new DescriptionChecker(source).machine(json);
}

/** Reads and parses a machine description file. */
export function loadMachineDescription(path: string): MachineDescription {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new IoError(`${path}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`, { path }, e);
  }
  return parseMachineDescription(text, path);
}

/** How many buses enumeration gives the machine: the root bus plus one per bridge. */
export function countBuses(desc: MachineDescription): number {
  const bridges = (nodes: readonly DeviceNode[]): number =>
    nodes.reduce((n, d) => n + (PCI_IDS[d.kind].bridge ? 1 : 0) + bridges(d.children), 0);
  return 1 + bridges(desc.devices);
}

/** Walks the JSON once, in document order, failing on the first problem. */
class DescriptionChecker {
  /** Every id seen so far and the JSON path that declared it (units and devices share one namespace). */
  private readonly ids = new Map<string, string>();
  /** Chassis numbers seen so far and who has them. */
  private readonly chassis = new Map<number, Placed>();

  constructor(private readonly source: string) {}

  machine(json: unknown): MachineDescription {
    const top = this.object(json, '', 'a JSON object');
    this.knownKeys(top, '', MACHINE_KEYS);
    const name = this.nonEmptyString(top.name, 'name');
    const flavour = this.flavour(top.flavour);
    const machineType = this.machineType(top.machineType, flavour);
    const ramBytes = this.ram(top.ram);
    const iommus = this.iommus(top.iommus);
    if (top.devices === undefined) this.fail('devices', 'missing; expected a list of devices');
    if (!isList(top.devices)) this.fail('devices', `expected a list of devices, got ${show(top.devices)}`);
    const devices = this.bus(top.devices, 'devices', null);
    const desc: MachineDescription = machineType === undefined ? { name, flavour, ramBytes, iommus, devices } : { name, flavour, machineType, ramBytes, iommus, devices };
    this.checkBuses(desc);
    return desc;
  }

  private flavour(v: unknown): MachineFlavour {
    if (v === 'q35' || v === 'virt') return v;
    this.fail('flavour', v === undefined ? 'missing; expected "q35" or "virt"' : `expected "q35" or "virt", got ${show(v)}`);
  }

  private machineType(v: unknown, flavour: MachineFlavour): string | undefined {
    if (v === undefined) return undefined;
    const type = this.nonEmptyString(v, 'machineType');
    const prefix = MACHINE_TYPE_PREFIX[flavour];
    if (!type.startsWith(prefix)) this.fail('machineType', `"${type}" is not a ${flavour} machine type (${prefix}*)`);
    if (!hasMachineType(NEWEST_DIALECT, type)) this.fail('machineType', `"${type}" is newer than QEMU ${NEWEST_DIALECT.version}, the newest whose streams vmstate writes`);
    return type;
  }

  private ram(v: unknown): number {
    const expected = 'a number of bytes or a string like "256M"';
    if (v === undefined) this.fail('ram', `missing; expected ${expected}`);
    let bytes: number;
    let shown: string;
    if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) {
      bytes = v;
      shown = `${v} bytes`;
    } else {
      const m = typeof v === 'string' ? /^(\d+)([KMG]?)$/i.exec(v) : null;
      if (!m) this.fail('ram', `expected ${expected}, got ${show(v)}`);
      bytes = Number(m[1]) * RAM_SUFFIXES[m[2].toUpperCase()];
      shown = `"${String(v)}" (${bytes} bytes)`;
    }
    if (bytes < MIN_RAM) this.fail('ram', `${shown} is less than the minimum, 16 MiB`);
    if (bytes > MAX_RAM) this.fail('ram', `${shown} is more than the maximum, 4 GiB`);
    if (bytes % PAGE_SIZE !== 0) this.fail('ram', `${shown} is not a whole number of 4 KiB pages`);
    return bytes;
  }

  private iommus(v: unknown): IommuUnitDescription[] {
    if (v === undefined) this.fail('iommus', 'missing; expected a list of IOMMU units');
    if (!isList(v)) this.fail('iommus', `expected a list of IOMMU units, got ${show(v)}`);
    if (v.length === 0) this.fail('iommus', 'at least one IOMMU unit is needed');
    const units: IommuUnitDescription[] = [];
    v.forEach((item, i) => {
      const path = `iommus[${i}]`;
      const o = this.object(item, path, 'an IOMMU unit object');
      this.knownKeys(o, path, IOMMU_KEYS);
      const id = this.id(o.id, path);
      const [first, last] = this.busRange(o.buses, `${path}.buses`);
      units.forEach((u, j) => {
        const from = Math.max(first, u.first);
        const to = Math.min(last, u.last);
        if (from <= to) this.fail(`${path}.buses`, `${busList([[from, to]])} also translated by iommus[${j}] (${u.id})`);
      });
      units.push({ id, first, last });
    });
    return units;
  }

  private busRange(v: unknown, path: string): [number, number] {
    const expected = `[first, last] with bus numbers 0..${MAX_BUS}`;
    if (v === undefined) this.fail(path, `missing; expected ${expected}`);
    if (!isList(v) || v.length !== 2 || !isIntIn(v[0], 0, MAX_BUS) || !isIntIn(v[1], 0, MAX_BUS)) {
      this.fail(path, `expected ${expected}, got ${show(v)}`);
    }
    const [first, last] = v as readonly [number, number];
    if (first > last) this.fail(path, `first bus ${first} is after last bus ${last}`);
    return [first, last];
  }

  /** The functions on one bus, then the rules that need the whole bus. */
  private bus(items: readonly unknown[], path: string, parent: Parent | null): DeviceNode[] {
    const placed: Placed[] = [];
    const nodes = items.map((item, i) => this.device(item, `${path}[${i}]`, parent, placed));
    for (const p of placed) {
      if (p.fn !== 0 && !placed.some((q) => q.slot === p.slot && q.fn === 0)) {
        this.fail(p.path, `slot ${p.slot} ${busName(parent)} has function ${p.fn} but no function 0`);
      }
    }
    return nodes;
  }

  private device(item: unknown, path: string, parent: Parent | null, placed: Placed[]): DeviceNode {
    const o = this.object(item, path, 'a device object');
    this.knownKeys(o, path, DEVICE_KEYS);
    const kind = this.kind(o.type, `${path}.type`);
    const id = this.id(o.id, path);
    if (o.slot === undefined) this.fail(`${path}.slot`, 'missing; expected an integer 0..31');
    const slot = this.intIn(o.slot, `${path}.slot`, 0, 31);
    const fn = o.function === undefined ? 0 : this.intIn(o.function, `${path}.function`, 0, 7);
    this.checkPlacement(kind, path, parent);
    if (parent === null && slot === 0) this.fail(`${path}.slot`, 'slot 0 of the root bus is the host bridge');
    if (parent && isLink(parent.kind) && slot !== 0) {
      this.fail(`${path}.slot`, `only slot 0 exists below a ${parent.kind} (a PCIe link), got ${slot}`);
    }
    const clash = placed.find((p) => p.slot === slot && p.fn === fn);
    if (clash) this.fail(path, `slot ${slot} function ${fn} ${busName(parent)} is already taken by ${clash.path} (${clash.id})`);
    const here: Placed = { path, id, slot, fn };
    placed.push(here);
    const chassis = this.chassisOf(o.chassis, kind, path, here);
    let children: DeviceNode[] = [];
    if (o.children !== undefined) {
      if (!PCI_IDS[kind].bridge) this.fail(`${path}.children`, `a ${kind} cannot have children (only bridges can)`);
      if (!isList(o.children)) this.fail(`${path}.children`, `expected a list of devices, got ${show(o.children)}`);
      children = this.bus(o.children, `${path}.children`, { kind, id });
    }
    return chassis === undefined ? { kind, id, slot, fn, children } : { kind, id, slot, fn, chassis, children };
  }

  private checkPlacement(kind: PciKind, path: string, parent: Parent | null): void {
    const above = parent?.kind ?? 'root';
    switch (kind) {
      case 'root-port':
        if (above !== 'root') this.fail(path, 'a root-port must sit on the root bus');
        break;
      case 'switch-upstream':
        if (!isLink(above)) this.fail(path, 'a switch-upstream must sit under a root-port or switch-downstream');
        break;
      case 'switch-downstream':
        if (above !== 'switch-upstream') this.fail(path, 'a switch-downstream must sit under a switch-upstream');
        break;
      case 'pcie-pci-bridge':
        if (above !== 'root' && !isLink(above)) this.fail(path, 'a pcie-pci-bridge must sit on the root bus or under a root-port or switch-downstream');
        break;
      case 'dma-engine':
        break;
    }
  }

  private chassisOf(v: unknown, kind: PciKind, path: string, here: Placed): number | undefined {
    if (v === undefined) return undefined;
    if (!isLink(kind)) this.fail(`${path}.chassis`, 'only a root-port or switch-downstream has a chassis');
    const n = this.intIn(v, `${path}.chassis`, 0, 255);
    const other = this.chassis.get(n);
    // QEMU refuses two ports in one chassis/slot pair; we give each port its own chassis.
    if (other) this.fail(`${path}.chassis`, `chassis ${n} is already used by ${other.path} (${other.id})`);
    this.chassis.set(n, here);
    return n;
  }

  /** At most 255 bridges, and every bus the enumeration gives is some unit's. */
  private checkBuses(desc: MachineDescription): void {
    const buses = countBuses(desc);
    if (buses > MAX_BUS + 1) {
      this.fail('devices', `${buses - 1} bridges need ${buses} buses, more than the ${MAX_BUS + 1} of a PCI segment (at most ${MAX_BUS} bridges)`);
    }
    const uncovered: [number, number][] = [];
    for (let bus = 0; bus < buses; bus++) {
      if (desc.iommus.some((u) => bus >= u.first && bus <= u.last)) continue;
      const run = uncovered[uncovered.length - 1];
      if (run && run[1] === bus - 1) run[1] = bus;
      else uncovered.push([bus, bus]);
    }
    if (uncovered.length > 0) {
      this.fail('iommus', `${busList(uncovered)} not translated by any unit (the machine has buses 0..${buses - 1})`);
    }
  }

  private kind(v: unknown, path: string): PciKind {
    if (typeof v === 'string' && (KINDS as string[]).includes(v)) return v as PciKind;
    this.fail(path, `${v === undefined ? 'missing; expected' : 'expected'} one of ${KINDS.join(', ')}${v === undefined ? '' : `, got ${show(v)}`}`);
  }

  /** A non-empty id not used before; `path` is the object holding it. */
  private id(v: unknown, path: string): string {
    const id = this.nonEmptyString(v, `${path}.id`);
    const earlier = this.ids.get(id);
    if (earlier !== undefined) this.fail(`${path}.id`, `"${id}" is already used by ${earlier}`);
    this.ids.set(id, path);
    return id;
  }

  private nonEmptyString(v: unknown, path: string): string {
    if (typeof v === 'string' && v !== '') return v;
    this.fail(path, v === undefined ? 'missing; expected a non-empty string' : `expected a non-empty string, got ${show(v)}`);
  }

  private intIn(v: unknown, path: string, min: number, max: number): number {
    if (isIntIn(v, min, max)) return v;
    this.fail(path, `expected an integer ${min}..${max}, got ${show(v)}`);
  }

  private object(v: unknown, path: string, what: string): Record<string, unknown> {
    if (typeof v === 'object' && v !== null && !isList(v)) return v as Record<string, unknown>;
    this.fail(path, `expected ${what}, got ${show(v)}`);
  }

  private knownKeys(o: Record<string, unknown>, path: string, allowed: readonly string[]): void {
    for (const key of Object.keys(o)) {
      if (!allowed.includes(key)) this.fail(path ? `${path}.${key}` : key, `unknown key (expected one of ${allowed.join(', ')})`);
    }
  }

  private fail(path: string, problem: string): never {
    throw new UsageError(`${this.source}: ${path ? `${path}: ` : ''}${problem}`, { source: this.source, path, problem });
  }
}

/** Root ports and downstream ports end in a PCIe link: one device, slot 0. */
function isLink(kind: PciKind | 'root'): boolean {
  return kind === 'root-port' || kind === 'switch-downstream';
}

function isList(v: unknown): v is readonly unknown[] {
  return Array.isArray(v);
}

function isIntIn(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
}

function busName(parent: Parent | null): string {
  return parent ? `on the bus below ${parent.id}` : 'on the root bus';
}

/** `bus 5 is` or `buses 1..3, 7 are`, for messages. */
function busList(runs: readonly (readonly [number, number])[]): string {
  const text = runs.map(([a, b]) => (a === b ? `${a}` : `${a}..${b}`)).join(', ');
  return runs.length === 1 && runs[0][0] === runs[0][1] ? `bus ${text} is` : `buses ${text} are`;
}

/** A JSON value as it appears in the file, for "got ..." in messages. */
function show(v: unknown): string {
  return v === undefined ? 'nothing' : JSON.stringify(v);
}
