// Test helpers for a real Linux guest on v86 (npm v86, pinned in package.json): the i386 kernel and
// initramfs that scripts/v86-guest.sh builds into a cache folder, Debian's SeaBIOS (the seabios package,
// which qemu-system-x86 brings), an emulator started on them, and a shell on its first UART.
//
// Serial console protocol, as V86Console drives it (the guest's /init and busybox ash), as for the QEMU
// guest (linux-guest.ts): /init prints "vmstate-guest ready", ash prints "guest# " (and ESC[6n); then
//   client -> `echo __vmstate_be''gin_N; eval 'COMMAND'; echo __vmstate_do''ne_N:$?` and "\n"
//   guest  -> the line echoed, "__vmstate_begin_N", COMMAND's output, "__vmstate_done_N:STATUS", the prompt.
// Booting takes about 17 s here: a run boots once, and the tests that need a booted guest restore its
// state (bootedState), kept in the OS temp folder for the test runner's process.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { V86 } from 'v86';
import { repoRoot } from './paths.js';
import { fetchScriptValues, once, orSkip, shellQuote, type Skippable } from './qemu.js';

const require = createRequire(import.meta.url);

/** Prints where the guest's kernel and initramfs are, building them the first time. */
export const v86GuestScript = path.join(repoRoot, 'scripts', 'v86-guest.sh');
const SEABIOS = '/usr/share/seabios/bios.bin';
const VGABIOS = '/usr/share/seabios/vgabios-stdvga.bin';

/** What scripts/v86-guest.sh built. */
export interface V86Guest {
  kernel: string;
  initrd: string;
}

/** The guest, built by scripts/v86-guest.sh the first time; throws when it cannot be had (or SeaBIOS is missing). */
export const v86Guest: () => V86Guest = once(() => {
  for (const f of [SEABIOS, VGABIOS]) if (!fs.existsSync(f)) throw new Error(`${f} is missing: install Debian's seabios package`);
  const get = fetchScriptValues(v86GuestScript, 'the v86 test guest');
  return { kernel: get('kernel'), initrd: get('initrd') };
});

/** {@link v86Guest}, or null after skipping the test (a failure under VMSTATE_REQUIRE_QEMU=1). */
export function v86GuestOrSkip(t: Skippable): V86Guest | null {
  return orSkip(t, v86Guest);
}

/** A v86 PC with the guest: 128 MiB of RAM, its console on the first UART; from `state` when given. */
export function startV86(guest: V86Guest, state?: ArrayBuffer): { emulator: V86; console: V86Console; ready: Promise<void> } {
  const emulator = new V86({
    wasm_path: require.resolve('v86/build/v86.wasm'),
    bios: { url: SEABIOS },
    vga_bios: { url: VGABIOS },
    bzimage: { url: guest.kernel },
    initrd: { url: guest.initrd },
    cmdline: 'console=ttyS0,115200 tsc=reliable mitigations=off random.trust_cpu=on',
    memory_size: 128 << 20,
    autostart: true,
    disable_speaker: true,
    ...(state ? { initial_state: { buffer: state } } : {}),
  });
  const ready = new Promise<void>((resolve) => emulator.add_listener('emulator-ready', () => resolve()));
  return { emulator, console: new V86Console(emulator), ready };
}

/** A shell on the guest's ttyS0. */
export class V86Console {
  private output = '';
  private waiters: (() => void)[] = [];
  private n = 0;

  constructor(private readonly emulator: V86) {
    emulator.add_listener('serial0-output-byte', (b: number) => {
      this.output += String.fromCharCode(b);
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** Everything the guest printed so far. */
  get text(): string {
    return this.output;
  }

  /** Resolves once the output (from `from` on) matches `re`; rejects after `ms`. */
  async waitFor(re: RegExp, ms: number, from = 0): Promise<RegExpMatchArray> {
    const deadline = Date.now() + ms;
    for (;;) {
      const m = this.output.slice(from).match(re);
      if (m) return m;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`the guest did not print ${re} within ${ms} ms; its last output: ${JSON.stringify(this.output.slice(-300))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 1000));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Runs `command` in the guest's shell; resolves with its output and exit status. */
  async run(command: string, ms = 30_000): Promise<{ output: string; status: number }> {
    const n = ++this.n;
    const from = this.output.length;
    this.emulator.serial0_send(`echo __vmstate_be''gin_${n}; eval ${shellQuote(command)}; echo __vmstate_do''ne_${n}:$?\n`);
    const m = await this.waitFor(new RegExp(`__vmstate_begin_${n}\\r?\\n([\\s\\S]*?)__vmstate_done_${n}:(\\d+)`), ms, from);
    return { output: m[1].replace(/\r\n/g, '\n'), status: Number(m[2]) };
  }
}

/**
 * save_state() of the guest booted to its shell: booted once per test run (the test runner's process),
 * then read from the OS temp folder. Concurrent callers wait for the first one's boot.
 */
export async function bootedState(guest: V86Guest): Promise<ArrayBuffer> {
  const prefix = 'vmstate-v86-booted-';
  const file = path.join(os.tmpdir(), `${prefix}${process.ppid}.bin`);
  const lock = `${file}.lock`;
  // Earlier runs' states, whose test runner has ended, are garbage (about 50 MB each).
  for (const name of fs.readdirSync(os.tmpdir())) {
    const pid = Number(name.slice(prefix.length).split('.')[0]);
    if (name.startsWith(prefix) && pid !== process.ppid && !alive(pid)) fs.rmSync(path.join(os.tmpdir(), name), { recursive: true, force: true });
  }
  for (;;) {
    if (fs.existsSync(file)) return new Uint8Array(fs.readFileSync(file)).buffer;
    try {
      fs.mkdirSync(lock);
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 500)); // another test file is booting it
    }
  }
  try {
    const { emulator, console, ready } = startV86(guest);
    await ready;
    await console.waitFor(/guest# /, 120_000);
    const state = await emulator.save_state();
    await emulator.destroy();
    fs.writeFileSync(`${file}.tmp`, new Uint8Array(state));
    fs.renameSync(`${file}.tmp`, file);
    return state;
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
