// Strict saving as a seeded property: random declarations (every field kind, nested structs, fixed and
// counted arrays, arrays of pointers, buffers sized by a field, subsections) with random valid states
// save and load back equal; then each value of each state, made one way or another invalid (out of
// range by one at either end, of the wrong type, NaN, a fraction, a bigint for a number and the other way
// round, an array or buffer one element short or long, a count its array does not have), is SaveError
// naming that exact field, with and without the VMDESCRIPTION, and the valid state still saves the same.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  array,
  bool,
  buffer,
  ByteReader,
  custom,
  ByteWriter,
  defineVmsd,
  INT_CODECS,
  loadState,
  pointerArray,
  QemuJsonWriter,
  SaveError,
  saveState,
  struct,
  timer,
  u32Array,
  u64,
  u8,
  i16,
  i32,
  unused,
  varray,
  vbuffer,
  type AnyVmsd,
  type Field,
  type IntCodecName,
  type IntField,
} from '../../src/index.js';
import { seededRandom } from '../support/random.js';
import { save } from '../support/vmsd.js';

type Rng = () => number;

const INT_TYPES = Object.keys(INT_CODECS) as IntCodecName[];
// The int builders by codec name (u8 … i64 and the checked ones), as defineVmsd's fields.
const intField = (name: string, type: IntCodecName): IntField => {
  const { size, signed } = INT_CODECS[type];
  const check = (INT_CODECS[type] as { check?: 'equal' | 'le' }).check;
  return { kind: 'int', name, type, size, signed, ...(check ? { check } : {}) };
};

/** The values an int codec holds: numbers up to 4 bytes, bigints for 8. */
function rangeOf(type: IntCodecName): { lo: bigint; hi: bigint; big: boolean } {
  const { size, signed } = INT_CODECS[type];
  const bits = BigInt(size * 8);
  return { lo: signed ? -(1n << (bits - 1n)) : 0n, hi: signed ? (1n << (bits - 1n)) - 1n : (1n << bits) - 1n, big: size === 8 };
}

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)];
const int = (rng: Rng, n: number) => Math.floor(rng() * n);

/** A random value of an int codec, often at a boundary. */
function randomInt(rng: Rng, type: IntCodecName): number | bigint {
  const { lo, hi, big } = rangeOf(type);
  const r = rng();
  const bits = (BigInt(int(rng, 2 ** 32)) << 32n) | BigInt(int(rng, 2 ** 32));
  const v = r < 0.2 ? lo : r < 0.4 ? hi : lo + (bits % (hi - lo + 1n));
  return big ? v : Number(v);
}

/** A place in a state that a mutation can make invalid. */
interface Site {
  /** The field path SaveError must name. */
  readonly path: string;
  readonly mutations: readonly { readonly what: string; readonly apply: () => void; readonly path?: string }[];
}

/**
 * A declaration and a way to make valid states of it. `make` returns the state, the state as loading
 * gives it back, the local state loading needs (arrays of pointers must hold their nulls), and the sites.
 */
interface Declared {
  readonly vmsd: AnyVmsd;
  make(rng: Rng): { state: Record<string, unknown>; loaded: Record<string, unknown>; local: Record<string, unknown>; sites: Site[] };
}

/** What a field generator gives: the value, its loaded form, its local form (or undefined), and its sites. */
type Made = [value: unknown, loaded: unknown, local: unknown];
type Maker = (rng: Rng, path: string, sites: Site[], set: (v: unknown) => void) => Made;

/** An element kind: its field declaration (named `name`) and a maker of its values. */
interface Kind {
  readonly field: (name: string) => Field;
  readonly make: Maker;
  /** A byte-sized int kind, whose arrays may be held in a Uint8Array. */
  readonly byteInt?: { readonly signed: boolean };
}

const WRONG_TYPES: readonly [string, unknown][] = [
  ['undefined', undefined],
  ['null', null],
  ['a string', '12'],
  ['an object', { x: 1 }],
];

