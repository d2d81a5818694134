/**
 * The RAM handler's passes as a long-running migration runs them (warm code), on a 1 GiB block (262,144
 * pages, a 32 KiB bitmap), one run, figures on stdout:
 *   1. the first pass: setup marks every page, then PART sections until none is left;
 *   2. a later pass: the guest dirties a few pages, syncDirty() moves them into what is to send, and
 *      PART sections send them; syncDirty and sending are timed apart, as each scans a whole bitmap.
 * Each figure is a median after warm-up rounds. No target of its own: it shows what the bitmap scans cost
 * next to a migration pass (bench/migration.js).
 */
import { ByteWriter, GuestRam, RamHandler } from '../src/index.js';

const PAGE = 4096;
const PAGES = (1 << 30) / PAGE;

function median(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
}

const ram = new GuestRam();
ram.addBlock('pc.ram', 0, PAGES * PAGE);
// Some pages hold data, so sending them copies bytes as a real guest's would.
for (let p = 0; p < PAGES; p += 97) ram.writeU32(p * PAGE, p);
const h = new RamHandler(ram.blocks);
const w = new ByteWriter(80 << 20);

function sendAll(): void {
  for (let done = false; !done; ) {
    w.reset();
    done = h.saveIterate(w);
  }
}

// 1. First pass.
const first: number[] = [];
for (let i = 0; i < 7; i++) {
  const t0 = performance.now();
  w.reset();
  h.saveSetup(w);
  sendAll();
  if (i >= 2) first.push(performance.now() - t0);
}

// 2. Later passes, with `dirty` pages written between them (spread over the block).
let seed = 1;
const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
function passes(dirty: number): { sync: number; send: number } {
  const sync: number[] = [];
  const send: number[] = [];
  for (let i = 0; i < 60; i++) {
    for (let k = 0; k < dirty; k++) ram.writeU32(Math.floor(rand() * PAGES) * PAGE, i);
    const t0 = performance.now();
    h.syncDirty();
    const t1 = performance.now();
    sendAll();
    const t2 = performance.now();
    if (i >= 20) {
      sync.push(t1 - t0);
      send.push(t2 - t1);
    }
  }
  return { sync: median(sync), send: median(send) };
}

console.log('vmstate RAM pass benchmark (1 GiB block, 4 KiB pages)');
console.log(`  node ${process.version}`);
console.log(`  first pass (every page)        ${median(first).toFixed(1)} ms`);
for (const dirty of [16, 256, 4096]) {
  const r = passes(dirty);
  console.log(`  later pass, ${String(dirty).padStart(5)} pages dirtied   syncDirty ${(r.sync * 1000).toFixed(0).padStart(5)} µs   send ${(r.send * 1000).toFixed(0).padStart(6)} µs`);
}
