/** `--ram-dir`: writes each RAM block's pages into its own file, as they stream past. */
import { closeSync, ftruncateSync, mkdirSync, openSync, readSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { UsageError } from '../errors.js';
import { applyXbzrle, inflatePage, type RamSink } from '../ram/index.js';

/**
 * A RamSink writing blocks to files under `dir`, plus close(). Files are created at the announced size,
 * sparse: a zero page is written only over a page that already holds something (a live stream sends a
 * page again when the guest changed it).
 */
export function ramDirSink(dir: string, pageSize: number): RamSink & { close(): void } {
  const files = new Map<string, { fd: number; length: number; written: Uint8Array }>();
  const fileFor = (block: string, offset: number) => {
    const f = files.get(block);
    if (f === undefined) throw new UsageError(`RAM block "${block}" was not in the block list`);
    if (offset + pageSize > f.length) throw new UsageError(`RAM page at 0x${offset.toString(16)} lies outside block "${block}" (${f.length} bytes)`);
    return f;
  };
  const write = (block: string, offset: number, data: Uint8Array): void => {
    const f = fileFor(block, offset);
    const p = offset / pageSize;
    f.written[p >> 3] |= 1 << (p & 7);
    writeSync(f.fd, data, 0, pageSize, offset);
  };
  const scratch = new Uint8Array(pageSize);
  return {
    blockList(_total, blocks) {
      for (const b of blocks) {
        const target = blockPath(dir, b.name);
        mkdirSync(dirname(target), { recursive: true });
        const fd = openSync(target, 'w+');
        ftruncateSync(fd, b.usedLength);
        files.set(b.name, { fd, length: b.usedLength, written: new Uint8Array(Math.ceil(b.usedLength / pageSize / 8)) });
      }
    },
    zeroPage(block, offset, fill) {
      const f = fileFor(block, offset);
      const p = offset / pageSize;
      if (fill === 0 && (f.written[p >> 3] & (1 << (p & 7))) === 0) return; // sparse, and zero already
      write(block, offset, scratch.fill(fill));
    },
    page(block, offset, data) {
      write(block, offset, data);
    },
    xbzrlePage(block, offset, delta) {
      readSync(fileFor(block, offset).fd, scratch, 0, pageSize, offset);
      applyXbzrle(scratch, delta);
      write(block, offset, scratch);
    },
    compressedPage(block, offset, deflated) {
      inflatePage(deflated, scratch);
      write(block, offset, scratch);
    },
    close() {
      for (const f of files.values()) closeSync(f.fd);
      files.clear();
    },
  };
}

/** The file for a block: its name as a relative path under dir, refusing names that would leave dir. */
function blockPath(dir: string, name: string): string {
  const parts = name.split('/').filter((p) => p !== '');
  if (parts.length === 0 || parts.some((p) => p === '.' || p === '..')) {
    throw new UsageError(`RAM block name "${name}" cannot be used as a file name`);
  }
  return join(dir, ...parts);
}
