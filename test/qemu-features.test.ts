// One real stream per migration feature, made by real QEMU over QMP (10.0 from scripts/qemu-10.sh, the
// distribution's 7.2), and vmstate on each, through its command line:
//   (a) `analyze` prints what that QEMU's analyze-migration.py prints (`--compat 7.2` for 7.2's). Where the
//       script cannot read the stream (commands other than SWITCHOVER_START, XBZRLE or COMPRESS pages, no
//       VMDESCRIPTION after postcopy, iterative sections it does not know), it must still fail on it, and it
//       reads a copy without those records instead (and with the trailer of a precopy stream of the same
//       machine): without -m the script prints nothing of RAM pages, so vmstate's output on the stream itself
//       must equal the script's on that copy, but for the iterative sections left out, which vmstate prints
//       as empty strings. Where no copy will do (mapped-ram), the script reads a plain stream of the same
//       machine instead, and vmstate must print the same of both. Where only another release's script reads
//       the stream (7.2's pseries), vmstate is compared with that one;
//   (b) `rewrite` gives the stream back byte for byte;
//   (c) `sections` lists records that tile the stream from byte 8 to its end;
//   (d) `identify` gives the lower (and upper) bound expected of the QEMU that wrote it;
//   (e) where RAM content matters, `analyze --ram-dir` writes what QEMU itself dumps (pmemsave) of the
//       guest it migrated, or of the guest that loaded the stream.
// Each stream is also checked to show its feature (the commands, the early section, the XBZRLE pages, ...).
// Skips when QEMU, its scripts or python3 are missing, unless VMSTATE_REQUIRE_QEMU=1.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { decodeStream, openStreamFile, readVmdescFromFile, type RecordRow, type StreamIdentity } from '../src/analyze/index.js';
import { assertSameOutput, assertSucceeded, runCli } from './support/cli.js';
import { dirtyingKernel } from './support/dirtying-kernel.js';
import { analyzeScript10OrSkip, analyzeScriptOrSkip, runAnalyzeScript } from './support/peer.js';
import {
  loadFromFile,
  migrateToFile,
  pollUntil,
  qemu10OrSkip,
  qemuOrSkip,
  queryMigrate,
  startQemu,
  type JsonObject,
  type MigrationInfo,
  type QemuCommand,
  type QemuHandle,
  type QmpClient,
  type Skippable,
} from './support/qemu.js';
import { teeProxy } from './support/tee-proxy.js';

const TEST_TIMEOUT_MS = 90_000;
const X86 = 'qemu-system-x86_64';
/** QEMU_VM_FILE_MAGIC and QEMU_VM_FILE_VERSION: the 8 bytes before the first record. */
const HEADER_BYTES = 8;
/** Guest RAM of every machine here. */
const RAM_BYTES = 64 << 20;
/** The legacy VGA and BIOS window [640 KiB, 1 MiB): guest-physical reads there do not reach pc.ram. */
const LEGACY_HOLE = [0xa0000, 0x100000] as const;
/** pc.bios (SeaBIOS, 256 KiB) is mapped just below 4 GiB. */
const BIOS_AT = 0xfffc0000;
const BIOS_BYTES = 0x40000;

/** The disk of the block and dirty-bitmap streams: 1 MiB of 0x5a, one chunk of block migration. */
const DISK_BYTES = 1 << 20;
const DISK_BYTE = 0x5a;

/** The dirtying kernel's layout: it runs at 1 MiB and writes 128 pages from 2 MiB on, as fast as it can (with fewer, a pass often finds none dirty and switches over before XBZRLE is used). */
const KERNEL = { loadAt: 0x100000, dirtyAt: 0x200000, pages: 128, delayLoops: 50, flushTlb: true } as const;

type Version = '10.0' | '7.2';

/** QEMU's own dump of a guest's memory, taken with pmemsave. */
interface MemoryDump {
  /** Guest-physical [0, RAM_BYTES): pc.ram, but for the legacy hole. */
  readonly ram: string;
  /** pc.bios, read where it is mapped below 4 GiB. */
  readonly bios: string;
}

interface Made {
  readonly file: string;
  /** A precopy stream of the same machine, whose VMDESCRIPTION describes this one (postcopy sends none). */
  readonly vmdescFrom?: string;
  /** What the stream's RAM must hold, as QEMU dumped it. */
  readonly memory?: MemoryDump;
  /**
   * A stream of the same machine without the feature, which the script reads in this one's stead (it
   * cannot read this one at all): vmstate must print of this one what the script prints of that one.
   */
  readonly standIn?: string;
  /** How it was made, for the test's diagnostics. */
  readonly note?: string;
}

/** RAM records of each kind in a stream. */
interface RamCounts {
  pages: number;
  zeroPages: number;
  xbzrlePages: number;
  compressedPages: number;
  /** mapped-ram block headers, each naming where its bitmap and pages sit in the file. */
  mappedRegions: number;
}

/** What a stream showed, for a scenario to check its feature is there. */
interface Facts {
  readonly rows: readonly RecordRow[];
  readonly identity: StreamIdentity;
  readonly ram: RamCounts;
  readonly bytes: Buffer;
}

