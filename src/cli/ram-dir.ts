/** `--ram-dir`: writes each RAM block's pages into its own file, as they stream past. */
import { closeSync, ftruncateSync, mkdirSync, openSync, readSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { StreamFormatError, UsageError } from '../errors.js';
import type { StreamFile } from '../analyze/index.js';
import { applyXbzrle, inflatePage, type MappedRegion, type RamSink } from '../ram/index.js';

/**
 * A RamSink writing blocks to files under `dir`, plus close(). Files are created at the announced size,
 * sparse: a zero page is written only over a page that already holds something (a live stream sends a
 * page again when the guest changed it).
 */
export function ramDirSink(dir: string, pageSize: number, stream: Pick<StreamFile, 'readAt'>): RamSink & { close(): void } {
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
    // At each entry of the block list: a mapped-ram block's pages come right after its entry.
    block(b) {
      const target = blockPath(dir, b.name);
      mkdirSync(dirname(target), { recursive: true });
      const fd = openSync(target, 'w+');
      ftruncateSync(fd, b.usedLength);
      files.set(b.name, { fd, length: b.usedLength, written: new Uint8Array(Math.ceil(b.usedLength / pageSize / 8)) });
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
    mappedRegion(info, region) {
      copyMappedPages(stream, fileFor(info.name, 0).fd, info.usedLength, region);
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

/** Bytes copied at a time from a mapped-ram block's pages. */
const COPY_CHUNK = 1 << 20;

/**
 * A mapped-ram block's pages, copied from where the stream file keeps them: the runs of pages its bitmap
 * marks written (bit i of the little-endian 64-bit words is page i), a chunk at a time. Pages not marked
 * stay sparse zeros.
 */
function copyMappedPages(stream: Pick<StreamFile, 'readAt'>, fd: number, usedLength: number, region: MappedRegion): void {
  const ps = region.pageSize;
  const pages = usedLength / ps;
  const bitmap = new Uint8Array(Math.ceil(pages / 64) * 8);
  if (stream.readAt(bitmap, region.bitmapOffset) !== bitmap.length) throw new StreamFormatError('mapped-ram bitmap is cut short', { offset: region.bitmapOffset, path: '' });
  const set = (p: number) => (bitmap[p >> 3] & (1 << (p & 7))) !== 0;
  const chunk = new Uint8Array(COPY_CHUNK);
  for (let p = 0; p < pages; ) {
    if (!set(p)) {
      p++;
      continue;
    }
    let q = p + 1;
    while (q < pages && set(q) && (q - p) * ps < COPY_CHUNK) q++;
    const part = chunk.subarray(0, (q - p) * ps);
    if (stream.readAt(part, region.pagesOffset + p * ps) !== part.length) {
      throw new StreamFormatError('mapped-ram pages are cut short', { offset: region.pagesOffset + p * ps, path: '' });
    }
    writeSync(fd, part, 0, part.length, p * ps);
    p = q;
  }
}
