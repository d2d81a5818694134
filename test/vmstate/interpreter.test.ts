// The interpreter against golden byte vectors (one comment per field) and the exact VMDESCRIPTION
// text QEMU 7.2 would write, for every field kind and every version and subsection rule.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  array,
  bool,
  buffer,
  ByteWriter,
  defineVmsd,
  i16,
  i32,
  i32Equal,
  i32Le,
  i64,
  i8,
  LoadError,
  SaveError,
  pointerArray,
  saveState,
  struct,
  timer,
  u16,
  u16Equal,
  u32,
  u64,
  u64Equal,
  u8,
  u8Array,
  unused,
  varray,
  vbuffer,
} from '../../src/index.js';
import { VMDESC_RULES_10_0 } from '../../src/vmstate/index.js';
import { load, save } from '../support/vmsd.js';

const scalars = defineVmsd({
  name: 'scalars',
  version: 1,
  fields: [u8('a'), u16('b'), u32('c'), u64('d'), i8('e'), i16('f'), i32('g'), i64('h'), bool('i'), timer('t'), buffer('buf', 3), unused(2)],
});

test('every scalar kind: bytes and description', () => {
  const state = { a: 0x12, b: 0x3456, c: 0x789abcde, d: 0x0102030405060708n, e: -1, f: -2, g: -3, h: -4n, i: true, t: -1n, buf: new Uint8Array([9, 8, 7]) };
  const { bytes, desc } = save(scalars, state);
  assert.deepEqual(bytes, [
    0x12, //                                   a: uint8
    0x34, 0x56, //                             b: uint16
    0x78, 0x9a, 0xbc, 0xde, //                 c: uint32
    1, 2, 3, 4, 5, 6, 7, 8, //                 d: uint64
    0xff, //                                   e: int8 -1
    0xff, 0xfe, //                             f: int16 -2
    0xff, 0xff, 0xff, 0xfd, //                 g: int32 -3
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfc, // h: int64 -4
    0x01, //                                   i: bool
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // t: timer not armed (-1)
    9, 8, 7, //                                buf: buffer[3]
    0, 0, //                                   unused_buffer[2]
  ]);
  assert.equal(
    desc,
    '{"vmsd_name": "scalars", "version": 1, "fields": [' +
      '{"name": "a", "type": "uint8", "size": 1}, {"name": "b", "type": "uint16", "size": 2}, {"name": "c", "type": "uint32", "size": 4}, ' +
      '{"name": "d", "type": "uint64", "size": 8}, {"name": "e", "type": "int8", "size": 1}, {"name": "f", "type": "int16", "size": 2}, ' +
      '{"name": "g", "type": "int32", "size": 4}, {"name": "h", "type": "int64", "size": 8}, {"name": "i", "type": "bool", "size": 1}, ' +
      '{"name": "t", "type": "timer", "size": 8}, {"name": "buf", "type": "buffer", "size": 3}, {"name": "unused", "type": "unused_buffer", "size": 2}]}',
  );
  assert.deepEqual(load(scalars, bytes, 1), state);
});

const inner = defineVmsd({ name: 'inner', version: 3, fields: [u16('x'), u8('y')] });
// The subsection's `needed` reads its parent's field: they share one state object.
const innerWithSub = defineVmsd({
  name: 'innersub',
  version: 1,
  fields: [u8('v')],
  subsections: [defineVmsd({ name: 'innersub/extra', version: 1, needed: (s) => Number(s.v) > 1, fields: [u8('w')] })],
});

const arrays = defineVmsd({
  name: 'arrays',
  version: 1,
  fields: [
    array(u32('regs'), 3), //              compressible: described once with array_len
    u8('n'),
    varray(u16('dyn'), 'n'), //            count from n
    array(struct('pts', inner), 2), //      array of compressible structs
    array(struct('subs', innerWithSub), 2), // structs with subsections: one object per element, with index
    u8Array('one', 1), //                  one element: described as a scalar
    u8Array('none', 0), //                 no element: no object at all
  ],
});