function intKind(type: IntCodecName): Kind {
  const { lo, hi, big } = rangeOf(type);
  const { size, signed } = INT_CODECS[type];
  return {
    field: (name) => intField(name, type),
    byteInt: size === 1 ? { signed } : undefined,
    make(rng, path, sites, set) {
      const r = randomInt(rng, type);
      // "int32 le" loads only 0 up to the local value (which the local state of an array of pointers holds).
      const v = type === 'int32 le' && r < 0 ? -(Number(r) + 1) : r;
      const bad: [string, unknown][] = big
        ? [['max + 1', hi + 1n], ['min - 1', lo - 1n], ['a number', Number(v)], ['a boolean', true], ...WRONG_TYPES]
        : [['max + 1', Number(hi) + 1], ['min - 1', Number(lo) - 1], ['NaN', NaN], ['a fraction', Number(lo) + 0.5], ['Infinity', Infinity], ['a bigint', BigInt(v)], ['a boolean', true], ...WRONG_TYPES];
      sites.push({ path, mutations: bad.map(([what, b]) => ({ what, apply: () => set(b) })) });
      return [v, v, undefined];
    },
  };
}

const boolKind: Kind = {
  field: (name) => bool(name),
  make(rng, path, sites, set) {
    const v = rng() < 0.5;
    sites.push({ path, mutations: ([['1', 1], ['0', 0], ['"true"', 'true'], ...WRONG_TYPES] as [string, unknown][]).map(([what, b]) => ({ what, apply: () => set(b) })) });
    return [v, v, undefined];
  },
};

const timerKind: Kind = {
  field: (name) => timer(name),
  make(rng, path, sites, set) {
    const v = rng() < 0.3 ? -1n : BigInt(int(rng, 2 ** 32)) * 1000n;
    const bad: [string, unknown][] = [['max + 1', 1n << 63n], ['min - 1', -(1n << 63n) - 1n], ['a number', -1], ...WRONG_TYPES];
    sites.push({ path, mutations: bad.map(([what, b]) => ({ what, apply: () => set(b) })) });
    return [v, v, undefined];
  },
};

function bufferKind(size: number): Kind {
  return {
    field: (name) => buffer(name, size),
    make(rng, path, sites, set) {
      const v = Uint8Array.from({ length: size }, () => int(rng, 256));
      const bad: [string, unknown][] = [['one byte long', new Uint8Array(size + 1)], ['an array of numbers', [...v]], ...WRONG_TYPES];
      if (size > 0) bad.push(['one byte short', new Uint8Array(size - 1)]);
      sites.push({ path, mutations: bad.map(([what, b]) => ({ what, apply: () => set(b) })) });
      return [v, v.slice(), undefined];
    },
  };
}

function structKind(d: Declared): Kind {
  return {
    field: (name) => struct(name, d.vmsd as never),
    make(rng, path, sites, set) {
      const { state, loaded, local, sites: inner } = d.make(rng);
      // The inner sites' paths are relative to the struct: this element's path goes first.
      for (const s of inner) sites.push({ path: joinPath(path, s.path), mutations: s.mutations.map((m) => ({ ...m, path: m.path === undefined ? undefined : joinPath(path, m.path) })) });
      const bad: [string, unknown][] = [['null', null], ['a number', 5], ['an array', []], ['undefined', undefined]];
      sites.push({ path, mutations: bad.map(([what, b]) => ({ what, apply: () => set(b) })) });
      return [state, loaded, local];
    },
  };
}

/** Joins a path and a relative one: `a` + `b` is `a.b`, `a` + `[1]` is `a[1]`, `a` + `/s.x` is `a/s.x`. */
function joinPath(a: string, b: string): string {
  if (!b) return a;
  return b.startsWith('[') || b.startsWith('/') ? a + b : `${a}.${b}`;
}

