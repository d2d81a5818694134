/**
 * Reference-machine benchmarks on machines/large.json (1,024 dma-engines behind 128 root ports and 16
 * switches, 8 VT-d units, 1 GiB RAM), one run, figures on stdout:
 *   1. the device-state part of save plus load (every FULL section, no RAM): what a live migration's
 *      downtime pays for devices (target: under 5 ms);
 *   2. a whole snapshot to a file and a restore from it, as GB of guest RAM per second (target: >= 1 GB/s).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ByteReader, ByteWriter, loadState, QemuJsonWriter, saveState } from '../src/index.js';
import { openStreamFile } from '../src/analyze/index.js';
import { loadMachineDescription, Machine } from '../src/machine/index.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const desc = loadMachineDescription(path.join(repo, 'machines', 'large.json'));

function median(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
}

const src = new Machine(desc);
src.boot();
src.run(2);
const devices = src.registry.plan().entries.filter((e) => e.vmsd);

// 1. Device state: save every FULL body (with its VMDESCRIPTION text, as a snapshot writes it) and load it back.
const w = new ByteWriter(16 << 20);
const dst = new Machine(desc);
const dstEntries = devices.map((e) => dst.registry.find({ idstr: e.idstr, instanceId: e.instanceId }));
const saveTimes: number[] = [];
const loadTimes: number[] = [];
const bareSaveTimes: number[] = [];
for (let i = 0; i < 35; i++) {
  w.reset();
  const desc = new QemuJsonWriter();
  const t0 = performance.now();
  const ends: number[] = [];
  for (const e of devices) {
    desc.startObject();
    saveState(w, e.vmsd!, e.state as object, desc);
    desc.endObject();
    ends.push(w.length);
  }
  const t1 = performance.now();
  const r = new ByteReader(w.peek());
  // One `peer` for the whole load, as loadSnapshot has.
  const peer = <T>(ref: { idstr: string; instanceId?: number }) => dst.registry.find(ref)?.state as T;
  for (const d of dstEntries) loadState(r, d!.vmsd!, d!.state as object, d!.version, peer);
  const t2 = performance.now();
  // The same save without writing the VMDESCRIPTION (the destination never needs it).
  w.reset();
  const t3 = performance.now();
  for (const e of devices) saveState(w, e.vmsd!, e.state as object);
  const t4 = performance.now();
  if (i >= 5) {
    saveTimes.push(t1 - t0);
    loadTimes.push(t2 - t1);
    bareSaveTimes.push(t4 - t3);
  }
}
const deviceBytes = w.length;

// 2. Whole snapshot to a file, and restore from it.
const file = path.join(os.tmpdir(), `vmstate-bench-large-${process.pid}.mig`);
const t0 = performance.now();
const fd = fs.openSync(file, 'w');
src.save((c) => {
  for (let done = 0; done < c.length; ) done += fs.writeSync(fd, c, done, c.length - done);
});
fs.closeSync(fd);
const saveMs = performance.now() - t0;
const size = fs.statSync(file).size;
const restored = new Machine(desc);
const t1 = performance.now();
const f = openStreamFile(file);
await restored.load(f.source());
f.close();
const loadMs = performance.now() - t1;
fs.rmSync(file, { force: true });
const ok = restored.ramHash() === src.ramHash();

const gb = desc.ramBytes / 1e9;
const mark = (good: boolean) => (good ? 'ok' : 'MISSED');
console.log('vmstate reference-machine benchmark (machines/large.json)');
console.log(`  node ${process.version}; ${devices.length} device sections, ${src.engines.length} dma-engines, ${src.iommus.length} VT-d units, ${desc.ramBytes >> 20} MiB RAM`);
console.log('');
console.log(`device state (${deviceBytes} bytes, ${devices.length} sections, median of 30, after 5 warm-up rounds)`);
console.log(`  save ${median(saveTimes).toFixed(2)} ms + load ${median(loadTimes).toFixed(2)} ms = ${(median(saveTimes) + median(loadTimes)).toFixed(2)} ms   target < 5 ms: ${mark(median(saveTimes) + median(loadTimes) < 5)}`);
console.log(`  without the VMDESCRIPTION: save ${median(bareSaveTimes).toFixed(2)} ms + load ${median(loadTimes).toFixed(2)} ms = ${(median(bareSaveTimes) + median(loadTimes)).toFixed(2)} ms`);
console.log('');
console.log(`whole snapshot (${size} bytes on disk)`);
console.log(`  save to file  ${saveMs.toFixed(0)} ms = ${(gb / (saveMs / 1000)).toFixed(2)} GB/s of guest RAM   target >= 1 GB/s: ${mark(gb / (saveMs / 1000) >= 1)}`);
console.log(`  restore       ${loadMs.toFixed(0)} ms = ${(gb / (loadMs / 1000)).toFixed(2)} GB/s of guest RAM   target >= 1 GB/s: ${mark(gb / (loadMs / 1000) >= 1)}`);
console.log(`  RAM after restore equals the source: ${ok ? 'yes' : 'NO'}`);
