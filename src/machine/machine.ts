/**
 * The reference machine, composed from a description: guest RAM, the PCIe tree, IOMMUs, dma-engines and
 * the guest driver, with every piece registered for migration the way QEMU registers its devices:
 * RAM first, the IOMMUs next (QEMU's machine creates them first), then bridges and endpoints in tree
 * order. Priorities are QEMU's (bridges PCI_BUS, IOMMUs IOMMU, the rest DEFAULT), and dependencies are
 * declared on top: each IOMMU after the bridges whose buses it translates for, each endpoint after its
 * IOMMU. `legacyOrder` rebuilds the pre-2018 QEMU: bridges at DEFAULT priority and no dependencies.
 * The machine saves in the dialect of one QEMU release and loads the streams of any.
 */
import { createHash } from 'node:crypto';
import { GuestRam, RamHandler } from '../ram/index.js';
import { UsageError } from '../errors.js';
import {
  DEFAULT_DIALECT,
  dialectForMachineType,
  hasMachineType,
  loadSnapshot,
  QEMU_DIALECTS,
  saveSnapshot,
  SaveRegistry,
  type LoadResult,
  type QemuDialect,
  type SavePlan,
  type SnapshotSink,
} from '../savevm/index.js';
import type { ChunkedSource } from '../stream/index.js';
import { MigPriority, type AnyVmsd, type LoadContext } from '../vmstate/index.js';
import { defaultMachineType, type MachineDescription } from './description.js';
import { bootDriver, driverStep, runStep, type DmaResult, type DriverHost } from './driver.js';
import { DmaEngine, dmaEngineVmsd, type DmaPort } from './dma-engine.js';
import { groupByBus, ownsBus, type IommuContext, type IommuModel } from './iommu.js';
import { newPciDeviceState, pcieRootPortVmsd, pciePciBridgeVmsd, SHPC_STATE_SIZE, xio3130DownstreamVmsd, xio3130UpstreamVmsd } from './layouts/pci.js';
import { allFunctions, enumerateBuses, PciBridge, type PciFunction } from './pci.js';
import { globalStateVmsd, newGlobalState, runStateOf, setRunState, type GlobalState } from './layouts/globalstate.js';
import { Smmuv3Unit } from './smmuv3.js';
import { buildPciTree } from './topology.js';
import { VtdUnit } from './vtd.js';

/** Options for a machine. */
export interface MachineOptions {
  /** Register bridges as QEMU did before 2018: DEFAULT priority, no declared dependencies. Defaults to false. */
  readonly legacyOrder?: boolean;
  /**
   * The QEMU release whose streams the machine writes. Defaults to the oldest release that has the
   * description's machine type, or 7.2 when it names none.
   */
  readonly dialect?: QemuDialect;
}

/** The section a bridge is saved as, with its state built around the function's live config space. */
function bridgeSection(fn: PciBridge): { vmsd: AnyVmsd; state: object } {
  const pci = { ...newPciDeviceState(fn.config.length === 4096), config: fn.config };
  const aer = { log_num: 0, log_max: 8 };
  switch (fn.kind) {
    case 'root-port':
      return {
        vmsd: pcieRootPortVmsd,
        state: {
          'parent_obj.parent_obj.parent_obj': pci,
          'parent_obj.parent_obj.parent_obj.exp.aer_log': aer,
          'parent_obj.parent_obj.parent_obj.parent_obj': { msix: new Uint8Array(17) },
        },
      };
    case 'switch-upstream':
      return { vmsd: xio3130UpstreamVmsd, state: { 'parent_obj.parent_obj': pci, 'parent_obj.parent_obj.exp.aer_log': aer } };
    case 'switch-downstream':
      return { vmsd: xio3130DownstreamVmsd, state: { 'parent_obj.parent_obj.parent_obj': pci, 'parent_obj.parent_obj.parent_obj.exp.aer_log': aer } };
    default:
      return { vmsd: pciePciBridgeVmsd, state: { parent_obj: pci, shpc: new Uint8Array(SHPC_STATE_SIZE) } };
  }
}