interface Scenario {
  readonly name: string;
  readonly qemu: Version;
  /** The QEMU binary when not qemu-system-x86_64 (7.2's only: scripts/qemu-10.sh fetches no other). */
  readonly binary?: 'qemu-system-ppc64';
  /** Makes the stream under `dir` with `q` (QEMU of `qemu`'s version). */
  make(q: QemuCommand, dir: string): Promise<Made>;
  /** Fails unless the stream shows the feature. */
  shows(facts: Facts): void;
  /** identify's bounds. */
  readonly identify: { readonly atLeast: string; readonly atMost: string | null };
  /** Records analyze-migration.py cannot read: left out of the copy it reads, and it must fail on the stream. */
  readonly unreadable?: (row: RecordRow) => boolean;
  /**
   * Iterative sections the script does not know (it fails on them): left out of the copy it reads, and
   * their `"IDSTR (ID)": ""` lines (vmstate prints them as QEMU 10.0's script prints spapr/htab) left out
   * of vmstate's output before the two are compared.
   */
  readonly unknownIterative?: readonly string[];
  /**
   * Compare with this version's script instead of that of the QEMU that wrote the stream, which must fail
   * on it; `analyze` with that QEMU's ways (`--compat`) must still read it and print the same sections.
   */
  readonly script?: Version;
  /** Also compare `analyze --compat 7.2` with 7.2's script (a 10.0 stream that script can read). */
  readonly alsoScript72?: boolean;
}

