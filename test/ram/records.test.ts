// RAM section records: byte vectors, round trips, and the errors for records QEMU 7.2 would refuse.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync } from 'node:zlib';
import { ByteReader, ByteWriter, RamDecoder, RamEncoder, StreamFormatError, type RamSink } from '../../src/index.js';
import { applyXbzrle, inflatePage } from '../../src/ram/index.js';
import { chunkedReads } from '../support/sources.js';

const bytes = (...b: number[]) => new Uint8Array(b);
const be64 = (hi: number, lo: number) => [hi >>> 24, (hi >>> 16) & 255, (hi >>> 8) & 255, hi & 255, lo >>> 24, (lo >>> 16) & 255, (lo >>> 8) & 255, lo & 255];
const str8 = (s: string) => [s.length, ...Buffer.from(s)];

function record(): { sink: RamSink; log: string[] } {
  const log: string[] = [];
  return {
    log,
    sink: {
      blockList: (total, blocks) => log.push(`blocks ${total} ${blocks.map((b) => `${b.name}=${b.usedLength}${b.guestAddress !== undefined ? '@' + b.guestAddress : ''}`).join(',')}`),
      zeroPage: (b, o, fill, named) => log.push(`zero ${b} 0x${o.toString(16)} ${fill} ${named ? 'named' : 'cont'}`),
      page: (b, o, d, named) => log.push(`page ${b} 0x${o.toString(16)} ${d[0]}..${d[d.length - 1]} ${named ? 'named' : 'cont'}`),
      eos: () => log.push('eos'),
    },
  };
}

const pageOf = (v: number) => Array.from({ length: 4096 }, (_, i) => (i === 0 || i === 4095 ? v : 0));

const VECTOR = [
  ...be64(0, 0x3000 | 0x04), //      MEM_SIZE, total 0x3000
  ...str8('pc.ram'), ...be64(0, 0x2000), // block pc.ram, 8 KiB
  ...str8('pc.bios'), ...be64(0, 0x1000), // block pc.bios, 4 KiB
  ...be64(0, 0x0000 | 0x02), //      ZERO at 0, named
  ...str8('pc.ram'), 0x00, //        block name, fill byte
  ...be64(0, 0x1000 | 0x08 | 0x20), // PAGE at 0x1000, CONTINUE
  ...pageOf(7), //                    4096 bytes
  ...be64(0, 0x0000 | 0x08), //      PAGE at 0 of another block, named
  ...str8('pc.bios'),
  ...pageOf(9),
  ...be64(0, 0x10), //               EOS
];

test('RAM records decode in order, CONTINUE resolving to the last named block', () => {
  const { sink, log } = record();
  const done = new RamDecoder({ pageSize: 4096 }, sink).step(new ByteReader(new Uint8Array(VECTOR)));
  assert.equal(done, true);
  assert.deepEqual(log, [
    'blocks 12288 pc.ram=8192,pc.bios=4096',
    'zero pc.ram 0x0 0 named',
    'page pc.ram 0x1000 7..7 cont',
    'page pc.bios 0x0 9..9 named',
    'eos',
  ]);
});

test('RAM records re-encode byte for byte', () => {
  const w = new ByteWriter();
  const enc = new RamEncoder({ pageSize: 4096 }, w);
  new RamDecoder({ pageSize: 4096 }, enc).step(new ByteReader(new Uint8Array(VECTOR)));
  assert.deepEqual([...w.peek()], VECTOR);
});

test('x-ignore-shared adds each block guest address to the block list', () => {
  const { sink, log } = record();
  const v = [...be64(0, 0x1000 | 0x04), ...str8('a'), ...be64(0, 0x1000), ...be64(1, 0), ...be64(0, 0x10)];
  new RamDecoder({ pageSize: 4096, ignoreShared: true }, sink).step(new ByteReader(new Uint8Array(v)));
  assert.deepEqual(log, [`blocks 4096 a=4096@${2 ** 32}`, 'eos']);
});

test('a CONTINUE page before any named block is refused', () => {
  const v = bytes(...be64(0, 0x22), 0);
  assert.throws(
    () => new RamDecoder({ pageSize: 4096 }, {}).step(new ByteReader(v, 100)),
    (e: unknown) => e instanceof StreamFormatError && e.message === 'RAM page at 0x0 continues a block but no block was named yet (at byte offset 100)',
  );
});

test('HOOK and unknown flags are clear errors', () => {
  for (const [flags, text] of [
    [0x80, 'unsupported RAM record flags 0x80 (HOOK records are not supported) (at byte offset 0)'],
    [0x12, 'unsupported RAM record flags 0x12 (at byte offset 0)'],
    [0x240, 'unsupported RAM record flags 0x240 (at byte offset 0)'],
  ] as const) {
    assert.throws(
      () => new RamDecoder({ pageSize: 4096 }, {}).step(new ByteReader(bytes(...be64(0, flags)))),
      (e: unknown) => e instanceof StreamFormatError && e.message === text,
    );
  }
});

