// Test helpers for a real Linux guest under QEMU: the kernel and initramfs that scripts/linux-guest.sh
// builds into a cache folder (see the top of that script), the QEMU arguments that boot it behind an
// Intel VT-d IOMMU with a virtio-blk disk on a PCIe root port, and a shell on its serial console.
//
// Serial console protocol, as SerialConsole drives it (the guest's /init and busybox ash):
//   1. /init prints "vmstate-guest ready", then ash prints its banner and the prompt "guest# "
//      (followed by ESC[6n, a cursor position query that nobody answers; ash goes on without it).
//   2. client -> `echo __vmstate_be''gin_N; eval 'COMMAND'; echo __vmstate_do''ne_N:$?` and "\n", one line
//      guest  -> the line echoed back (ash's line editing may wrap it with "\r" and escapes), then
//                "__vmstate_begin_N", COMMAND's output, "__vmstate_done_N:STATUS", and the prompt.
//      The quotes split each marker in the echoed line, so only the echo commands' output matches.
//   Lines end in "\r\n" (the tty's ONLCR). Bytes the guest writes while nobody is connected are lost.
// After a migration the destination QEMU has its own socket and the guest sits at its prompt with
// nothing new to print, so connect() waits for nothing and run() works at once.
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { repoRoot } from './paths.js';
import { fetchScriptValues, once, orSkip, shellQuote, type Skippable } from './qemu.js';

/** Prints where the guest's kernel and initramfs are, building them into a cache outside the repo the first time. */
export const linuxGuestScript = path.join(repoRoot, 'scripts', 'linux-guest.sh');

/** The line the guest's /init prints just before its shell starts. */
export const GUEST_READY = /vmstate-guest ready/;
/** The guest shell's prompt (its PS1 is "guest# "). */
export const GUEST_PROMPT = /guest# /;

/** What scripts/linux-guest.sh built. */
export interface LinuxGuest {
  /** The kernel, for -kernel. */
  kernel: string;
  /** The gzip newc initramfs, for -initrd. */
  initrd: string;
}

/** The guest, built by scripts/linux-guest.sh the first time. Throws when it cannot be had; one try per process. */
export const linuxGuest: () => LinuxGuest = once(() => {
  const get = fetchScriptValues(linuxGuestScript, 'the Linux test guest');
  return { kernel: get('kernel'), initrd: get('initrd') };
});

/** {@link linuxGuest}, or null after skipping the test when it cannot be built (fails under VMSTATE_REQUIRE_QEMU=1). */
export function linuxGuestOrSkip(t: Skippable): LinuxGuest | null {
  return orSkip(t, linuxGuest);
}

/** Options for {@link guestQemuArgs}. */
export interface GuestQemuOptions extends LinuxGuest {
  /** A raw disk image, the guest's /dev/vda. */
  disk: string;
  /** Where QEMU listens for the serial console (a unix socket it creates). */
  serialPath: string;
  /** Words added to the kernel command line (e.g. "vmstate.hostbridge=identity"). Defaults to none. */
  append?: readonly string[];
  /** The machine type. Defaults to "q35"; give a versioned one (pc-q35-7.2) to migrate across QEMU versions. */
  machine?: string;
}

/**
 * QEMU arguments that boot the guest on one TCG CPU: VT-d on, and the disk as a modern-only
 * virtio-blk-pci behind a PCIe root port (01:00.0), with iommu_platform=on so that its DMA goes
 * through the IOMMU. -no-reboot makes a guest panic (panic=-1) end QEMU instead of rebooting it.
 */
export function guestQemuArgs(o: GuestQemuOptions): string[] {
  const append = ['console=ttyS0', 'intel_iommu=on', 'quiet', 'panic=-1', ...(o.append ?? [])];
  return [
    '-machine', o.machine ?? 'q35',
    '-accel', 'tcg',
    '-m', '256M',
    '-smp', '1',
    '-nodefaults',
    '-display', 'none',
    '-no-reboot',
    // Before the PCI devices, so that it is in place when they are created.
    '-device', 'intel-iommu',
    '-device', 'pcie-root-port,id=rp1,chassis=1,slot=1',
    '-drive', `if=none,id=d0,file=${qemuOptValue(o.disk)},format=raw`,
    '-device', 'virtio-blk-pci,drive=d0,bus=rp1,iommu_platform=on,disable-legacy=on',
    '-kernel', o.kernel,
    '-initrd', o.initrd,
    '-append', append.join(' '),
    '-chardev', `socket,id=s0,path=${qemuOptValue(o.serialPath)},server=on,wait=off`,
    '-serial', 'chardev:s0',
  ];
}