test('arrays: array_len for compressible elements, index otherwise, count from another field', () => {
  const state = {
    regs: [1, 2, 3],
    n: 2,
    dyn: [0xaaaa, 0xbbbb],
    pts: [
      { x: 1, y: 2 },
      { x: 3, y: 4 },
    ],
    subs: [{ v: 1 }, { v: 2, w: 7 }],
    one: [5],
    none: [],
  };
  const { bytes, desc } = save(arrays, state);
  assert.deepEqual(bytes, [
    0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, // regs[3]
    2, //                                  n
    0xaa, 0xaa, 0xbb, 0xbb, //             dyn[n]
    0, 1, 2, 0, 3, 4, //                    pts[2]: x, y each
    1, //                                  subs[0].v (extra not needed)
    2, 5, 14, ...Buffer.from('innersub/extra'), 0, 0, 0, 1, 7, // subs[1].v, then its subsection: marker, name, version 1, w
    5, //                                  one[1]
  ]);
  assert.equal(
    desc,
    '{"vmsd_name": "arrays", "version": 1, "fields": [' +
      '{"name": "regs", "array_len": 3, "type": "uint32", "size": 4}, {"name": "n", "type": "uint8", "size": 1}, ' +
      '{"name": "dyn", "array_len": 2, "type": "uint16", "size": 2}, ' +
      '{"name": "pts", "array_len": 2, "type": "struct", "struct": {"vmsd_name": "inner", "version": 3, "fields": [{"name": "x", "type": "uint16", "size": 2}, {"name": "y", "type": "uint8", "size": 1}]}, "size": 3}, ' +
      '{"name": "subs", "index": 0, "type": "struct", "struct": {"vmsd_name": "innersub", "version": 1, "fields": [{"name": "v", "type": "uint8", "size": 1}]}, "size": 1}, ' +
      '{"name": "subs", "index": 1, "type": "struct", "struct": {"vmsd_name": "innersub", "version": 1, "fields": [{"name": "v", "type": "uint8", "size": 1}], ' +
      '"subsections": [{"vmsd_name": "innersub/extra", "version": 1, "fields": [{"name": "w", "type": "uint8", "size": 1}]}]}, "size": 22}, ' +
      '{"name": "one", "type": "uint8", "size": 1}]}',
  );
  assert.deepEqual(load(arrays, bytes, 1), state);
});

const byteFiles = defineVmsd({ name: 'bytes', version: 1, fields: [u8Array('csr', 4), array(i8('deltas'), 3), u8('n'), varray(u8('dyn'), 'n')] });

test('byte arrays (register files) as numbers, signed and unsigned, or held in a Uint8Array', () => {
  const state = { csr: [0x10, 0, 0xff, 7], deltas: [-1, 0, 127], n: 0, dyn: [] };
  const { bytes } = save(byteFiles, state);
  assert.deepEqual(bytes, [
    0x10, 0, 0xff, 7, //                      csr[4]
    0xff, 0, 0x7f, //                         deltas[3]: int8 -1, 0, 127
    0, //                                     n (dyn has none)
  ]);
  assert.deepEqual(load(byteFiles, bytes, 1), state);
  // A Uint8Array holds the bytes as they travel (an int8 of -1 as 0xff), and exactly as many as the count.
  assert.deepEqual(save(byteFiles, { ...state, csr: new Uint8Array([1, 2, 3, 4]), deltas: new Uint8Array([0xff, 0, 0x80]) }).bytes, [1, 2, 3, 4, 0xff, 0, 0x80, 0]);
  assert.throws(() => save(byteFiles, { ...state, csr: new Uint8Array([1, 2]) }), (e: unknown) => e instanceof SaveError && e.message === 'bytes.csr: holds a Uint8Array of 2 bytes, expected 4 elements');
  const withDyn = load(byteFiles, [1, 2, 3, 4, 0x80, 0x81, 0xfe, 2, 9, 8], 1);
  assert.deepEqual(withDyn, { csr: [1, 2, 3, 4], deltas: [-128, -127, -2], n: 2, dyn: [9, 8] });
});

const versioned = defineVmsd({
  name: 'dev',
  version: 3,
  minVersion: 2,
  fields: [u8('old'), u8('v3only', { version: 3 }), buffer('cfg', 2, { exists: (s: { big: boolean }) => !s.big }), buffer('cfg', 4, { exists: (s: { big: boolean }) => s.big }), bool('big')],
});

