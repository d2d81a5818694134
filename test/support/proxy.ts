// `vmstate proxy` run as a user runs it, for the tests that put it between two real QEMUs.
import { spawn } from 'node:child_process';
import { waitFor, type Scope } from '../migration/harness.js';
import { cliPath } from './paths.js';
import { queryMigrate, type QemuHandle } from './qemu.js';

/**
 * Starts `vmstate proxy` with `extra` options, killed when `scope` ends; resolves once it listens, with
 * its exit (code and stderr).
 */
export async function startProxy(scope: Scope, listen: string, to: string, capture: string, ...extra: string[]) {
  const child = spawn(process.execPath, [cliPath, 'proxy', '--listen', listen, '--to', to, '--capture', capture, ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  const listening = new Promise<void>((resolve) => child.stderr.on('data', (d: string) => ((stderr += d), /listening on/.test(stderr) && resolve())));
  const exited = new Promise<{ code: number | null; stderr: string }>((resolve) => child.once('exit', (code) => resolve({ code, stderr })));
  scope.defer(async () => void child.kill());
  await Promise.race([listening, exited.then((e) => Promise.reject(new Error(`the proxy exited: ${e.stderr}`)))]);
  return { exited };
}

/** Waits until `vm`'s migration ends; returns its query-migrate. */
export function migrationEnd(vm: QemuHandle, what: string, timeoutMs = 30_000) {
  return waitFor(what, async () => {
    const m = await queryMigrate(vm.qmp);
    return m.status === 'completed' || m.status === 'failed' || m.status === 'cancelled' ? m : undefined;
  }, timeoutMs);
}