/** What a command run on the guest printed (stdout and stderr, "\n" line ends) and its exit status. */
export interface GuestResult {
  output: string;
  status: number;
}

/** Everything kept of what the guest printed, for error messages. */
const LOG_CAP = 64 * 1024;

/** A shell on the guest's serial console, reached through QEMU's unix socket chardev. */
export class SerialConsole {
  // All that arrived and has not been consumed by waitFor yet.
  private unread = '';
  // The tail of everything that arrived, for error messages.
  private log = '';
  private closed = false;
  private nextMarker = 1;
  private readonly wakers = new Set<() => void>();

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.unread += chunk;
      this.log = (this.log + chunk).slice(-LOG_CAP);
      this.wake();
    });
    socket.on('error', () => undefined); // 'close' follows and is what waiters see
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  /**
   * Connects to QEMU's serial socket, retrying until QEMU has created it and accepts. Call it right
   * after starting QEMU: what the guest prints before then is lost.
   */
  static async connect(socketPath: string, timeoutMs = 10_000): Promise<SerialConsole> {
    const deadline = Date.now() + timeoutMs;
    let lastError: unknown;
    for (;;) {
      if (existsSync(socketPath)) {
        try {
          return new SerialConsole(await openSocket(socketPath));
        } catch (err) {
          lastError = err;
        }
      }
      if (Date.now() >= deadline) {
        const last = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
        throw new Error(`serial console ${socketPath} not ready within ${timeoutMs} ms${last}`);
      }
      await sleep(20);
    }
  }

  /** Waits until what the guest printed since the last match matches `pattern`; consumes it up to the match's end. */
  async waitFor(pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
    const re = new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, '')); // lastIndex must not carry over
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = re.exec(this.unread);
      if (match !== null) {
        this.unread = this.unread.slice(match.index + match[0].length);
        return match;
      }
      const remaining = deadline - Date.now();
      if (this.closed || remaining <= 0) {
        const why = this.closed ? 'the serial connection closed' : `not within ${timeoutMs} ms`;
        throw new Error(`guest did not print ${pattern} (${why}); last output: ${JSON.stringify(this.log.slice(-2000))}`);
      }
      await this.nextChunk(remaining);
    }
  }

  /**
   * Runs one shell command on the guest (it must not read stdin) and returns its output and exit
   * status once the prompt is back. What the guest printed before is dropped.
   */
  async runWithStatus(command: string, timeoutMs: number): Promise<GuestResult> {
    if (this.closed) throw new Error(`serial connection closed before running ${JSON.stringify(command)}`);
    const n = this.nextMarker++;
    this.unread = '';
    // One line, read whole before anything runs: text typed while a command runs would be echoed into its output.
    this.socket.write(`echo __vmstate_be''gin_${n}; eval ${shellQuote(command)}; echo __vmstate_do''ne_${n}:$?\n`);
    const deadline = Date.now() + timeoutMs;
    const left = (): number => Math.max(deadline - Date.now(), 1);
    await this.waitFor(new RegExp(`__vmstate_begin_${n}\\r?\\n`), left());
    const done = await this.waitFor(new RegExp(`([\\s\\S]*?)__vmstate_done_${n}:(\\d+)\\r?\\n`), left());
    await this.waitFor(GUEST_PROMPT, left());
    const output = done[1].replace(/\r+\n/g, '\n').replace(/\n$/, '');
    return { output, status: Number(done[2]) };
  }

  /** {@link runWithStatus}'s output; throws when the command exits non-zero. */
  async run(command: string, timeoutMs: number): Promise<string> {
    const { output, status } = await this.runWithStatus(command, timeoutMs);
    if (status !== 0) throw new Error(`guest command ${JSON.stringify(command)} exited with ${status}: ${output}`);
    return output;
  }

  /** Everything the guest printed lately (up to 64 KiB), for diagnostics. */
  output(): string {
    return this.log;
  }

  /** Disconnects; the guest keeps running. Safe to call twice. */
  close(): void {
    this.socket.destroy();
  }

  private wake(): void {
    for (const waker of [...this.wakers]) waker();
  }

  // Resolves on the next chunk, on close, or after `ms`, whichever comes first.
  private nextChunk(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wakers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      timer.unref();
      this.wakers.add(done);
    });
  }
}

function openSocket(socketPath: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(socketPath);
    socket.once('connect', () => {
      socket.removeListener('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** Escapes a value for a QEMU `-opt key=value,...` list, where a literal comma is doubled. */
function qemuOptValue(value: string): string {
  return value.replace(/,/g, ',,');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