/** A random element kind for arrays and single fields; structs only while `depth` allows. */
function randomKind(rng: Rng, depth: number, names: () => string): Kind {
  const r = rng();
  if (r < 0.5) return intKind(pick(rng, INT_TYPES));
  if (r < 0.6) return boolKind;
  if (r < 0.67) return timerKind;
  if (r < 0.8 || depth >= 2) return bufferKind(int(rng, 6));
  return structKind(declare(rng, depth + 1, names));
}

/**
 * A random description: 1 to 6 field groups (a single field, a fixed array, an array of pointers, a
 * counted array after its count field, a buffer after its size field, unused bytes), and at the top
 * level maybe a subsection sent when a bool field of the parent says so.
 */
function declare(rng: Rng, depth: number, names: () => string, name = names()): Declared {
  type Group = { fields: Field[]; make: (rng: Rng, s: Record<string, unknown>, l: Record<string, unknown>, loc: Record<string, unknown>, sites: Site[]) => void };
  const groups: Group[] = [];
  const subsections: AnyVmsd[] = [];
  const subMakers: { flag: string; d: Declared }[] = [];
  const groupCount = 1 + int(rng, 6);
  for (let g = 0; g < groupCount; g++) {
    const r = rng();
    const f = names();
    if (r < 0.35) {
      const k = randomKind(rng, depth, names);
      groups.push({
        fields: [k.field(f)],
        make(rng, s, l, loc, sites) {
          const [v, lv, local] = k.make(rng, f, sites, (b) => (s[f] = b));
          s[f] = v;
          l[f] = lv;
          if (local !== undefined) loc[f] = local;
        },
      });
    } else if (r < 0.8) {
      // A fixed array, a counted one (count field first), or an array of pointers.
      const k = randomKind(rng, depth, names);
      const mode = pick(rng, ['fixed', 'counted', 'pointers'] as const);
      const countType = pick(rng, ['uint8', 'uint16', 'uint32', 'int32'] as const);
      const multiply = mode === 'counted' && rng() < 0.3 ? 2 : undefined;
      const n = int(rng, 5);
      const cname = `${f}_n`;
      const el = k.field(f) as Exclude<Field, { kind: 'unused' }>;
      const fields: Field[] =
        mode === 'fixed' ? [array(el, n) as Field] : mode === 'pointers' ? [pointerArray(el, n) as Field] : [intField(cname, countType), varray(el, cname, multiply) as Field];
      groups.push({
        fields,
        make(rng, s, l, loc, sites) {
          const count = mode === 'counted' ? int(rng, 4) : n;
          const len = count * (multiply ?? 1);
          const setArr = (b: unknown) => (s[f] = b);
          if (mode === 'counted') {
            s[cname] = count;
            l[cname] = count;
            const { hi } = rangeOf(countType);
            sites.push({
              path: cname,
              mutations: [
                { what: 'count max + 1', apply: () => (s[cname] = Number(hi) + 1) },
                // An int32 holds -1: then the array says its count cannot be one.
                { what: 'count -1', apply: () => (s[cname] = -1), path: countType === 'int32' ? f : cname },
                { what: 'count a fraction', apply: () => (s[cname] = 0.5) },
                { what: 'count + 1 (the array has fewer)', apply: () => (s[cname] = count + 1), path: f },
              ],
            });
          }
          const els: unknown[] = [];
          const loadedEls: unknown[] = [];
          const localEls: unknown[] = [];
          for (let i = 0; i < len; i++) {
            const ep = `${f}[${i}]`;
            if (mode === 'pointers' && rng() < 0.3) {
              els.push(rng() < 0.5 ? null : undefined);
              loadedEls.push(null);
              localEls.push(null);
              continue;
            }
            const before = sites.length;
            const [v, lv, local] = k.make(rng, ep, sites, (b) => ((s[f] as unknown[])[i] = b));
            // An array of pointers takes null (or undefined) for any element.
            if (mode === 'pointers') {
              for (let j = before; j < sites.length; j++) {
                if (sites[j].path === ep) sites[j] = { path: ep, mutations: sites[j].mutations.filter((m) => m.what !== 'null' && m.what !== 'undefined') };
              }
            }
            els.push(v);
            loadedEls.push(lv);
            localEls.push(local ?? (mode === 'pointers' ? lv : undefined));
          }
          // Byte arrays sometimes travel as a Uint8Array of their bytes (an int8 of -1 as 0xff).
          const asBytes = k.byteInt !== undefined && mode !== 'pointers' && rng() < 0.4;
          s[f] = asBytes ? Uint8Array.from(els as number[], (x) => x & 0xff) : els;
          l[f] = loadedEls;
          if (mode === 'pointers' || localEls.some((x) => x !== undefined)) loc[f] = localEls;
          const bad: { what: string; apply: () => void; path?: string }[] = [
            { what: 'one element long', apply: () => setArr(asBytes ? new Uint8Array(len + 1) : [...els, els[0] ?? null]) },
            { what: 'not an array', apply: () => setArr({ length: len }) },
            { what: 'undefined', apply: () => setArr(undefined) },
          ];
          if (len > 0) bad.push({ what: 'one element short', apply: () => setArr(asBytes ? new Uint8Array(len - 1) : els.slice(1)) });
          // Only an array of byte-sized ints may be held in a Uint8Array.
          if (k.byteInt === undefined) bad.push({ what: 'a Uint8Array', apply: () => setArr(new Uint8Array(len)) });
          // Element sites write into the array: with a Uint8Array there is nothing wrong to write.
          if (asBytes) sites.splice(0, sites.length, ...sites.filter((x) => !x.path.startsWith(`${f}[`)));
          sites.push({ path: f, mutations: bad });
        },
      });
    } else if (r < 0.9) {
      // A buffer sized by a field before it.
      const sname = `${f}_len`;
      const sizeType = pick(rng, ['uint8', 'uint16', 'int32', 'uint32'] as const);
      groups.push({
        fields: [intField(sname, sizeType), vbuffer(f, sname)],
        make(rng, s, l, _loc, sites) {
          const size = int(rng, 6);
          const v = Uint8Array.from({ length: size }, () => int(rng, 256));
          s[sname] = size;
          l[sname] = size;
          s[f] = v;
          l[f] = v.slice();
          sites.push({
            path: sname,
            mutations: [
              { what: 'size -1', apply: () => (s[sname] = -1), path: sizeType === 'int32' ? f : sname },
              { what: 'size + 1 (the buffer has fewer)', apply: () => (s[sname] = size + 1), path: f },
            ],
          });
          sites.push({
            path: f,
            mutations: [
              { what: 'one byte long', apply: () => (s[f] = new Uint8Array(size + 1)) },
              { what: 'a number', apply: () => (s[f] = 3) },
              ...(size > 0 ? [{ what: 'one byte short', apply: () => (s[f] = v.subarray(1)) }] : []),
            ],
          });
        },
      });
    } else {
      groups.push({ fields: [unused(1 + int(rng, 3))], make() {} });
    }
  }
  if (depth === 0 && rng() < 0.5) {
    const flag = names();
    const sub = declare(rng, 1, names, `${name}/sub`);
    subsections.push(sub.vmsd);
    subMakers.push({ flag, d: sub });
    groups.push({
      fields: [bool(flag)],
      make(rng, s, l, _loc, sites) {
        s[flag] = rng() < 0.6;
        l[flag] = s[flag];
        sites.push({ path: flag, mutations: [{ what: 'a number', apply: () => (s[flag] = 1) }] });
      },
    });
  }
  const vmsd = defineVmsd({
    name,
    version: 1,
    fields: groups.flatMap((g) => g.fields),
    subsections: subsections.map((sub, i) => defineVmsd({ ...(sub as never as { name: string; version: number; fields: readonly Field[] }), needed: (s: Record<string, unknown>) => s[subMakers[i].flag] === true })),
  } as never) as AnyVmsd;
  const declared: Declared = {
    vmsd,
    make(rng) {
      const state: Record<string, unknown> = {};
      const loaded: Record<string, unknown> = {};
      const local: Record<string, unknown> = {};
      const sites: Site[] = [];
      for (const g of groups) g.make(rng, state, loaded, local, sites);
      for (const { flag, d } of subMakers) {
        // Made either way, so the random sequence does not depend on the flag; kept only when sent.
        const sub = d.make(rng);
        if (state[flag] !== true) continue;
        Object.assign(state, sub.state);
        Object.assign(loaded, sub.loaded);
        Object.assign(local, sub.local);
        for (const site of sub.sites) {
          sites.push({ path: `/sub.${site.path}`, mutations: site.mutations.map((m) => ({ ...m, path: m.path === undefined ? undefined : `/sub.${m.path}` })) });
        }
        // The sites' closures write into the sub-state object: point them at the shared one.
        rebind(sub.state, state);
      }
      return { state, loaded, local, sites };
    },
  };
  return declared;
}