export class Machine implements DriverHost {
  readonly ram: GuestRam;
  readonly rootBus: readonly PciFunction[];
  readonly functions: readonly PciFunction[];
  readonly iommus: readonly IommuModel[];
  readonly engines: readonly DmaEngine[];
  readonly registry = new SaveRegistry();
  /** The QEMU release whose streams the machine writes. */
  readonly dialect: QemuDialect;
  /** The machine type its streams name: the description's, or its flavour's in the dialect's release. */
  readonly machineType: string;
  /**
   * The machine types a stream loaded into it may name: the description's, or when it names none, the
   * flavour's in every release (the machine loads the streams of any dialect).
   */
  readonly loadsMachineTypes: readonly string[];
  /** The run state the next save records (QEMU's globalstate). */
  readonly globalState: GlobalState = newGlobalState('running');
  private readonly sectionOf = new Map<PciFunction, string>();
  private touchedFor: LoadContext['peer'] | null = null;
  private touched = new Set<PciFunction>();

  constructor(
    readonly description: MachineDescription,
    readonly options: MachineOptions = {},
  ) {
    const named = description.machineType;
    this.dialect = options.dialect ?? (named === undefined ? null : dialectForMachineType(named)) ?? DEFAULT_DIALECT;
    if (named !== undefined && !hasMachineType(this.dialect, named)) {
      throw new UsageError(`${description.name}: machine type ${named} is newer than QEMU ${this.dialect.version}`, { machineType: named, qemu: this.dialect.version });
    }
    this.machineType = named ?? defaultMachineType(description.flavour, this.dialect);
    this.loadsMachineTypes = named !== undefined ? [named] : Object.values(QEMU_DIALECTS).map((d) => defaultMachineType(description.flavour, d));
    this.ram = new GuestRam();
    this.ram.addBlock('pc.ram', 0, description.ramBytes);
    this.rootBus = buildPciTree(description).rootBus;
    this.functions = allFunctions(this.rootBus);
    const masters = this.functions.filter((f) => !(f instanceof PciBridge));
    const groups = groupByBus(masters);
    const ctx: IommuContext = { ram: this.ram, busGroups: () => groups };
    const touch = (dev: PciFunction, load: LoadContext) => this.touchBridges(dev, load);
    this.iommus = description.iommus.map((u) =>
      description.flavour === 'q35' ? new VtdUnit(u.id, [u.first, u.last], ctx, touch) : new Smmuv3Unit({ id: u.id, busRange: [u.first, u.last], ctx, touchBridges: touch }),
    );
    const port: DmaPort = {
      translate: (dev, iova, write) => {
        const unit = this.iommuFor(dev);
        return unit ? unit.translate(dev, iova, write) : iova;
      },
      read: (phys, len) => this.ram.view(phys, len),
      write: (phys, bytes) => this.ram.write(phys, bytes),
    };
    this.engines = this.functions.filter((f) => f.kind === 'dma-engine').map((f) => new DmaEngine(f, port));
    this.register();
  }