/** An XBZRLE delta (7.2's encoding, worked out by hand): bytes 1..2 become ab cd, bytes 4096-2.. become ef. */
const DELTA = [0x01, 0x02, 0xab, 0xcd, 0xfb, 0x1f, 0x01, 0xef];

test('XBZRLE, COMPRESS and MULTIFD_FLUSH records are read, handed on as they are, and re-encoded byte for byte', () => {
  const page = new Uint8Array(4096).map((_, i) => i & 0x7f);
  const deflated = [...deflateSync(page)];
  const v = [
    ...be64(0, 0x3000 | 0x04), ...str8('pc.ram'), ...be64(0, 0x3000),
    ...be64(0, 0x0000 | 0x40), ...str8('pc.ram'), 0x01, 0x00, DELTA.length, ...DELTA, // XBZRLE, named
    ...be64(0, 0x200), //                                                                 MULTIFD_FLUSH
    ...be64(0, 0x1000 | 0x100 | 0x20), ...[0, 0, deflated.length >> 8, deflated.length & 255], ...deflated, // COMPRESS, CONTINUE
    ...be64(0, 0x10),
  ];
  const log: string[] = [];
  const got = { delta: new Uint8Array(0), deflated: new Uint8Array(0) };
  new RamDecoder({ pageSize: 4096 }, {
    xbzrlePage: (b, o, d, named) => {
      got.delta = d.slice();
      log.push(`xbzrle ${b} 0x${o.toString(16)} ${d.length} ${named ? 'named' : 'cont'}`);
    },
    compressedPage: (b, o, d, named) => {
      got.deflated = d.slice();
      log.push(`compressed ${b} 0x${o.toString(16)} ${named ? 'named' : 'cont'}`);
    },
    multifdFlush: () => log.push('flush'),
  }).step(new ByteReader(new Uint8Array(v)));
  assert.deepEqual(log, ['xbzrle pc.ram 0x0 8 named', 'flush', 'compressed pc.ram 0x1000 cont']);
  // The page contents they stand for.
  const old = new Uint8Array(4096).fill(0x11);
  applyXbzrle(old, got.delta);
  assert.deepEqual([...old.subarray(0, 4)], [0x11, 0xab, 0xcd, 0x11]);
  assert.equal(old[4096 - 2], 0xef);
  assert.equal(old.filter((x) => x !== 0x11).length, 3);
  const inflated = new Uint8Array(4096);
  inflatePage(got.deflated, inflated);
  assert.deepEqual(inflated, page);
  // A rewrite writes the same records again.
  const w = new ByteWriter();
  new RamDecoder({ pageSize: 4096 }, new RamEncoder({ pageSize: 4096 }, w)).step(new ByteReader(new Uint8Array(v)));
  assert.deepEqual([...w.peek()], v);
});

test('malformed XBZRLE and COMPRESS pages are clear errors', () => {
  const xbzrle = (encoding: number, delta: number[]) => bytes(...be64(0, 0x40), ...str8('a'), encoding, delta.length >> 8, delta.length & 255, ...delta);
  assert.throws(() => new RamDecoder({ pageSize: 4096 }, {}).step(new ByteReader(xbzrle(2, DELTA))), /XBZRLE page has encoding 0x2, expected 0x01 \(at byte offset 10\)/);
  assert.throws(() => new RamDecoder({ pageSize: 4096 }, {}).step(new ByteReader(xbzrle(1, new Array(4097).fill(1)))), /XBZRLE page of 4097 bytes is longer than 4096/);
  const compressed = bytes(...be64(0, 0x100), ...str8('a'), 0, 0, 0x20, 0);
  assert.throws(() => new RamDecoder({ pageSize: 4096 }, {}).step(new ByteReader(compressed)), /compressed page of 8192 bytes is longer than 4110/);
  const page = new Uint8Array(4096);
  for (const [delta, why] of [
    [[0x05], /a run length is cut/],
    [[0x00, 0x00, 0x00], /an empty changed run/],
    [[0x01, 0x01, 0xaa, 0x00, 0x01, 0xbb], /an empty unchanged run after the first/],
    [[0x80, 0x80, 0x01], /more than two bytes/],
    [[0xff, 0x1f, 0x02, 0xaa, 0xbb], /goes past the page/],
  ] as const) {
    assert.throws(() => applyXbzrle(page, new Uint8Array(delta)), (e: unknown) => e instanceof StreamFormatError && why.test(e.message), JSON.stringify(delta));
  }
  assert.throws(() => inflatePage(new Uint8Array([1, 2, 3]), page), /compressed page does not inflate/);
  assert.throws(() => inflatePage(deflateSync(new Uint8Array(100)), page), /inflates to 100 bytes, not 4096/);
});

