/**
 * One VM process: the reference machine with its workload running at a steady rate, driven through
 * QMP (it implements VmControl) and migratable both ways (it implements MigratableVm).
 */
import { UsageError } from '../errors.js';
import { DirtyingWorkload, Machine, type MachineDescription } from '../machine/index.js';
import { DEFAULT_PARAMETERS, IncomingMigration, isFinal, OutgoingMigration, type MigrationParameters } from '../migration/index.js';
import { objectAdd, QmpError, type MigrationCapabilityStatus, type VmControl } from '../qmp/index.js';
import type { QemuDialect, SaveRegistry } from '../savevm/index.js';
import { UserObjects } from './user-objects.js';

type Listener = (event: string, data?: Record<string, unknown>) => void;

/** How often the dirtying workload writes the pages it owes: often enough that its writes spread over a pass. */
const DIRTY_TICK_MS = 10;

/** Options of a VM process. */
export interface VmOptions {
  /** Workload steps per second while running. Defaults to 20. */
  readonly rate?: number;
  /** Guest RAM pages a second the dirtying workload writes while running (machine/dirtying-workload.ts); none if absent. */
  readonly dirtyRate?: number;
  /** `tcp:...`, `unix:...`, `exec:...`, `file:...` or `defer`: start empty and wait for a migration. */
  readonly incoming?: string;
  /**
   * Touch every page of guest RAM at start-up, as QEMU's -mem-prealloc: a destination then writes the
   * incoming pages into memory the OS has already mapped, instead of faulting each in (dear where page
   * faults are, in a virtual machine). Defaults to false.
   */
  readonly memPrealloc?: boolean;
  /** Stay paused after boot or after an incoming migration (-S). Defaults to false. */
  readonly startPaused?: boolean;
  /** Refuse a load that reads state before it is loaded. Defaults to false. */
  readonly checkLoadOrder?: boolean;
  /** The QEMU release whose stream an outgoing migration sends (any loads). Defaults to the machine's (Machine). */
  readonly dialect?: QemuDialect;
  /** Objects to create before anything else, as object-add's arguments (QEMU's `-object`). */
  readonly objects?: readonly Readonly<Record<string, unknown>>[];
  /** Migration parameters to set before listening (QEMU's `-global migration.tls-creds=ID`). */
  readonly parameters?: Readonly<Record<string, unknown>>;
  /** Files to copy into guest RAM after boot, as QEMU's `-device loader,file=F,addr=A,force-raw=on`. */
  readonly loaders?: readonly { readonly data: Uint8Array; readonly addr: number }[];
  /** Called when the process should end (quit, or a failed incoming migration with its exit code). */
  readonly exit: (code: number) => void;
  /** Where diagnostics go. */
  readonly log: (line: string) => void;
}

export class VmProcess implements VmControl {
  readonly machine: Machine;
  private runstate: string;
  private timer: NodeJS.Timeout | null = null;
  private readonly dirtier: DirtyingWorkload | null;
  private dirtierTimer: NodeJS.Timeout | null = null;
  private readonly listeners = new Set<Listener>();
  private outgoing: OutgoingMigration | null = null;
  private incoming: IncomingMigration | null = null;
  private readonly params: MigrationParameters = { ...DEFAULT_PARAMETERS };
  private readonly caps = new Map<string, boolean>([
    ['events', false],
    ['return-path', false],
  ]);
  private readonly objects = new UserObjects();
  /** tls-creds, tls-hostname, tls-authz: "" when unset, as QEMU reports them. */
  private readonly tlsParams = new Map<string, string>([
    ['tls-creds', ''],
    ['tls-hostname', ''],
    ['tls-authz', ''],
  ]);