const dirs: string[] = [];
after(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

// ---- making streams ------------------------------------------------------------------------------------

/** q35 (or `machine`) under TCG with 64 MiB, no default devices, never run (-S) unless `running`. */
function tcgMachine(q: QemuCommand, o: { machine?: string; memory?: string; running?: boolean } = {}, ...extra: string[]): string[] {
  return [...q.args, '-M', o.machine ?? 'q35', '-accel', 'tcg', '-nodefaults', '-m', o.memory ?? '64M', ...(o.running === true ? [] : ['-S']), ...extra];
}

async function setCapabilities(qmp: QmpClient, names: readonly string[]): Promise<void> {
  if (names.length > 0) await qmp.execute('migrate-set-capabilities', { capabilities: names.map((capability) => ({ capability, state: true })) });
}

async function start(q: QemuCommand, args: readonly string[]): Promise<QemuHandle> {
  return startQemu({ binary: q.binary, args, env: q.env });
}

/**
 * Starts QEMU with `args`, runs `setup`, sets `caps`, dumps its memory into `dump` if given, migrates it
 * into `file` (with exec:, or with `uri` naming it; `extra` goes into migrate's arguments), and quits it.
 */
async function migratedOnce(
  q: QemuCommand,
  args: readonly string[],
  file: string,
  o: { caps?: readonly string[]; setup?: (qmp: QmpClient) => Promise<unknown>; dump?: string; uri?: string; extra?: JsonObject } = {},
): Promise<Made & { readonly info: MigrationInfo }> {
  const vm = await start(q, args);
  try {
    await o.setup?.(vm.qmp);
    await setCapabilities(vm.qmp, o.caps ?? []);
    const memory = o.dump === undefined ? undefined : await dumpMemory(vm.qmp, o.dump);
    return { file, memory, info: await migrateToFile(vm.qmp, file, undefined, o.uri, o.extra) };
  } finally {
    await vm.stop();
  }
}

/** Waits until query-migrate on `qmp` says completed (throws if failed or cancelled). */
function completed(qmp: QmpClient, what: string, timeoutMs = 30_000): Promise<MigrationInfo> {
  return pollUntil(what, timeoutMs, async () => {
    const info = await queryMigrate(qmp);
    if (info.status === 'failed' || info.status === 'cancelled') throw new Error(`${what} ${info.status}: ${info['error-desc'] ?? 'no error-desc'}`);
    return info.status === 'completed' ? info : undefined;
  });
}

/** Dumps the guest's pc.ram and pc.bios with QMP pmemsave into `dir`. */
async function dumpMemory(qmp: QmpClient, dir: string): Promise<MemoryDump> {
  const dump = { ram: path.join(dir, 'pmemsave-ram.bin'), bios: path.join(dir, 'pmemsave-bios.bin') };
  await qmp.execute('pmemsave', { val: 0, size: RAM_BYTES, filename: dump.ram });
  await qmp.execute('pmemsave', { val: BIOS_AT, size: BIOS_BYTES, filename: dump.bios });
  return dump;
}

/**
 * Migrates a QEMU started with `args` to a second one waiting with the same `args` (-incoming defer), through
 * a {@link teeProxy} recording the stream into `file`, both with capabilities `caps`. `during` runs once the
 * source's migrate has been sent. With `dump`, the destination's memory is dumped once it has loaded.
 */
async function migratedToPeer(
  q: QemuCommand,
  args: readonly string[],
  file: string,
  o: { caps: readonly string[]; params?: Record<string, number>; during?: (src: QmpClient) => Promise<void>; dump?: string },
): Promise<Made> {
  const dst = await start(q, [...args, '-incoming', 'defer']);
  let src: QemuHandle | undefined;
  let proxy: ReturnType<typeof teeProxy> | undefined;
  try {
    src = await start(q, args);
    const incoming = path.join(dst.dir, 'incoming.sock');
    const relay = path.join(dst.dir, 'relay.sock');
    proxy = teeProxy(relay, incoming, file);
    await setCapabilities(dst.qmp, o.caps);
    await dst.qmp.execute('migrate-incoming', { uri: `unix:${incoming}` });
    await setCapabilities(src.qmp, o.caps);
    if (o.params !== undefined) await src.qmp.execute('migrate-set-parameters', o.params);
    await src.qmp.execute('migrate', { uri: `unix:${relay}` });
    await o.during?.(src.qmp);
    await completed(src.qmp, 'migration to the peer');
    await completed(dst.qmp, 'incoming migration on the peer');
    await proxy.recorded;
    return { file, memory: o.dump === undefined ? undefined : await dumpMemory(dst.qmp, o.dump) };
  } finally {
    proxy?.close();
    await src?.stop();
    await dst.stop();
  }
}

/** Writes the dirtying kernel into `dir`; returns its path for -kernel. */
async function kernelFile(dir: string): Promise<string> {
  const file = path.join(dir, 'dirtying-kernel.bin');
  await writeFile(file, dirtyingKernel(KERNEL));
  return file;
}

/** Resolves once the dirtying kernel has written its first page (SeaBIOS has booted it). */
async function kernelRunning(qmp: QmpClient): Promise<void> {
  await pollUntil('the dirtying kernel to run', 20_000, async () => {
    const out = await qmp.execute('human-monitor-command', { 'command-line': `xp /1wx 0x${KERNEL.dirtyAt.toString(16)}` });
    return typeof out === 'string' && parseInt(out.split(':')[1] ?? '0', 16) > 0 ? true : undefined;
  });
}

/** Counts the RAM records of each kind, reading the stream with `vmdescFrom`'s description or its own. */
async function countRam(file: string, vmdescFrom?: string): Promise<RamCounts> {
  const counts: RamCounts = { pages: 0, zeroPages: 0, xbzrlePages: 0, compressedPages: 0, mappedRegions: 0 };
  const described = openStreamFile(vmdescFrom ?? file);
  const stream = vmdescFrom === undefined ? described : openStreamFile(file);
  try {
    const vmdesc = readVmdescFromFile(described)?.vmdesc ?? null;
    await decodeStream(stream.source(), vmdesc, {
      ram: {
        page: () => void counts.pages++,
        zeroPage: () => void counts.zeroPages++,
        xbzrlePage: () => void counts.xbzrlePages++,
        compressedPage: () => void counts.compressedPages++,
        mappedRegion: () => void counts.mappedRegions++,
      },
    });
  } finally {
    stream.close();
    if (described !== stream) described.close();
  }
  return counts;
}

/**
 * Migrates a running guest that keeps dirtying its pages into `file` with XBZRLE, several passes: 2 MB/s
 * keeps the first pass longer than QEMU's 100 ms bandwidth window (a shorter one switches over at once),
 * a 1 ms downtime limit (10.0: and 1 kB/s of switch-over bandwidth) keeps the rest from converging while
 * the guest runs; after 5 dirty-bitmap syncs the guest is stopped and the migration completes. A pass can
 * still find no page dirty and switch over before XBZRLE is used: then the guest runs on and migrates again.
 */
async function migratedLiveWithXbzrle(vm: QemuHandle, version: Version, file: string): Promise<string> {
  const params = { 'max-bandwidth': 2 << 20, 'downtime-limit': 1, ...(version === '10.0' ? { 'avail-switchover-bandwidth': 1000 } : {}) };
  await setCapabilities(vm.qmp, ['xbzrle']);
  await vm.qmp.execute('migrate-set-parameters', params);
  for (let attempt = 1; ; attempt++) {
    let settled = false;
    const migrated = migrateToFile(vm.qmp, file);
    migrated.then(
      () => (settled = true),
      () => (settled = true), // awaited below; a failure must not go unhandled while we poll
    );
    // Until the migrate command is in, query-migrate still tells of the last migration ('none' before the
    // first, 'completed' after one): only this one's end, or its fifth sync while active, ends the wait.
    await pollUntil('five dirty-bitmap syncs', 30_000, async () => {
      const info = await queryMigrate(vm.qmp);
      const syncs = typeof info.ram === 'object' && info.ram !== null && !Array.isArray(info.ram) ? info.ram['dirty-sync-count'] : undefined;
      return settled || (info.status === 'active' && typeof syncs === 'number' && syncs >= 5) ? true : undefined;
    }, 10);
    if ((await queryMigrate(vm.qmp)).status === 'active') await vm.qmp.execute('stop');
    const info = await migrated;
    const xbzrle = (await countRam(file)).xbzrlePages;
    const syncs = typeof info.ram === 'object' && info.ram !== null && !Array.isArray(info.ram) ? info.ram['dirty-sync-count'] : undefined;
    if (xbzrle > 0 || attempt === 4) return `migration ${attempt}: ${xbzrle} XBZRLE pages after ${syncs} dirty-bitmap syncs`;
    await vm.qmp.execute('cont');
  }
}

/** A running guest with the dirtying kernel; migrated live with XBZRLE, then loaded into a fresh QEMU whose memory is dumped. */
async function xbzrleStream(q: QemuCommand, version: Version, dir: string): Promise<Made> {
  const args = tcgMachine(q, { running: true }, '-kernel', await kernelFile(dir));
  const file = path.join(dir, 'xbzrle.mig');
  let note = '';
  const vm = await start(q, args);
  try {
    await kernelRunning(vm.qmp);
    note = await migratedLiveWithXbzrle(vm, version, file);
  } finally {
    await vm.stop();
  }
  const loaded = await loadFromFile(q.binary, args, file, { env: q.env });
  try {
    return { file, memory: await dumpMemory(loaded.qmp, dir), note };
  } finally {
    await loaded.stop();
  }
}

/** Writes the disk into `dir`; returns its path. */
async function diskFile(dir: string): Promise<string> {
  const file = path.join(dir, 'disk.img');
  await writeFile(file, Buffer.alloc(DISK_BYTES, DISK_BYTE));
  return file;
}

// ---- checking streams ----------------------------------------------------------------------------------

/** The commands in `rows`, by name (`sections` follows each with what its payload says: 'PING 1'). */
function commandNames(rows: readonly RecordRow[]): string[] {
  return rows.flatMap((r) => (r.type === 'command' && r.name !== undefined ? [r.name.split(' ')[0]] : []));
}

function ramRows(rows: readonly RecordRow[], type: RecordRow['type']): RecordRow[] {
  return rows.filter((r) => r.type === type && 'idstr' in r && r.idstr === 'ram');
}

/** Commands analyze-migration.py does not know: all but SWITCHOVER_START (10.0's knows that one). */
const unknownCommand = (r: RecordRow): boolean => r.type === 'command' && r.name !== 'SWITCHOVER_START';
/** RAM's PART and END sections, which hold the pages (the script reads no XBZRLE or COMPRESS page). */
const ramPages = (r: RecordRow): boolean => (r.type === 'part' || r.type === 'end') && 'idstr' in r && r.idstr === 'ram';

/** The stream without the records `drop` picks, with the trailer of `vmdescFrom` when it has none. */
async function readableCopy(file: string, bytes: Buffer, rows: readonly RecordRow[], drop: (r: RecordRow) => boolean, vmdescFrom?: string): Promise<string> {
  const parts = [bytes.subarray(0, HEADER_BYTES), ...rows.filter((r) => !drop(r)).map((r) => bytes.subarray(r.offset, r.offset + r.size))];
  if (!rows.some((r) => r.type === 'vmdesc') && vmdescFrom !== undefined) {
    const other = openStreamFile(vmdescFrom);
    try {
      const found = readVmdescFromFile(other);
      assert.ok(found !== null, `${vmdescFrom} has no VMDESCRIPTION`);
      parts.push((await readFile(vmdescFrom)).subarray(found.offset));
    } finally {
      other.close();
    }
  }
  const copy = `${file}.readable`;
  await writeFile(copy, Buffer.concat(parts));
  return copy;
}

/** Asserts that the pages --ram-dir wrote equal QEMU's dump, naming the first pages that differ. */
async function assertMemoryEqual(ramDir: string, dump: MemoryDump): Promise<void> {
  const [ram, ramDump, bios, biosDump] = await Promise.all([
    readFile(path.join(ramDir, 'pc.ram')),
    readFile(dump.ram),
    readFile(path.join(ramDir, 'pc.bios')),
    readFile(dump.bios),
  ]);
  assert.equal(ram.length, RAM_BYTES, 'pc.ram from --ram-dir');
  const differing: string[] = [];
  for (let at = 0; at < RAM_BYTES; at += 4096) {
    if (at >= LEGACY_HOLE[0] && at < LEGACY_HOLE[1]) continue;
    if (!ram.subarray(at, at + 4096).equals(ramDump.subarray(at, at + 4096))) differing.push(`0x${at.toString(16)}`);
  }
  assert.deepEqual(differing.slice(0, 10), [], `${differing.length} pages of pc.ram differ from QEMU's pmemsave`);
  assert.ok(bios.equals(biosDump), "pc.bios differs from QEMU's pmemsave");
}

/** `--compat` for the script of `version`. */
function compatWith(version: Version): string[] {
  return version === '7.2' ? ['--compat', '7.2'] : [];
}

/**
 * Asserts that `printed` (vmstate analyze's output) shows every iterative section but RAM as an empty
 * string, as QEMU 10.0's script prints spapr/htab; returns it without the lines of those in `leaveOut`.
 */
function iterativePrintedEmpty(printed: string, rows: readonly RecordRow[], leaveOut: readonly string[]): string {
  let text = printed;
  for (const r of rows) {
    if (r.type !== 'start' || r.idstr === 'ram') continue;
    const line = `    ${JSON.stringify(`${r.idstr} (${r.sectionId})`)}: "",\n`;
    assert.ok(text.includes(line), `vmstate analyze does not print ${line.trim()}`);
    if (leaveOut.includes(r.idstr)) text = text.replace(line, '');
  }
  return text;
}

/** The analyze-migration.py of each version a scenario compares with. */
type Scripts = Partial<Record<Version, string>>;

function scriptOf(scripts: Scripts, version: Version): string {
  const script = scripts[version];
  assert.ok(script !== undefined, `no analyze-migration.py of QEMU ${version}`);
  return script;
}

async function checkStream(s: Scenario, made: Made, scripts: Scripts, dir: string): Promise<void> {
  const { file, vmdescFrom, memory, standIn } = made;
  const describe = vmdescFrom === undefined ? [] : ['--vmdesc', vmdescFrom];
  const bytes = await readFile(file);

  // (c) sections: every record, end to end (mapped-ram's bitmaps and pages sit inside RAM's START record).
  const sections = runCli(['sections', '--json', ...describe, file]);
  assertSucceeded('vmstate sections', sections);
  const rows = JSON.parse(sections.stdout) as RecordRow[];
  let at = HEADER_BYTES;
  for (const row of rows) {
    assert.equal(row.offset, at, `the ${row.type} record after byte ${at} starts elsewhere`);
    at = row.offset + row.size;
  }
  assert.equal(at, bytes.length, 'the records end before the file does');

  // (d) identify, and what the stream shows of its feature.
  const identify = runCli(['identify', '--json', ...describe, file]);
  assertSucceeded('vmstate identify', identify);
  const identity = JSON.parse(identify.stdout) as StreamIdentity;
  assert.deepEqual({ atLeast: identity.atLeast, atMost: identity.atMost }, s.identify, 'identify bounds');
  s.shows({ rows, identity, ram: await countRam(file, vmdescFrom), bytes });

  // (a) analyze against the script, (e) --ram-dir against QEMU's dump.
  const peerVersion = s.script ?? s.qemu;
  const script = scriptOf(scripts, peerVersion);
  const compat = compatWith(peerVersion);
  const ramDir = path.join(dir, 'ram-dir');
  const ours = runCli(['analyze', ...compat, ...describe, ...(memory === undefined ? [] : ['--ram-dir', ramDir]), file]);
  assertSucceeded('vmstate analyze', ours);
  const unknownIterative = s.unknownIterative ?? [];
  const printed = iterativePrintedEmpty(ours.stdout, rows, unknownIterative);
  let readable = file;
  if (standIn !== undefined) {
    readable = standIn;
  } else if (s.unreadable !== undefined || unknownIterative.length > 0 || vmdescFrom !== undefined) {
    const drop = (r: RecordRow): boolean => s.unreadable?.(r) === true || ('idstr' in r && unknownIterative.includes(r.idstr));
    readable = await readableCopy(file, bytes, rows, drop, vmdescFrom);
  }
  if (readable !== file) {
    const direct = runAnalyzeScript(['-f', file], { script });
    assert.notEqual(direct.status, 0, 'analyze-migration.py reads this stream now: compare with it directly');
  }
  const peer = runAnalyzeScript(['-f', readable], { script });
  assertSucceeded(`analyze-migration.py -f ${readable}`, peer);
  assertSameOutput(printed, peer.stdout, `vmstate analyze ${s.name}`);
  if (standIn !== undefined) {
    const plain = runCli(['analyze', ...compat, standIn]);
    assertSucceeded(`vmstate analyze ${standIn}`, plain);
    assertSameOutput(plain.stdout, peer.stdout, `vmstate analyze of the stand-in ${standIn}`);
  }
  if (peerVersion !== s.qemu) {
    // The script of the QEMU that wrote the stream cannot read it; vmstate with that script's ways can.
    const own = runAnalyzeScript(['-f', file], { script: scriptOf(scripts, s.qemu) });
    assert.notEqual(own.status, 0, `QEMU ${s.qemu}'s analyze-migration.py reads this stream now: compare with it`);
    const ownWays = runCli(['analyze', ...compatWith(s.qemu), file]);
    assertSucceeded(`vmstate analyze ${compatWith(s.qemu).join(' ')}`, ownWays);
    iterativePrintedEmpty(ownWays.stdout, rows, []);
    assert.deepEqual(Object.keys(JSON.parse(ownWays.stdout) as object), Object.keys(JSON.parse(ours.stdout) as object), 'the sections analyze prints');
  }
  if (s.alsoScript72 === true) {
    const old = runAnalyzeScript(['-f', file], { script: scriptOf(scripts, '7.2') });
    assertSucceeded("7.2's analyze-migration.py", old);
    const ours72 = runCli(['analyze', '--compat', '7.2', file]);
    assertSucceeded('vmstate analyze --compat 7.2', ours72);
    assertSameOutput(ours72.stdout, old.stdout, `vmstate analyze --compat 7.2 ${s.name}`);
  }
  if (memory !== undefined) await assertMemoryEqual(ramDir, memory);

  // (b) rewrite: the same bytes.
  const copy = path.join(dir, 'rewritten.mig');
  assertSucceeded('vmstate rewrite', runCli(['rewrite', ...describe, file, copy]));
  const rewritten = await readFile(copy);
  assert.ok(rewritten.equals(bytes), `the rewritten stream differs from the input at byte ${bytes.findIndex((b, i) => b !== rewritten[i])}`);
}

// ---- the features --------------------------------------------------------------------------------------

/** XBZRLE from a running guest that keeps dirtying pages, written by QEMU `version`. */
function xbzrleScenario(version: Version): Scenario {
  return {
    name: 'XBZRLE, a live guest dirtying pages over several passes',
    qemu: version,
    make: (q, dir) => xbzrleStream(q, version, dir),
    shows: ({ rows, ram }) => {
      assert.ok(ram.xbzrlePages > 0, 'no XBZRLE page');
      assert.ok(ramRows(rows, 'part').length >= 3, `${ramRows(rows, 'part').length} RAM PART sections`);
    },
    identify: { atLeast: version, atMost: null },
    unreadable: ramPages,
  };
}

/**
 * A paused machine migrated to a `file:` URI with mapped-ram (and multifd channels writing the pages when
 * `multifd`). QEMU 10.0's script cannot read mapped-ram, so it reads a plain stream of the same
 * machine instead: QEMU will not migrate a machine a finished migration has paused, so that one comes from
 * a second QEMU with the same arguments, the RTC on the virtual clock (stopped under -S) from a fixed date
 * keeping the two alike.
 */
function mappedRamScenario(multifd: boolean): Scenario {
  return {
    name: `mapped-ram to a file: URI${multifd ? ', with multifd' : ''}`,
    qemu: '10.0',
    make: async (q, dir) => {
      const args = tcgMachine(q, {}, '-rtc', 'base=2020-01-01T00:00:00,clock=vm');
      const plain = await migratedOnce(q, args, path.join(dir, 'plain.mig'));
      const file = path.join(dir, 'mapped-ram.mig');
      const caps = multifd ? ['mapped-ram', 'multifd'] : ['mapped-ram'];
      const { memory, info } = await migratedOnce(q, args, file, { caps, dump: dir, uri: `file:${file}` });
      const ram = typeof info.ram === 'object' && info.ram !== null && !Array.isArray(info.ram) ? info.ram : {};
      const viaMultifd = ram['multifd-bytes'];
      assert.ok(typeof viaMultifd === 'number' && (viaMultifd > 0) === multifd, `multifd-bytes ${JSON.stringify(viaMultifd)}`);
      return { file, memory, standIn: plain.file, note: `${viaMultifd} bytes through multifd channels` };
    },
    shows: ({ rows, identity, ram }) => {
      assert.ok(identity.capabilities.includes('mapped-ram'), `capabilities: ${identity.capabilities.join(', ')}`);
      // No page is a record: each block's header names where its bitmap and pages sit, and the stream goes
      // on after them. `sections` counts those bytes into RAM's START record, so the records still tile the file.
      assert.deepEqual([ram.pages, ram.zeroPages], [0, 0], 'page records in a mapped-ram stream');
      assert.equal(ram.mappedRegions, identity.ramBlocks.length, 'mapped-ram block headers');
      const blocks = identity.ramBlocks.reduce((sum, b) => sum + b.size, 0);
      const start = ramRows(rows, 'start');
      assert.ok(start.length === 1 && start[0].size > blocks, `RAM's START record takes ${start[0]?.size} bytes, its blocks ${blocks}`);
    },
    identify: { atLeast: '10.0', atMost: null },
  };
}

/**
 * A switch to postcopy while precopy is still sending, written by QEMU `version` to a real destination:
 * the devices go in a PACKAGED command between POSTCOPY_LISTEN and POSTCOPY_RUN, the rest of RAM after
 * it, and no VMDESCRIPTION follows, so a precopy stream of the same machine describes it.
 */
function postcopyScenario(version: Version): Scenario {
  return {
    name: 'switched to postcopy (PACKAGED, no VMDESCRIPTION; described by a precopy stream of the same machine)',
    qemu: version,
    make: async (q, dir) => {
      const args = tcgMachine(q);
      const { file: precopy } = await migratedOnce(q, args, path.join(dir, 'precopy.mig'));
      const made = await migratedToPeer(q, args, path.join(dir, 'postcopy.mig'), {
        caps: ['postcopy-ram'],
        // Slow enough that precopy is still under way when the switch is asked for.
        params: { 'max-bandwidth': 100_000 },
        during: async (src) => {
          await pollUntil('the migration to be active', 10_000, async () => ((await queryMigrate(src)).status === 'active' ? true : undefined));
          await src.execute('migrate-start-postcopy');
        },
        dump: dir,
      });
      return { ...made, vmdescFrom: precopy };
    },
    shows: ({ rows, identity }) => {
      const commands = commandNames(rows);
      for (const name of ['OPEN_RETURN_PATH', 'POSTCOPY_ADVISE', 'POSTCOPY_RAM_DISCARD', 'PACKAGED', 'POSTCOPY_LISTEN', 'POSTCOPY_RUN']) {
        assert.ok(commands.includes(name), `no ${name} among ${commands.join(', ')}`);
      }
      // `sections` marks the records inside the package: LISTEN first, RUN last, every device among them.
      const inside = rows.filter((r) => r.packaged === true);
      assert.equal(commandNames(inside.slice(0, 1))[0], 'POSTCOPY_LISTEN', 'the package starts with POSTCOPY_LISTEN');
      assert.equal(commandNames(inside.slice(-1))[0], 'POSTCOPY_RUN', 'the package ends with POSTCOPY_RUN');
      const devices = rows.filter((r) => r.type === 'full');
      assert.ok(devices.length > 10, `${devices.length} device sections`);
      assert.deepEqual(devices.filter((r) => r.packaged !== true).map((r) => ('idstr' in r ? r.idstr : r.type)), [], 'device sections outside the package');
      const afterPackage = rows.slice(rows.indexOf(inside[inside.length - 1]) + 1);
      assert.ok(ramRows(afterPackage, 'part').length > 0, 'no RAM PART section after the package');
      assert.equal(rows[rows.length - 1].type, 'eof', 'the last record is not EOF (postcopy sends no VMDESCRIPTION)');
      assert.equal(identity.machineType?.value, `pc-q35-${version}`);
      assert.equal(identity.note, null);
    },
    identify: { atLeast: version, atMost: null },
    unreadable: unknownCommand,
  };
}

const scenarios: readonly Scenario[] = [
  {
    name: 'virtio-mem (early setup)',
    qemu: '10.0',
    make: (q, dir) =>
      migratedOnce(
        q,
        tcgMachine(q, { memory: '64M,maxmem=256M' }, '-object', 'memory-backend-ram,id=mem0,size=128M', '-device', 'virtio-mem-pci,id=vmem0,memdev=mem0,block-size=2M,requested-size=16M'),
        path.join(dir, 'virtio-mem.mig'),
      ),
    shows: ({ rows }) => {
      // Early setup state goes out in the setup phase, after RAM's START (its block list) and before any page.
      const early = rows.findIndex((r) => r.type === 'full' && 'idstr' in r && r.idstr.endsWith('/virtio-mem-device-early'));
      const firstPages = rows.indexOf(ramRows(rows, 'part')[0]);
      assert.ok(early >= 0 && early < firstPages, 'no virtio-mem-device-early section before the first RAM page');
    },
    identify: { atLeast: '10.0', atMost: null },
  },
  {
    name: 'x-ignore-shared, RAM in a shared memfd',
    qemu: '10.0',
    make: (q, dir) =>
      migratedOnce(
        q,
        tcgMachine(q, { machine: 'q35,memory-backend=pc.ram' }, '-object', `memory-backend-memfd,id=pc.ram,size=${RAM_BYTES},share=on`),
        path.join(dir, 'x-ignore-shared.mig'),
        { caps: ['x-ignore-shared'] },
      ),
    shows: ({ identity }) => assert.ok(identity.capabilities.includes('x-ignore-shared'), `capabilities: ${identity.capabilities.join(', ')}`),
    identify: { atLeast: '10.0', atMost: null },
  },
  {
    name: 'return path with switchover-ack, to a real destination',
    qemu: '10.0',
    make: (q, dir) => migratedToPeer(q, tcgMachine(q), path.join(dir, 'return-path.mig'), { caps: ['return-path', 'switchover-ack'] }),
    shows: ({ rows }) => assert.deepEqual(commandNames(rows), ['OPEN_RETURN_PATH', 'PING', 'SWITCHOVER_START']),
    identify: { atLeast: '10.0', atMost: null },
    unreadable: unknownCommand,
  },
  {
    name: 'postcopy-ram enabled, precopy only',
    qemu: '10.0',
    make: (q, dir) => migratedToPeer(q, tcgMachine(q), path.join(dir, 'postcopy-ram.mig'), { caps: ['postcopy-ram'] }),
    shows: ({ rows }) => assert.deepEqual(commandNames(rows), ['OPEN_RETURN_PATH', 'PING', 'POSTCOPY_ADVISE', 'SWITCHOVER_START']),
    identify: { atLeast: '10.0', atMost: null },
    unreadable: unknownCommand,
  },
  postcopyScenario('10.0'),
  xbzrleScenario('10.0'),
  {
    name: 'machine type pc-q35-7.2',
    qemu: '10.0',
    make: (q, dir) => migratedOnce(q, tcgMachine(q, { machine: 'pc-q35-7.2' }), path.join(dir, 'pc-q35-7.2.mig')),
    shows: ({ rows, identity }) => {
      assert.equal(identity.machineType?.value, 'pc-q35-7.2');
      assert.deepEqual(commandNames(rows), [], 'SWITCHOVER_START goes with machine types from 10.0 on only');
    },
    identify: { atLeast: '9.1.3', atMost: null },
    alsoScript72: true,
  },
  mappedRamScenario(false),
  mappedRamScenario(true),
  xbzrleScenario('7.2'),
  postcopyScenario('7.2'),
  {
    name: 'compress, a booted guest stopped',
    qemu: '7.2',
    make: async (q, dir) => {
      const vm = await start(q, tcgMachine(q, { running: true }, '-kernel', await kernelFile(dir)));
      try {
        await kernelRunning(vm.qmp);
        await vm.qmp.execute('stop');
        const memory = await dumpMemory(vm.qmp, dir);
        const file = path.join(dir, 'compress.mig');
        await setCapabilities(vm.qmp, ['compress']);
        await migrateToFile(vm.qmp, file);
        return { file, memory };
      } finally {
        await vm.stop();
      }
    },
    shows: ({ ram }) => assert.ok(ram.compressedPages > 0, 'no COMPRESS page'),
    identify: { atLeast: '7.2', atMost: '9.0' },
    unreadable: ramPages,
  },
  {
    name: 'block migration (migrate blk: true) of a virtio-blk disk',
    qemu: '7.2',
    make: async (q, dir) =>
      migratedOnce(q, tcgMachine(q, {}, '-drive', `file=${await diskFile(dir)},if=none,id=d0,format=raw`, '-device', 'virtio-blk-pci,drive=d0'), path.join(dir, 'block.mig'), {
        extra: { blk: true },
      }),
    shows: ({ rows, bytes }) => {
      const block = rows.filter((r) => 'idstr' in r && r.idstr === 'block');
      assert.deepEqual([block[0]?.type, block[block.length - 1]?.type], ['start', 'end'], 'block sections');
      const disk = Buffer.alloc(DISK_BYTES, DISK_BYTE);
      assert.ok(block.some((r) => bytes.subarray(r.offset, r.offset + r.size).includes(disk)), "no block section holds the disk's bytes");
    },
    identify: { atLeast: '7.2', atMost: '9.0' },
    unknownIterative: ['block'],
  },
  {
    name: 'dirty-bitmaps, with a dirty bitmap on a virtio-blk disk',
    qemu: '7.2',
    make: async (q, dir) => {
      const disk = await diskFile(dir);
      const args = tcgMachine(q, {}, '-blockdev', `driver=file,filename=${disk},node-name=f0`, '-blockdev', 'driver=raw,file=f0,node-name=disk0', '-device', 'virtio-blk-pci,drive=disk0');
      return migratedOnce(q, args, path.join(dir, 'dirty-bitmaps.mig'), {
        setup: (qmp) => qmp.execute('block-dirty-bitmap-add', { node: 'disk0', name: 'bm0', granularity: 65536 }),
        caps: ['dirty-bitmaps'],
      });
    },
    shows: ({ rows, bytes }) => {
      const start = rows.filter((r) => r.type === 'start' && r.idstr === 'dirty-bitmap');
      assert.equal(start.length, 1, 'dirty-bitmap START sections');
      // It names the node and the bitmap, each with its length byte before it.
      const names = Buffer.from('\x05disk0\x03bm0', 'latin1');
      assert.ok(bytes.subarray(start[0].offset, start[0].offset + start[0].size).includes(names), 'the START section names no disk0 and bm0');
      assert.deepEqual(commandNames(rows), ['POSTCOPY_ADVISE'], 'the capability sends POSTCOPY_ADVISE');
    },
    identify: { atLeast: '7.2', atMost: null },
    unreadable: unknownCommand,
    unknownIterative: ['dirty-bitmap'],
  },
  {
    name: 'ppc64 pseries (the iterative spapr/htab section)',
    qemu: '7.2',
    binary: 'qemu-system-ppc64',
    make: (q, dir) => migratedOnce(q, tcgMachine(q, { machine: 'pseries', memory: '256M' }), path.join(dir, 'pseries.mig')),
    shows: ({ rows, identity }) => {
      assert.equal(identity.architecture?.value, 'ppc64');
      const htab = rows.filter((r) => 'idstr' in r && r.idstr === 'spapr/htab');
      assert.deepEqual([htab[0]?.type, htab[htab.length - 1]?.type], ['start', 'end'], 'spapr/htab sections');
    },
    identify: { atLeast: '7.2', atMost: null },
    // 7.2's script reads instance ids as signed and fails on spapr_iommu's 0x80000000; 10.0's reads this stream.
    script: '10.0',
  },
];

/** The QEMU `s` runs for `t`, or null after skipping it (fails under VMSTATE_REQUIRE_QEMU=1). */
function qemuFor(t: Skippable, s: Scenario): QemuCommand | null {
  if (s.qemu === '10.0') {
    assert.equal(s.binary, undefined, "scripts/qemu-10.sh fetches QEMU 10.0's x86_64 and aarch64 only");
    return qemu10OrSkip(t, X86);
  }
  const binary = qemuOrSkip(t, s.binary ?? X86);
  return binary === null ? null : { binary, args: [], env: {} };
}

/** The scripts `s` compares with, or null after skipping `t`. */
function scriptsFor(t: Skippable, s: Scenario): Scripts | null {
  const scripts: Scripts = {};
  const versions = new Set<Version>([s.qemu, s.script ?? s.qemu, ...(s.alsoScript72 === true ? (['7.2'] as const) : [])]);
  for (const version of versions) {
    const script = version === '10.0' ? analyzeScript10OrSkip(t) : analyzeScriptOrSkip(t);
    if (script === null) return null;
    scripts[version] = script;
  }
  return scripts;
}

for (const s of scenarios) {
  test(`QEMU ${s.qemu}, ${s.name}: vmstate analyzes it as the script does, rewrites it byte for byte, tiles it, identifies it`, { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const q = qemuFor(t, s);
    if (q === null) return;
    const scripts = scriptsFor(t, s);
    if (scripts === null) return;
    const dir = await mkdtemp(path.join(os.tmpdir(), 'vmstate-features-'));
    dirs.push(dir);
    const made = await s.make(q, dir);
    if (made.note !== undefined) t.diagnostic(made.note);
    await checkStream(s, made, scripts, dir);
  });
}
