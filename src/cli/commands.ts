/**
 * The commands behind `vmstate …`, written against small output callbacks so tests can run them in
 * process. Each command's code loads on demand, so a run pays only for the command it runs.
 */
import { UsageError } from '../errors.js';
import type { Output } from './args.js';
export type { Output } from './args.js';

const USAGE = `usage: vmstate <command> [options]

commands:
  analyze FILE                 print the stream's device state as JSON (as QEMU 10.0's analyze-migration.py -f)
    --compat 7.2|10.0          as that QEMU's analyze-migration.py prints it (default 10.0)
    --desc                     print the VMDESCRIPTION instead (as analyze-migration.py -d desc)
    --ram-dir DIR              also write each RAM block's contents to its own file under DIR
    --vmdesc FILE              describe devices with this VMDESCRIPTION (a stream, or --desc JSON),
                               e.g. to read a stream that was cut short, or one from a pipe (FILE -
                               is standard input); also for identify, sections, rewrite and order
  identify FILE                what the stream tells of the QEMU that wrote it (version bounds, each
                               with its marker; machine type, architecture, page size, capabilities,
                               commands, RAM blocks)
    --json                     as JSON
  sections FILE                one line per record (configuration, commands, sections, EOF, trailer):
                               offset, type, id, idstr (or name), instance, version, size
    --json                     the same as a JSON array
  rewrite IN OUT               decode every section and encode it again into OUT
    --set 'IDSTR[#N]:FIELD.PATH=VALUE'   change one value on the way (repeatable)
  order FILE                   check the section order against what QEMU's devices need (bridges before
                               IOMMUs before PCI devices, GICv3 before its ITS, virtio-mem before IOMMUs),
                               by the rules of the oldest QEMU the stream can be from (as identify finds)
    --qemu VERSION             by the rules of that QEMU instead (7.2 to 10.2)
    --json                     the violations as JSON
  compat SOURCE DEST [DEST2]   will the stream SOURCE load into the destination QEMU? DEST: a stream it
                               wrote with the same devices, its -dump-vmstate JSON, or both (two
                               arguments). Every difference that fails the load or loads it wrong
                               (machine type, page size, capabilities, sections, versions, fields,
                               subsections, RAM blocks, order), in stream order; exit 1 unless it will load
    --json                     as JSON
  compat --dumps OLD NEW       the same, class by class, between two QEMUs' -dump-vmstate files (the
                               check scripts/vmstate-static-checker.py makes); exit 1 on a break
  explain SOURCE --error TEXT  where in SOURCE the destination QEMU stopped, from its error text (its
                               stderr, one or more lines): the section, the field and their byte offsets
    --dest DEST                and what differs there from DEST (a stream the destination wrote)
    --json                     as JSON
  plan FILE.json               the save order of the entries in FILE.json, with the reason for each
    --json                     as JSON
    --edges-win                let dependencies override priorities (reported)
  snapshot MACHINE OUT.mig     boot the reference machine (a JSON description, or a name from machines/),
                               run its DMA workload, and save a snapshot
    --steps N                  workload steps before saving (default 10)
    --legacy-order             register bridges as QEMU did before 2018 (the IOMMU then loads first)
    --qemu 7.2|10.0            write the stream as that QEMU does (default 7.2, or the release of the
                               machine type the description names)
  restore OUT.mig MACHINE      load a snapshot (as QEMU 7.2 or 10.0 writes it) into a fresh machine, run
                               more steps, and compare every DMA result and the RAM hash with an
                               uninterrupted run (exit 1 if different)
    --steps N                  steps after the restore (default 10)
    --check-load-order         refuse a device reading state that is not loaded yet (LoadOrderError)
  vm MACHINE --qmp ADDRESS     run one VM process, driven over QMP (unix:PATH or tcp:HOST:PORT)
    --incoming URI|defer       wait for an incoming migration (tcp:, unix:, exec:, file:)
    --rate N                   workload steps per second (default 20)
    --dirty PAGES/s            also write that many guest RAM pages a second, in turn over the top
                               quarter of RAM (at most 256 MiB): a guest that is hard to migrate
    --paused                   stay paused after boot or after an incoming migration
    --mem-prealloc             touch all guest RAM at start (QEMU's -mem-prealloc): an incoming
                               migration then writes into memory already mapped
    --loader FILE@ADDR         copy a file into guest RAM after boot (QEMU's -device loader)
    --qemu 7.2|10.0            migrate out as that QEMU does (as for snapshot); incoming, either loads
    -object TYPE,id=ID,...     a QEMU object: tls-creds-x509 (dir, endpoint, verify-peer), authz-simple,
                               authz-list (JSON for its rules); commas in values doubled
    -global migration.P=V      P: tls-creds, tls-hostname or tls-authz (before --incoming listens)
  migrate --from QMP --to URI  migrate a running VM live, with progress
    --max-bandwidth B          bytes per second (e.g. 100M; 0 = unlimited)
    --downtime-limit MS        the longest pause allowed at switch-over
    --tls-creds ID             over TLS, with the source's tls-creds-x509 object ID
    --tls-hostname NAME        the name the destination's certificate must carry (default: the URI's host)
    --return-path              completed only once the destination reports it loaded everything
                               (tcp: and unix:)
  proxy --listen ADDR --to ADDR   stand between a source QEMU (migrating to ADDR) and its destination,
                               relaying the stream and the return path byte for byte; exit 1 naming the
                               side that failed (ADDR: tcp:HOST:PORT or unix:PATH)
    --capture FILE             also write the stream to FILE (as the source sent it)
    --check                    decode the stream as it passes: passes, pages, pages sent again, and the
                               device sections' order by QEMU's rules, each misorder named as it passes;
                               exit 1 if what went on breaks a rule
    --fix-order                re-send the device sections in an order the rules accept (they are held
                               from the switch-over to the end of the stream; RAM never is)
    --reorder 'A<B'            send the sections A names just before the first B names (a misorder on
                               purpose); A, B: an idstr, its last /part (the VMSD name), with #N an instance
    --map 'IDSTR#N=IDSTR#M'    send instance N of IDSTR as instance M
    --set IDSTR[#N]:FIELD=V    change a field, as rewrite does
    --qemu VERSION             the release whose rules --check and --fix-order follow (default 7.2, whose
                               rules 8.0 to 10.0 share)
  demo                         live-migrate the default machine between two processes and verify it
  help                         this text
`;