  constructor(
    description: MachineDescription,
    private readonly options: VmOptions,
  ) {
    this.machine = new Machine(description, { dialect: options.dialect });
    if (options.memPrealloc) for (const b of this.machine.ram.blocks) b.data.fill(0);
    this.dirtier = options.dirtyRate === undefined ? null : new DirtyingWorkload(this.machine.ram, options.dirtyRate);
    for (const props of options.objects ?? []) objectAdd.run(this, props);
    if (options.parameters) this.setParameters({ ...options.parameters });
    if (options.incoming !== undefined) {
      this.runstate = 'inmigrate';
      if (options.incoming !== 'defer') this.migrateIncoming(options.incoming, true);
    } else {
      this.machine.boot();
      for (const l of options.loaders ?? []) this.machine.ram.write(l.addr, l.data);
      this.runstate = options.startPaused ? 'prelaunch' : 'running';
      if (!options.startPaused) this.startWorkload();
    }
  }

  // ---- MigratableVm

  get registry(): SaveRegistry {
    return this.machine.registry;
  }

  get machineType(): string {
    return this.machine.machineType;
  }

  get dialect(): QemuDialect {
    return this.machine.dialect;
  }

  get running(): boolean {
    return this.runstate === 'running';
  }

  pause(): void {
    this.stop();
  }

  resume(): void {
    this.cont();
  }

  // ---- the workload

  private startWorkload(): void {
    if (this.timer) return;
    const rate = this.options.rate ?? 20;
    this.timer = setInterval(() => this.machine.run(1), Math.max(1, Math.round(1000 / rate)));
    const dirtier = this.dirtier;
    if (dirtier) {
      dirtier.tick(performance.now());
      this.dirtierTimer = setInterval(() => dirtier.tick(performance.now()), DIRTY_TICK_MS);
    }
  }