test('version gates, exists predicates and repeated names (name[k])', () => {
  const small = save(versioned, { old: 1, v3only: 2, cfg: new Uint8Array([7, 7]), big: false });
  assert.deepEqual(small.bytes, [1, 2, 7, 7, 0]); // old, v3only, cfg[0] (2 bytes), big
  assert.match(small.desc, /\{"name": "cfg\[0\]", "type": "buffer", "size": 2\}/);
  // Saved at version 2 (as an older QEMU would): v3only is not sent.
  const v2 = save(versioned, { old: 1, v3only: 2, cfg: new Uint8Array([7, 7, 7, 7]), big: true }, 2);
  assert.deepEqual(v2.bytes, [1, 7, 7, 7, 7, 1]);
  assert.match(v2.desc, /"version": 2,.*\{"name": "cfg\[1\]", "type": "buffer", "size": 4\}/);
  // Loading at version 2 reads no v3only; `big` must already say which cfg comes (the receiver's config).
  assert.deepEqual(load(versioned, v2.bytes, 2, { big: true } as Record<string, unknown>), { big: true, old: 1, cfg: new Uint8Array([7, 7, 7, 7]) });
});

test('versions out of range are refused with both sides named', () => {
  assert.throws(
    () => load(versioned, [], 4),
    (e: unknown) => e instanceof LoadError && e.message === 'dev: incoming version_id 4 is too new for local version_id 3',
  );
  assert.throws(
    () => load(versioned, [], 1),
    (e: unknown) => e instanceof LoadError && e.message === 'dev: incoming version_id 1 is too old for local minimum_version_id 2',
  );
});

const withSubs = defineVmsd({
  name: 'fw',
  version: 2,
  fields: [u16('cur')],
  subsections: [
    defineVmsd({ name: 'fw/dma', version: 1, needed: (s: { dma: bigint }) => s.dma !== 0n, fields: [u64('dma')] }),
    defineVmsd({ name: 'fw/acpi', version: 2, minVersion: 1, fields: [u32('acpi', { version: 2 })] }),
  ],
});

test('subsections: sent when needed, in order, with name and version; absent ones are fine on load', () => {
  const a = save(withSubs, { cur: 1, dma: 0n, acpi: 9 });
  assert.deepEqual(a.bytes, [
    0, 1, //                                             cur
    5, 7, ...Buffer.from('fw/acpi'), 0, 0, 0, 2, //       subsection fw/acpi version 2 (fw/dma not needed)
    0, 0, 0, 9, //                                       acpi
  ]);
  assert.equal(
    a.desc,
    '{"vmsd_name": "fw", "version": 2, "fields": [{"name": "cur", "type": "uint16", "size": 2}], ' +
      '"subsections": [{"vmsd_name": "fw/acpi", "version": 2, "fields": [{"name": "acpi", "type": "uint32", "size": 4}]}]}',
  );
  assert.deepEqual(load(withSubs, a.bytes, 2), { cur: 1, acpi: 9 });
  // A subsection at an older version skips its newer field.
  assert.deepEqual(load(withSubs, [0, 1, 5, 7, ...Buffer.from('fw/acpi'), 0, 0, 0, 1], 2), { cur: 1 });
  // Not ours: a subsection of another description stops the loop (an enclosing struct's parent may own it).
  const r = [0, 1, 5, 7, ...Buffer.from('xx/acpi'), 0, 0, 0, 1];
  assert.throws(() => load(withSubs, r, 2), /13 bytes left after load/);
});

test('an unknown subsection with our prefix is an error naming it', () => {
  assert.throws(
    () => load(withSubs, [0, 1, 5, 6, ...Buffer.from('fw/zzz'), 0, 0, 0, 1], 2),
    (e: unknown) => e instanceof LoadError && e.message === 'fw: unknown subsection fw/zzz',
  );
});

test('"equal" and "le" fields check the local value', () => {
  const eq = defineVmsd({ name: 'eq', version: 1, fields: [i32Equal('nirq'), u16Equal('max'), u64Equal('big'), i32Le('ver')] });
  const bytes = save(eq, { nirq: 8, max: 3, big: 5n, ver: 2 }).bytes;
  assert.deepEqual(load(eq, bytes, 1, { nirq: 8, max: 3, big: 5n, ver: 3 }), { nirq: 8, max: 3, big: 5n, ver: 2 });
  assert.throws(
    () => load(eq, bytes, 1, { nirq: 4, max: 3, big: 5n, ver: 3 }),
    (e: unknown) => e instanceof LoadError && e.message === 'eq: nirq: incoming value 8 does not match local value 4',
  );
  assert.throws(() => load(eq, bytes, 1, { nirq: 8, max: 3, big: 5n, ver: 1 }), /eq: ver: incoming value 2 is not between 0 and local value 1/);
});