/** Each command's code, loaded when that command runs. */
const COMMANDS: Readonly<Record<string, () => Promise<(argv: readonly string[], out: Output) => number | Promise<number>>>> = {
  analyze: async () => (await import('./stream-commands.js')).analyzeCommand,
  identify: async () => (await import('./stream-commands.js')).identifyCommand,
  sections: async () => (await import('./stream-commands.js')).sectionsCommand,
  rewrite: async () => (await import('./stream-commands.js')).rewriteCommand,
  order: async () => (await import('./order-command.js')).orderCommand,
  compat: async () => (await import('./compat-command.js')).compatCommand,
  explain: async () => (await import('./explain-command.js')).explainCommand,
  plan: async () => (await import('./plan-command.js')).planCommand,
  snapshot: async () => (await import('./machine-commands.js')).snapshotCommand,
  restore: async () => (await import('./machine-commands.js')).restoreCommand,
  vm: async () => (await import('./vm-command.js')).vmCommand,
  migrate: async () => (await import('./migrate-command.js')).migrateCommand,
  proxy: async () => (await import('./proxy-command.js')).proxyCommand,
  demo: async () => (await import('./demo-command.js')).demoCommand,
};

export async function runCommand(argv: readonly string[], out: Output): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    out.stdout(USAGE);
    return command === undefined ? 2 : 0;
  }
  const load = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
  if (load === undefined) throw new UsageError(`unknown command "${command}" (see vmstate help)`);
  return (await load())(rest, out);
}