// A subsection's values are made in an object of their own and then copied into the parent's state; its
// sites write into that object, so they are redirected with a proxy-free trick: the sub-state's own
// properties become accessors onto the parent's.
function rebind(from: Record<string, unknown>, to: Record<string, unknown>): void {
  for (const key of Object.keys(from)) {
    Object.defineProperty(from, key, { get: () => to[key], set: (v) => (to[key] = v), enumerable: true, configurable: true });
  }
}

function saveBoth(vmsd: AnyVmsd, state: object): Uint8Array {
  const w = new ByteWriter(64);
  const desc = new QemuJsonWriter();
  desc.startObject();
  saveState(w, vmsd, state, desc);
  const bare = new ByteWriter(64);
  saveState(bare, vmsd, state);
  assert.deepEqual(bare.peek(), w.peek(), 'the same bytes with and without the description');
  return w.peek().slice();
}

/** Saving throws SaveError at `path`, with and without the description, as the path names it. */
function assertSaveError(vmsd: AnyVmsd, state: object, path: string, what: string): void {
  for (const desc of [undefined, new QemuJsonWriter()]) {
    desc?.startObject();
    let caught: unknown;
    try {
      saveState(new ByteWriter(64), vmsd, state, desc);
    } catch (e) {
      caught = e;
    }
    assert.ok(caught instanceof SaveError, `${what}: SaveError expected${desc ? ' (described)' : ''}, got ${String(caught)}`);
    assert.equal(caught.code, 'SAVE');
    assert.equal(caught.path, path, `${what}: the path (${caught.message})`);
    assert.equal(caught.data.field, path);
    assert.ok(caught.message.startsWith(`${path}: `), `${what}: the message starts with the path: ${caught.message}`);
    assert.match(caught.message, /holds .*, expected /, `${what}: both sides in ${caught.message}`);
  }
}