  private register(): void {
    const reg = this.registry;
    const legacy = this.options.legacyOrder ?? false;
    // 1024 pages (4 MiB) per PART section: small enough for a running guest to go on between them.
    reg.register({ idstr: 'ram', handler: new RamHandler(this.ram.blocks, { pagesPerIteration: 1024 }) });
    const unitEntries = this.iommus.map((u, i) => reg.register({ idstr: u.idstr, instanceId: i, vmsd: u.vmsd, state: u.state, tags: { kind: 'iommu' } }));
    for (const fn of this.functions) {
      if (!(fn instanceof PciBridge)) continue;
      const { vmsd, state } = bridgeSection(fn);
      const e = reg.register({
        idstr: `${fn.path}/${vmsd.name}`,
        vmsd,
        state,
        ...(legacy ? { priority: MigPriority.DEFAULT } : {}),
        // Live: the plan is made after the firmware numbered the buses.
        tags: { kind: 'bridge', get buses() { return [fn.secondaryBus, fn.subordinateBus]; } },
      });
      this.sectionOf.set(fn, e.idstr);
    }
    for (const engine of this.engines) {
      const e = reg.register({ idstr: `${engine.fn.path}/${dmaEngineVmsd.name}`, vmsd: dmaEngineVmsd, state: engine.state, tags: { kind: 'dma-engine', fn: engine.fn } });
      this.sectionOf.set(engine.fn, e.idstr);
    }
    // Last, as QEMU registers it late: the run state at switch-over.
    reg.register({ idstr: 'globalstate', vmsd: globalStateVmsd, state: this.globalState });
    if (legacy) return;
    this.iommus.forEach((unit, i) => {
      const [first, last] = unit.busRange;
      reg.addDependency(
        (e) => e.tags.kind === 'bridge' && (e.tags.buses as number[])[0] <= last && first <= (e.tags.buses as number[])[1],
        { idstr: unitEntries[i].idstr, instanceId: i },
        'the IOMMU rebuilds its address spaces from the bus numbers of the bridges in its scope',
      );
      reg.addDependency(
        { idstr: unitEntries[i].idstr, instanceId: i },
        (e) => e.tags.kind === 'dma-engine' && ownsBus(unit, (e.tags.fn as PciFunction).bus),
        "the engine's DMA goes through this IOMMU",
      );
    });
  }

  /**
   * An IOMMU's post-load reads the bus number of every bridge above a device: through the registry, so
   * the load-order guard sees a bridge that has not been loaded yet.
   */
  private touchBridges(dev: PciFunction, load: LoadContext): void {
    // Once per bridge per load (one `peer` per load): several units rebuilding read each bridge once.
    if (this.touchedFor !== load.peer) {
      this.touchedFor = load.peer;
      this.touched = new Set();
    }
    const seen = this.touched;
    for (let p = dev.parent; p && !seen.has(p); p = p.parent) {
      seen.add(p);
      const idstr = this.sectionOf.get(p);
      if (idstr) load.peer({ idstr });
    }
  }

  /** The unit whose bus range holds the function's bus number now. */
  iommuFor(fn: PciFunction): IommuModel | undefined {
    const bus = fn.bus;
    return this.iommus.find((u) => ownsBus(u, bus));
  }

  /** Firmware bus numbering (SeaBIOS order). */
  enumerate(): void {
    enumerateBuses(this.rootBus);
  }

  /** Firmware, then the driver's start-up. */
  boot(): void {
    bootDriver(this);
  }

  /** Runs `n` workload steps; returns every engine's result of every step. */
  run(n: number): DmaResult[][] {
    const out: DmaResult[][] = [];
    for (let i = 0; i < n; i++) out.push(runStep(this));
    return out;
  }

  /** The driver's step counter, read from guest RAM. */
  get step(): number {
    return driverStep(this.ram);
  }

  /** The run state recorded in (or loaded from) the globalstate section. */
  get runState(): string {
    return runStateOf(this.globalState);
  }

  set runState(name: string) {
    setRunState(this.globalState, name);
  }

  /** SHA-256 of all guest RAM. */
  ramHash(): string {
    const h = createHash('sha256');
    for (const b of this.ram.blocks) h.update(b.data);
    return h.digest('hex');
  }

  /** Saves a snapshot (plan order) to `sink`, in the machine's dialect. */
  save(sink: SnapshotSink): SavePlan {
    return saveSnapshot(this.registry, sink, { machineName: this.machineType, dialect: this.dialect });
  }

  /** Loads a snapshot of any dialect in stream order; a load that fails leaves the machine as it was (see loadSnapshot). */
  load(src: ChunkedSource, options: { checkLoadOrder?: boolean } = {}): Promise<LoadResult> {
    return loadSnapshot(this.registry, src, { machineName: this.loadsMachineTypes, checkLoadOrder: options.checkLoadOrder });
  }
}