test('arrays of pointers: a null element is the marker 0x30', () => {
  const ptrs = defineVmsd({ name: 'ptrs', version: 1, fields: [pointerArray(struct('slot', inner), 3)] });
  const state = { slot: [{ x: 1, y: 2 }, null, { x: 3, y: 4 }] };
  const { bytes } = save(ptrs, state);
  assert.deepEqual(bytes, [0, 1, 2, 0x30, 0, 3, 4]);
  assert.deepEqual(load(ptrs, bytes, 1, { slot: [{}, null, {}] } as Record<string, unknown>), state);
  assert.throws(() => load(ptrs, [0, 1, 2, 0x31, 0, 3, 4], 1, { slot: [{}, null, {}] } as Record<string, unknown>), /null marker 0x30 was expected, found 0x31/);
});

test('QEMU 10.0 describes arrays as 7.2 does, but the last element of an array that is not compressed has no index', () => {
  const state = { regs: [1, 2, 3], n: 2, dyn: [0xaaaa, 0xbbbb], pts: [{ x: 1, y: 2 }, { x: 3, y: 4 }], subs: [{ v: 1 }, { v: 2, w: 7 }], one: [5], none: [] };
  const old = save(arrays, state);
  const now = save(arrays, state, undefined, VMDESC_RULES_10_0);
  assert.deepEqual(now.bytes, old.bytes);
  assert.equal(now.desc, old.desc.replace('{"name": "subs", "index": 1, ', '{"name": "subs", '));
});

test('QEMU 10.0 describes NULL elements as "nullptr", each run of NULL or non-NULL elements on its own', () => {
  const ptrs = defineVmsd({ name: 'ptrs', version: 1, fields: [pointerArray(struct('slot', inner), 4)] });
  const slot = (size: number) => `"type": "struct", "struct": {"vmsd_name": "inner", "version": 3, "fields": [{"name": "x", "type": "uint16", "size": 2}, {"name": "y", "type": "uint8", "size": 1}]}, "size": ${size}`;
  const state = { slot: [null, null, { x: 1, y: 2 }, { x: 3, y: 4 }] };
  const { bytes, desc } = save(ptrs, state, undefined, VMDESC_RULES_10_0);
  assert.deepEqual(bytes, [0x30, 0x30, 0, 1, 2, 0, 3, 4]);
  assert.equal(
    desc,
    '{"vmsd_name": "ptrs", "version": 1, "fields": [' +
      '{"name": "slot", "array_len": 2, "type": "nullptr", "size": 1}, ' + // slot[0..1]: NULL
      `{"name": "slot", "array_len": 2, ${slot(3)}}]}`, //                     slot[2..3]
  );
  // 7.2: the array is compressed whatever it holds, described by its first element (here a NULL one).
  assert.equal(save(ptrs, state).desc, `{"vmsd_name": "ptrs", "version": 1, "fields": [{"name": "slot", "array_len": 4, "type": "struct", "struct": {}, "size": 1}]}`);
  // As QEMU 10.0.2 does: a first run of non-NULL elements is described as if it spanned the whole array.
  assert.equal(
    save(ptrs, { slot: [{ x: 1, y: 2 }, null, { x: 3, y: 4 }, null] }, undefined, VMDESC_RULES_10_0).desc,
    '{"vmsd_name": "ptrs", "version": 1, "fields": [' +
      `{"name": "slot", "array_len": 4, ${slot(3)}}, {"name": "slot", "type": "nullptr", "size": 1}, {"name": "slot", ${slot(3)}}, ` +
      '{"name": "slot", "type": "nullptr", "size": 1}]}',
  );
  // A name that repeats is numbered by the field's position, which QEMU's stand-in for NULL has none of.
  const twice = defineVmsd({ name: 'twice', version: 1, fields: [pointerArray(u8('p'), 2), pointerArray(u8('p'), 2)] });
  assert.equal(
    save(twice, { p: [null, 7] }, undefined, VMDESC_RULES_10_0).desc,
    '{"vmsd_name": "twice", "version": 1, "fields": [{"name": "p[-1]", "type": "nullptr", "size": 1}, {"name": "p[0]", "type": "uint8", "size": 1}, ' +
      '{"name": "p[-1]", "type": "nullptr", "size": 1}, {"name": "p[1]", "type": "uint8", "size": 1}]}',
  );
});

