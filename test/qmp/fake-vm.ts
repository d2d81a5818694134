// A VmControl for the QMP tests: keeps a run state, records what it was asked, and emits events on request.
import { QmpError, type MigrationCapabilityStatus, type VmControl } from '../../src/qmp/index.js';

type Listener = (event: string, data?: Record<string, unknown>) => void;

/** A scripted VM: stop/cont change the state and emit STOP/RESUME; migrate runs setup → active → completed. */
export class FakeVm implements VmControl {
  status = 'running';
  /** Every call made, as `name(arg)`. */
  readonly calls: string[] = [];
  quitCalled = false;
  parameters: Record<string, unknown> = { 'max-bandwidth': 134217728, 'downtime-limit': 300 };
  capabilities: MigrationCapabilityStatus[] = [
    { capability: 'events', state: false },
    { capability: 'xbzrle', state: false },
  ];
  migration: Record<string, unknown> = {};
  private readonly listeners = new Set<Listener>();

  /** Emits `event` to every subscriber, as the VM would. */
  emit(event: string, data?: Record<string, unknown>): void {
    for (const l of this.listeners) l(event, data);
  }

  /** How many subscribers are attached. */
  get listenerCount(): number {
    return this.listeners.size;
  }

  queryStatus() {
    return { status: this.status, running: this.status === 'running' };
  }
  stop() {
    this.calls.push('stop');
    this.status = 'paused';
    this.emit('STOP');
  }
  cont() {
    this.calls.push('cont');
    if (this.status === 'inmigrate') throw new QmpError('GenericError', "Migration is not finalized yet");
    this.status = 'running';
    this.emit('RESUME');
  }
  quit() {
    this.calls.push('quit');
    this.quitCalled = true;
  }
  migrate(uri: string) {
    this.calls.push(`migrate(${uri})`);
    if (!/^(tcp|unix|exec|fd|file):/.test(uri)) throw new QmpError('GenericError', "Parameter 'uri' expects a valid migration protocol");
    if (this.migration.status === 'active') throw new QmpError('GenericError', 'There\'s a migration process in progress');
    this.setMigration('setup');
    setImmediate(() => {
      this.setMigration('active');
      this.emit('MIGRATION_PASS', { pass: 1 });
      setImmediate(() => this.setMigration('completed'));
    });
  }
  migrateIncoming(uri: string) {
    this.calls.push(`migrateIncoming(${uri})`);
    if (this.status !== 'inmigrate') throw new QmpError('GenericError', "'-incoming' was not specified on the command line");
  }
  migrateCancel() {
    this.calls.push('migrateCancel');
  }
  queryMigrate() {
    return this.migration;
  }
  setParameters(p: Record<string, unknown>) {
    this.calls.push(`setParameters(${JSON.stringify(p)})`);
    for (const [name, value] of Object.entries(p)) {
      if (name === 'downtime-limit' && ((value as number) < 0 || (value as number) > 2000000)) {
        throw new QmpError('GenericError', "Parameter 'downtime_limit' expects an integer in the range of 0 to 2000000 milliseconds");
      }
      if (!(name in this.parameters)) throw new QmpError('GenericError', `Parameter '${name}' is not supported`);
    }
    Object.assign(this.parameters, p);
  }
  queryParameters() {
    return this.parameters;
  }
  setCapabilities(caps: MigrationCapabilityStatus[]) {
    this.calls.push(`setCapabilities(${JSON.stringify(caps)})`);
    for (const c of caps) {
      const mine = this.capabilities.find((m) => m.capability === c.capability);
      if (!mine) throw new QmpError('GenericError', `Capability '${c.capability}' is not supported`);
    }
    this.capabilities = this.capabilities.map((m) => caps.find((c) => c.capability === m.capability) ?? m);
  }
  queryCapabilities() {
    return this.capabilities;
  }
  onEvent(listener: Listener) {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  private setMigration(status: string): void {
    this.migration = { status, 'total-time': 0, ram: { transferred: 0, remaining: 0, total: 0 } };
    this.emit('MIGRATION', { status });
  }
}