  private stopWorkload(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.dirtierTimer) clearInterval(this.dirtierTimer);
    this.timer = this.dirtierTimer = null;
    this.dirtier?.pause();
  }

  private emit(event: string, data?: Record<string, unknown>): void {
    for (const l of this.listeners) l(event, data);
  }

  // ---- VmControl

  queryStatus(): { status: string; running: boolean } {
    return { status: this.runstate, running: this.running };
  }

  stop(): void {
    if (!this.running) return;
    this.stopWorkload();
    this.runstate = 'paused';
    this.emit('STOP');
  }

  cont(): void {
    if (this.runstate === 'inmigrate') throw new QmpError('GenericError', 'Migration is not finalized yet');
    if (this.running) return;
    this.runstate = 'running';
    this.startWorkload();
    this.emit('RESUME');
  }

  quit(): void {
    this.stopWorkload();
    this.outgoing?.cancel();
    this.options.exit(0);
  }

  migrate(uri: string): void {
    if (this.runstate === 'inmigrate') throw new QmpError('GenericError', 'Guest is waiting for an incoming migration');
    if (this.outgoing && !isFinal(this.outgoing.status)) throw new QmpError('GenericError', 'There is a migration process in progress');
    const credsId = this.tlsParams.get('tls-creds') ?? '';
    const tls = credsId ? { creds: this.objects.creds(credsId, 'client'), hostname: this.tlsParams.get('tls-hostname') || undefined } : undefined;
    let m: OutgoingMigration;
    try {
      const capabilities = { returnPath: this.caps.get('return-path') };
      m = new OutgoingMigration(this, uri, { ...this.params }, (pass) => this.emit('MIGRATION_PASS', { pass }), capabilities, tls);
    } catch (e) {
      throw new QmpError('GenericError', (e as UsageError).message);
    }
    m.state.onChange((status) => {
      this.emit('MIGRATION', { status });
      // globalstate's run state goes out with the devices: the destination resumes on 'running'.
      if (status === 'device') this.machine.runState = 'running';
      if (status === 'completed') this.runstate = 'postmigrate';
    });
    this.outgoing = m;
    void m.run();
  }

  migrateIncoming(uri: string, fromCommandLine = false): void {
    if (this.runstate !== 'inmigrate' || (this.incoming && !fromCommandLine)) {
      throw new QmpError('GenericError', "The incoming migration has already been started or the guest is not waiting for one");
    }
    const credsId = this.tlsParams.get('tls-creds') ?? '';
    const authzId = this.tlsParams.get('tls-authz') ?? '';
    const onRejected = (peer: string, reason: string) => this.options.log(`vmstate vm: refused the migration from ${peer}: ${reason}; still waiting`);
    const tls = credsId ? { creds: this.objects.creds(credsId, 'server'), authz: authzId ? this.objects.authz(authzId) : undefined, onRejected } : undefined;
    const incoming = new IncomingMigration(this.machine.registry, this.machine.loadsMachineTypes, uri);
    this.incoming = incoming;
    incoming.state.onChange((status) => this.emit('MIGRATION', { status }));
    const onListening = (address: string) => this.options.log(`vmstate vm: waiting for an incoming migration on ${address}${tls ? ' (TLS)' : ''}`);
    void incoming.run({ checkLoadOrder: this.options.checkLoadOrder, onListening, tls }).then((status) => {
      if (status !== 'completed') {
        // Never resume a half-loaded VM.
        const e = incoming.error;
        this.options.log(e?.phase === 'setup' ? `vmstate vm: ${e.message}` : `vmstate vm: incoming migration failed: ${e?.message ?? 'unknown error'}`);
        this.options.exit(1);
        return;
      }
      const wasRunning = this.machine.runState === 'running';
      this.runstate = 'paused';
      if (wasRunning && !this.options.startPaused) this.cont();
    });
  }

  migrateCancel(): void {
    this.outgoing?.cancel();
  }

  queryMigrate(): Record<string, unknown> {
    return this.outgoing?.info() ?? this.incoming?.info() ?? {};
  }

  setParameters(p: Record<string, unknown>): void {
    for (const [k, v] of Object.entries(p)) {
      if (k === 'max-bandwidth') {
        if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new QmpError('GenericError', "Parameter 'max-bandwidth' expects a size");
        this.params.maxBandwidth = v;
      } else if (k === 'downtime-limit') {
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 2000000) {
          throw new QmpError('GenericError', "Parameter 'downtime_limit' expects an integer in the range of 0 to 2000000 milliseconds");
        }
        this.params.downtimeLimitMs = v;
      } else if (this.tlsParams.has(k)) {
        // null resets to "", as in QEMU; "" turns TLS off.
        this.tlsParams.set(k, typeof v === 'string' ? v : '');
      } else {
        throw new QmpError('GenericError', `Parameter '${k}' is not supported by vmstate`);
      }
    }
  }

  queryParameters(): Record<string, unknown> {
    return { 'max-bandwidth': this.params.maxBandwidth, 'downtime-limit': this.params.downtimeLimitMs, ...Object.fromEntries(this.tlsParams) };
  }

  objectAdd(props: Record<string, unknown>): void {
    this.objects.add(props);
  }

  objectDel(id: string): void {
    this.objects.del(id);
  }

  setCapabilities(caps: MigrationCapabilityStatus[]): void {
    for (const c of caps) {
      if (!this.caps.has(c.capability)) throw new QmpError('GenericError', `Capability '${c.capability}' is not supported by vmstate`);
    }
    for (const c of caps) this.caps.set(c.capability, c.state);
  }

  queryCapabilities(): MigrationCapabilityStatus[] {
    return [...this.caps].map(([capability, state]) => ({ capability, state }));
  }

  onEvent(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** What the demo and tests compare across a migration: the step, the RAM and every engine's registers. */
  queryWorkload(): Record<string, unknown> {
    const engines = this.machine.engines.map((e) => `${e.fn.path}:${e.state.status}:${e.state.checksum}:${e.state.completed}:${e.state.faults}`).join(';');
    const out: Record<string, unknown> = { step: this.machine.step, 'ram-hash': this.machine.ramHash(), engines };
    if (this.dirtier) out['dirtied-pages'] = this.dirtier.pagesWritten;
    return out;
  }
}
