// A real postcopy migration, QEMU 7.2 to 7.2 and 10.0 to 10.0, through a relay that keeps a copy of what
// the source sends: the stream a file migration never shows (a return path, POSTCOPY_ADVISE, discards,
// the devices PACKAGED with LISTEN and RUN, then RAM after the switch, and no VMDESCRIPTION). vmstate
// lists it with the package's records inside it, reads it with the description of the destination's own
// stream, rewrites it byte for byte, and its RAM is what the destination ended up with. Skips when that
// QEMU cannot be had, unless VMSTATE_REQUIRE_QEMU=1.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { assertSucceeded, runCli } from './support/cli.js';
import { migrateToFile, pollUntil, qemu10OrSkip, qemuOrSkip, queryMigrate, startQemu, type QemuCommand, type Skippable } from './support/qemu.js';

const TEST_TIMEOUT_MS = 120_000;
/** Where the random bytes go in guest RAM (pc.ram's offset too: below 2 GiB q35 maps RAM one to one). */
const LOAD_ADDR = 0x200000;
const LOAD_BYTES = 1 << 20;
/**
 * Precopy is held to this many bytes a second, so that it is still sending the random megabyte when
 * migrate-start-postcopy arrives; postcopy then sends the rest without a limit.
 */
const PRECOPY_BANDWIDTH = 100_000;

const dirs: string[] = [];
after(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

const releases: { name: string; qemu: (t: Skippable) => QemuCommand | null }[] = [
  {
    name: '7.2',
    qemu: (t) => {
      const binary = qemuOrSkip(t, 'qemu-system-x86_64');
      return binary === null ? null : { binary, args: [], env: {} };
    },
  },
  { name: '10.0', qemu: (t) => qemu10OrSkip(t, 'qemu-system-x86_64') },
];

/** Listens on `socket` and joins each connection to `target`, writing what goes there into `copy` too. */
async function teeRelay(socket: string, target: string, copy: string): Promise<{ close(): Promise<void> }> {
  const out = createWriteStream(copy);
  const server = net.createServer((source) => {
    const destination = net.connect(target);
    source.on('data', (chunk: Buffer) => {
      out.write(chunk);
      destination.write(chunk);
    });
    source.on('end', () => destination.end());
    destination.pipe(source); // the return path
    source.on('error', () => destination.destroy());
    destination.on('error', () => source.destroy());
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return {
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => out.end(resolve));
    },
  };
}

/** Every file under `dir`, by its path relative to it. */
async function filesUnder(dir: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const name of await readdir(dir, { recursive: true })) {
    const full = path.join(dir, name);
    if ((await stat(full)).isFile()) files.set(name, await readFile(full));
  }
  return files;
}