test('a block list whose lengths overshoot the announced total is refused', () => {
  const v = bytes(...be64(0, 0x1000 | 0x04), ...str8('a'), ...be64(0, 0x2000));
  assert.throws(() => new RamDecoder({ pageSize: 4096 }, {}).step(new ByteReader(v)), /add up to 8192, but the block list announced 4096/);
});

test('a block list claiming terabytes allocates nothing and ends as truncation', () => {
  const v = bytes(...be64(0x100, 0x04), ...str8('a'));
  assert.throws(() => new RamDecoder({ pageSize: 4096 }, {}).step(new ByteReader(v)), /stream ends after 0 of 8 bytes/);
});

/** A named page, then runs of CONTINUE zero pages and pages, a named zero page of another block, EOS. */
function mixedRecords(): number[] {
  const v: number[] = [...be64(0, 0x08), ...str8('pc.ram'), ...pageOf(1)];
  for (let i = 1; i < 40; i++) {
    if (i % 7 === 0) v.push(...be64(0, (i * 0x1000) | 0x08 | 0x20), ...pageOf(i));
    else v.push(...be64(0, (i * 0x1000) | 0x02 | 0x20), 0);
  }
  v.push(...be64(0, 0x02), ...str8('vga.vram'), 0, ...be64(0, 0x1000 | 0x08 | 0x20), ...pageOf(99), ...be64(0, 0x10));
  return v;
}

test('records nobody listens to are skipped, and CONTINUE still resolves to the right block', () => {
  const v = new Uint8Array(mixedRecords());
  // Pages reported, zero pages not listened to: the skipped zero pages keep the block for the pages after them.
  const pages: string[] = [];
  const r = new ByteReader(v);
  assert.equal(new RamDecoder({ pageSize: 4096 }, { page: (b, o, d) => pages.push(`${b} 0x${o.toString(16)} ${d[0]}`) }).step(r), true);
  assert.equal(r.pos, v.length);
  assert.deepEqual(pages, ['pc.ram 0x0 1', 'pc.ram 0x7000 7', 'pc.ram 0xe000 14', 'pc.ram 0x15000 21', 'pc.ram 0x1c000 28', 'pc.ram 0x23000 35', 'vga.vram 0x1000 99']);
  // And the other way round.
  const zeros: string[] = [];
  new RamDecoder({ pageSize: 4096 }, { zeroPage: (b, o) => zeros.push(`${b} 0x${o.toString(16)}`), eos: () => zeros.push('eos') }).step(new ByteReader(v));
  assert.equal(zeros.length, 40 - 6 + 2);
  assert.deepEqual(zeros.slice(-3), ['pc.ram 0x27000', 'vga.vram 0x0', 'eos']);
});

test('a window ending inside a run of skipped records resumes where it stopped, at every cut', async () => {
  const v = new Uint8Array(mixedRecords());
  for (const chunk of [9, 100, 4099, 5000]) {
    const src = chunkedReads(v, chunk);
    const pages: number[] = [];
    const dec = new RamDecoder({ pageSize: 4096 }, { page: (_b, o) => pages.push(o / 0x1000) });
    while (!(await src.step(dec.need, (r) => dec.step(r))));
    assert.deepEqual(pages, [0, 7, 14, 21, 28, 35, 1], `chunk ${chunk}`);
    assert.equal(await src.isAtEnd(), true);
  }
});

test('a skipped record with an offset beyond 2^53 is still refused', () => {
  const v = bytes(...be64(0, 0x02), ...str8('pc.ram'), 0, ...be64(0x00200000, 0x22), 0);
  assert.throws(() => new RamDecoder({ pageSize: 4096 }, {}).step(new ByteReader(v)), /64-bit value 0x20000000000022 is too large/);
});

test('after POSTCOPY_ADVISE a block on huge pages carries its page size after its length', () => {
  // Block "huge" of 2 MiB pages (its page size follows its length), then "pc.ram" without one.
  const v = [
    ...be64(0, 0x600000 | 0x04),
    ...str8('huge'), ...be64(0, 0x400000), ...be64(0, 0x200000),
    ...str8('pc.ram'), ...be64(0, 0x200000),
    ...be64(0, 0x10),
  ];
  const { sink, log } = record();
  new RamDecoder({ pageSize: 4096, hugePageSizes: [0x200000] }, { ...sink, block: (b) => log.push(`entry ${b.name} ${b.pageSize ?? '-'}`) }).step(new ByteReader(new Uint8Array(v)));
  assert.deepEqual(log, ['entry huge 2097152', 'entry pc.ram -', 'blocks 6291456 huge=4194304,pc.ram=2097152', 'eos']);
  const w = new ByteWriter();
  new RamDecoder({ pageSize: 4096, hugePageSizes: [0x200000] }, new RamEncoder({ pageSize: 4096 }, w)).step(new ByteReader(new Uint8Array(v)));
  assert.deepEqual([...w.peek()], v);
});
