/** `--ram-dir`: writes each RAM block's pages into its own file, as they stream past. */
import { closeSync, ftruncateSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { UsageError } from '../errors.js';
import type { RamSink } from '../ram/index.js';

/** A RamSink writing blocks to files under `dir`, plus close(). Files are created at the announced size. */
export function ramDirSink(dir: string, pageSize: number): RamSink & { close(): void } {
  const files = new Map<string, { fd: number; length: number }>();
  const fileFor = (block: string, offset: number): number => {
    const f = files.get(block);
    if (f === undefined) throw new UsageError(`RAM block "${block}" was not in the block list`);
    if (offset + pageSize > f.length) throw new UsageError(`RAM page at 0x${offset.toString(16)} lies outside block "${block}" (${f.length} bytes)`);
    return f.fd;
  };
  const filled = new Uint8Array(pageSize);
  return {
    blockList(_total, blocks) {
      for (const b of blocks) {
        const target = blockPath(dir, b.name);
        mkdirSync(dirname(target), { recursive: true });
        const fd = openSync(target, 'w');
        ftruncateSync(fd, b.usedLength);
        files.set(b.name, { fd, length: b.usedLength });
      }
    },
    zeroPage(block, offset, fill) {
      const fd = fileFor(block, offset);
      if (fill === 0) return; // the file is sparse and already zero there
      filled.fill(fill);
      writeSync(fd, filled, 0, pageSize, offset);
    },
    page(block, offset, data) {
      writeSync(fileFor(block, offset), data, 0, data.length, offset);
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