test('random declarations: valid states save and load back equal; each value made invalid is SaveError naming its field', (t) => {
  const rng = seededRandom(0x5a7e);
  const DECLARATIONS = 200;
  // Invalid values tried per declaration, drawn from all its sites' mutations.
  const PER_DECLARATION = 8;
  const tried = new Map<string, number>();
  const started = performance.now();
  for (let c = 0; c < DECLARATIONS; c++) {
    let next = 0;
    const d = declare(rng, 0, () => `f${next++}`, `dev${c}`);
    const seed = int(rng, 2 ** 31);
    const fresh = () => d.make(seededRandom(seed));
    const { state, loaded, local, sites } = fresh();
    const bytes = saveBoth(d.vmsd, state);
    const r = new ByteReader(bytes);
    loadState(r, d.vmsd, local, 1);
    assert.equal(r.remaining, 0, `dev${c}: the whole body is read`);
    assert.deepEqual(local, loaded, `dev${c}: loads back equal`);
    assert.deepEqual(saveBoth(d.vmsd, local), bytes, `dev${c}: the loaded state saves the same bytes`);
    const all = sites.flatMap((site, si) => site.mutations.map((_, mi) => [si, mi] as const));
    for (let k = 0; k < PER_DECLARATION && all.length > 0; k++) {
      const [si, mi] = all.splice(int(rng, all.length), 1)[0];
      // A fresh state: the same values and the same sites (by position), one value made invalid.
      const again = fresh();
      const site = again.sites[si];
      const m = site.mutations[mi];
      m.apply();
      assertSaveError(d.vmsd, again.state, joinPath(`dev${c}`, m.path ?? site.path), `dev${c} ${site.path}: ${m.what}`);
      tried.set(m.what, (tried.get(m.what) ?? 0) + 1);
    }
    // Failed saves leave nothing behind: the valid state still saves the same bytes.
    assert.deepEqual(saveBoth(d.vmsd, fresh().state), bytes);
  }
  const total = [...tried.values()].reduce((a, b) => a + b, 0);
  t.diagnostic(`${DECLARATIONS} declarations, ${total} invalid values, ${(performance.now() - started).toFixed(0)} ms`);
  // Every way of being invalid came up.
  for (const what of ['max + 1', 'min - 1', 'NaN', 'a fraction', 'a bigint', 'a number', 'a string', 'null', 'undefined', 'one element short', 'one element long', 'one byte short', 'one byte long', 'count max + 1', 'count + 1 (the array has fewer)', 'size + 1 (the buffer has fewer)', 'a Uint8Array', 'not an array', 'an array']) {
    assert.ok((tried.get(what) ?? 0) > 0, `"${what}" was tried`);
  }
});