test('a buffer sized by another field, and nested struct versions that never travel', () => {
  const vb = defineVmsd({ name: 'vb', version: 1, fields: [i32('len'), vbuffer('data', 'len'), struct('in', inner)] });
  const state = { len: 3, data: new Uint8Array([1, 2, 3]), in: { x: 9, y: 8 } };
  const { bytes, desc } = save(vb, state);
  assert.deepEqual(bytes, [0, 0, 0, 3, 1, 2, 3, 0, 9, 8]);
  assert.match(desc, /"struct": \{"vmsd_name": "inner", "version": 3,/);
  assert.deepEqual(load(vb, bytes, 1), state);
});

test('hooks run in order, and a failing hook is a typed error naming the description', () => {
  const calls: string[] = [];
  const hooked = defineVmsd({
    name: 'hooked',
    version: 1,
    fields: [u8('v')],
    preSave: (s) => calls.push(`preSave ${s.v}`),
    postSave: () => calls.push('postSave'),
    preLoad: (_s, ctx) => calls.push(`preLoad v${ctx.version}`),
    postLoad: (s) => {
      calls.push(`postLoad ${s.v}`);
      if (s.v === 13) throw new Error('unlucky');
    },
  });
  // One save (the helper saves twice, with and without the description).
  const w = new ByteWriter(16);
  saveState(w, hooked, { v: 4 });
  load(hooked, w.peek(), 1);
  assert.deepEqual(calls, ['preSave 4', 'postSave', 'preLoad v1', 'postLoad 4']);
  assert.throws(() => load(hooked, [13], 1), (e: unknown) => e instanceof LoadError && e.message === 'hooked: post-load hook failed: unlucky');
});

test('the state type is inferred from the description', () => {
  const d = defineVmsd({ name: 't', version: 1, fields: [u8('a'), u64('b'), array(u16('c'), 2), unused(4), bool('d')] });
  type S = Parameters<NonNullable<typeof d.postLoad>>[0];
  const s: S = { a: 1, b: 2n, c: [1, 2], d: true };
  // @ts-expect-error -- 'unused' is not part of the state
  const bad: S = { a: 1, b: 2n, c: [1, 2], d: true, unused: 0 };
  assert.ok(s && bad);
});

test('descriptions are cached per shape: alternating shapes each get their own, correct text', () => {
  const small = () => save(versioned, { old: 1, v3only: 2, cfg: new Uint8Array([7, 7]), big: false }).desc;
  const big = () => save(versioned, { old: 1, v3only: 2, cfg: new Uint8Array([7, 7, 7, 7]), big: true }).desc;
  const first = [small(), big()];
  assert.match(first[0], /"cfg\[0\]", "type": "buffer", "size": 2/);
  assert.match(first[1], /"cfg\[1\]", "type": "buffer", "size": 4/);
  assert.deepEqual([small(), big(), small()], [first[0], first[1], first[0]]);
  // Counts taken from fields are part of the shape too.
  const two = save(arrays, { regs: [1, 2, 3], n: 2, dyn: [1, 2], pts: [{ x: 1, y: 2 }, { x: 3, y: 4 }], subs: [{ v: 1 }, { v: 1 }], one: [5], none: [] }).desc;
  const three = save(arrays, { regs: [1, 2, 3], n: 3, dyn: [1, 2, 3], pts: [{ x: 1, y: 2 }, { x: 3, y: 4 }], subs: [{ v: 1 }, { v: 2, w: 1 }], one: [5], none: [] }).desc;
  assert.match(two, /"name": "dyn", "array_len": 2,/);
  assert.match(three, /"name": "dyn", "array_len": 3,/);
  assert.doesNotMatch(two, /innersub\/extra/);
  assert.match(three, /innersub\/extra/);
});