for (const release of releases) {
  test(`QEMU ${release.name} postcopy through a relay: vmstate lists the PACKAGED devices, reads the stream, rewrites it, and its RAM is the destination's`, { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const qemu = release.qemu(t);
    if (qemu === null) return;
    const dir = await mkdtemp(path.join(os.tmpdir(), 'vmstate-postcopy-'));
    dirs.push(dir);
    const payload = randomBytes(LOAD_BYTES);
    const blob = path.join(dir, 'payload.bin');
    await writeFile(blob, payload);
    const args = [...qemu.args, '-M', 'q35', '-m', '64M', '-accel', 'tcg', '-nodefaults', '-S', '-device', `loader,file=${blob},addr=${LOAD_ADDR},force-raw=on`];
    const postcopy = { capabilities: [{ capability: 'postcopy-ram', state: true }] };
    const stream = path.join(dir, 'postcopy.mig');
    const landed = path.join(dir, 'destination.mig');

    const destination = await startQemu({ binary: qemu.binary, args: [...args, '-incoming', 'defer'], env: qemu.env });
    const source = await startQemu({ binary: qemu.binary, args, env: qemu.env });
    try {
      for (const vm of [source, destination]) await vm.qmp.execute('migrate-set-capabilities', postcopy);
      await destination.qmp.execute('migrate-incoming', { uri: `unix:${path.join(dir, 'destination.sock')}` });
      const relay = await teeRelay(path.join(dir, 'relay.sock'), path.join(dir, 'destination.sock'), stream);
      await source.qmp.execute('migrate-set-parameters', { 'max-bandwidth': PRECOPY_BANDWIDTH });
      await source.qmp.execute('migrate', { uri: `unix:${path.join(dir, 'relay.sock')}` });
      await pollUntil('precopy to be under way', 10_000, async () => ((await queryMigrate(source.qmp)).status === 'active' ? true : undefined));
      await source.qmp.execute('migrate-start-postcopy');
      for (const [name, vm] of [['source', source], ['destination', destination]] as const) {
        await pollUntil(`the ${name} to complete`, 60_000, async () => {
          const m = await queryMigrate(vm.qmp);
          if (m.status === 'failed') assert.fail(`the ${name} failed: ${m['error-desc'] ?? ''} ${vm.stderr()}`);
          return m.status === 'completed' ? true : undefined;
        });
      }
      await relay.close();
      // The destination's own stream describes the same devices and holds the RAM it received.
      await destination.qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'postcopy-ram', state: false }] });
      await migrateToFile(destination.qmp, landed);
    } finally {
      await source.stop();
      await destination.stop();
    }

    const sections = runCli(['sections', '--json', stream, '--vmdesc', landed]);
    assertSucceeded('vmstate sections', sections);
    const rows = JSON.parse(sections.stdout) as { type: string; name?: string; idstr?: string; packaged?: boolean }[];
    const names = rows.map((r) => r.name ?? `${r.type} ${r.idstr ?? ''}`);
    for (const command of ['OPEN_RETURN_PATH', 'POSTCOPY_ADVISE', 'POSTCOPY_RAM_DISCARD', 'PACKAGED']) {
      assert.ok(names.some((n) => n.startsWith(command)), `no ${command} in ${names.join(', ')}`);
    }
    const inside = rows.filter((r) => r.packaged === true);
    assert.equal(inside[0]?.name, 'POSTCOPY_LISTEN', 'the package starts with LISTEN');
    assert.equal(inside[inside.length - 1]?.name, 'POSTCOPY_RUN', 'the package ends with RUN');
    const devices = rows.filter((r) => r.type === 'full');
    assert.ok(devices.length > 10 && devices.every((r) => r.packaged === true), 'every device section is inside the package');
    const afterPackage = rows.slice(rows.indexOf(inside[inside.length - 1]) + 1);
    assert.ok(afterPackage.some((r) => r.type === 'part' && r.idstr === 'ram'), 'RAM is sent after the switch');
    assert.equal(rows[rows.length - 1].type, 'eof', 'a postcopy stream has no VMDESCRIPTION');

    const ramDir = path.join(dir, 'ram-postcopy');
    const landedRamDir = path.join(dir, 'ram-destination');
    const analyzed = runCli(['analyze', stream, '--vmdesc', landed, '--ram-dir', ramDir]);
    assertSucceeded('vmstate analyze --vmdesc', analyzed);
    const reference = runCli(['analyze', landed, '--ram-dir', landedRamDir]);
    assertSucceeded('vmstate analyze of the destination stream', reference);
    assert.deepEqual(Object.keys(JSON.parse(analyzed.stdout) as object), Object.keys(JSON.parse(reference.stdout) as object));
    const ram = await filesUnder(ramDir);
    assert.deepEqual([...ram.keys()].sort(), [...(await filesUnder(landedRamDir)).keys()].sort());
    for (const [name, bytes] of await filesUnder(landedRamDir)) assert.ok(bytes.equals(ram.get(name) ?? Buffer.alloc(0)), `${name} differs`);
    const pcRam = ram.get('pc.ram');
    assert.ok(pcRam?.subarray(LOAD_ADDR, LOAD_ADDR + LOAD_BYTES).equals(payload), 'the loaded bytes are in pc.ram');

    const copy = path.join(dir, 'rewritten.mig');
    assertSucceeded('vmstate rewrite', runCli(['rewrite', stream, copy, '--vmdesc', landed]));
    assert.ok((await readFile(copy)).equals(await readFile(stream)), 'rewrite is byte-identical');

    const identity = runCli(['identify', '--json', stream, '--vmdesc', landed]);
    assertSucceeded('vmstate identify', identity);
    const told = JSON.parse(identity.stdout) as { note: string | null; machineType: { value: string } | null; commands: { name: string }[] };
    assert.equal(told.note, null);
    assert.equal(told.machineType?.value, `pc-q35-${release.name}`);
    assert.ok(told.commands.some((c) => c.name === 'POSTCOPY_RUN'));
  });
}