test('what each misfit says: the field path from the description name on, what it holds and what it should', () => {
  const ctl = defineVmsd({
    name: 'ctl',
    version: 1,
    fields: [u8('ctl'), u64('base')],
    subsections: [defineVmsd({ name: 'ctl/ext', version: 1, needed: (s) => Number(s.ctl) > 1, fields: [bool('on')] })],
  });
  const irq = custom('irq', {
    type: 'irq state',
    size: 4,
    read: (r) => r.getBe32(),
    write: (w, v: number) => w.putBe32(v),
    accepts: (v) => typeof v === 'number' && v >= 0 && v <= 3,
    expected: 'a pin from 0 to 3',
  });
  const dev = defineVmsd({
    name: 'dev',
    version: 1,
    fields: [u8('n'), varray(struct('regs', ctl), 'n'), i16('delta'), timer('t'), i32('len'), vbuffer('data', 'len'), u32Array('csr', 2), irq],
  });
  const good = () => ({
    n: 2,
    regs: [
      { ctl: 1, base: 0n },
      { ctl: 2, base: 5n, on: true },
    ] as { ctl: unknown; base: unknown; on?: unknown }[],
    delta: -3 as unknown,
    t: -1n as unknown,
    len: 2 as unknown,
    data: new Uint8Array(2) as unknown,
    csr: [1, 2] as unknown,
    irq: 3 as unknown,
  });
  const cases: [string, (s: ReturnType<typeof good>) => void, string][] = [
    ['u8 too big', (s) => (s.regs[1].ctl = 300), 'dev.regs[1].ctl: holds 300, expected uint8 (an integer from 0 to 255)'],
    ['u64 a number', (s) => (s.regs[0].base = 5), 'dev.regs[0].base: holds 5, expected uint64 (a bigint from 0 to 18446744073709551615)'],
    ['a subsection of a struct', (s) => (s.regs[1].on = 1), 'dev.regs[1]/ext.on: holds 1, expected bool (true or false)'],
    ['i16 a string', (s) => (s.delta = 'x'), 'dev.delta: holds a string "x", expected int16 (an integer from -32768 to 32767)'],
    ['i16 NaN', (s) => (s.delta = NaN), 'dev.delta: holds NaN, expected int16 (an integer from -32768 to 32767)'],
    ['timer missing', (s) => (s.t = undefined), 'dev.t: holds undefined, expected timer (a bigint from -9223372036854775808 to 9223372036854775807, -1 when not armed)'],
    ['varray short', (s) => s.regs.pop(), 'dev.regs: holds an array of 1 element, expected 2 elements (count field n holds 2)'],
    ['count its field cannot hold', (s) => ((s as { n: unknown }).n = 256), 'dev.n: holds 256, expected uint8 (an integer from 0 to 255)'],
    ['vbuffer long', (s) => (s.data = new Uint8Array(3)), 'dev.data: holds a Uint8Array of 3 bytes, expected buffer (a Uint8Array of 2 bytes: size field len holds 2)'],
    ['vbuffer size negative', (s) => (s.len = -1), 'dev.data: count field len holds -1, expected a non-negative integer'],
    ['array long', (s) => (s.csr = [1, 2, 3]), 'dev.csr: holds an array of 3 elements, expected 2 elements'],
    ['array not one', (s) => (s.csr = new Uint32Array(2)), 'dev.csr: holds a Uint32Array, expected an array of 2 elements'],
    ['u32 element a fraction', (s) => (s.csr = [1, 2.5]), 'dev.csr[1]: holds 2.5, expected uint32 (an integer from 0 to 4294967295)'],
    ['custom codec refuses', (s) => (s.irq = 4), 'dev.irq: holds 4, expected irq state (a pin from 0 to 3)'],
  ];
  save(dev, good());
  for (const [what, mutate, message] of cases) {
    const s = good();
    mutate(s);
    assert.throws(() => save(dev, s), (e: unknown) => e instanceof SaveError && e.message === message, what);
  }
  // A count field after its array cannot be checked by its own field first: the array says what it can hold.
  const late = defineVmsd({ name: 'late', version: 1, fields: [varray(u8('xs'), 'n'), u8('n')] });
  assert.throws(
    () => save(late, { xs: new Array<number>(256).fill(0), n: 256 }),
    (e: unknown) => e instanceof SaveError && e.message === 'late.xs: count field n holds 256, expected at most 255 (n is uint8)',
  );
  // A custom codec that writes other than its size is caught.
  const sloppy = defineVmsd({ name: 'sloppy', version: 1, fields: [custom('c', { type: 'two', size: 2, read: (r) => r.getByte(), write: (w, v: number) => w.putByte(v) })] });
  assert.throws(() => save(sloppy, { c: 1 }), (e: unknown) => e instanceof SaveError && e.message === 'sloppy.c: two wrote 1 bytes, expected 2');
  // A SaveError a hook throws passes through as the hook made it; other hook failures are named by path.
  const own = new SaveError('not now', 'my-device');
  const hooked = defineVmsd({ name: 'hooked', version: 1, fields: [u8('v')], preSave: () => { throw own; } });
  const outer = defineVmsd({ name: 'outer', version: 1, fields: [array(struct('in', hooked), 2)] });
  assert.throws(() => save(outer, { in: [{ v: 1 }, { v: 2 }] }), (e: unknown) => e === own);
  const failing = defineVmsd({ name: 'failing', version: 1, fields: [u8('v')], postSave: () => { throw new Error('oops'); } });
  const outer2 = defineVmsd({ name: 'outer2', version: 1, fields: [struct('in', failing)] });
  assert.throws(() => save(outer2, { in: { v: 1 } }), (e: unknown) => e instanceof SaveError && e.message === 'outer2.in: post-save hook failed: oops');
});
