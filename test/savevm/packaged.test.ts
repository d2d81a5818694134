// A PACKAGED command wraps a stream inside the stream (postcopy sends LISTEN, the devices and RUN that
// way). The walker reads its records like the others, knows where it ends, and rejects a package that
// ends inside a record or holds what QEMU's destination would refuse in one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ByteWriter,
  ChunkedSource,
  MigCommand,
  RamEncoder,
  StreamFormatError,
  writeCommand,
  writeEof,
  writeFooter,
  writeHeader,
  writeSectionHeader,
} from '../../src/index.js';
import { formatSectionTable, listRecords, rewriteStream } from '../../src/analyze/index.js';

const RAM = { idstr: 'ram', instanceId: 0, version: 4 } as const;

function be32(n: number): Uint8Array {
  return new Uint8Array([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
}

/** The package's records: LISTEN, a RAM part with one zero page, PING 3, RUN. `extra` goes last inside it. */
function packageBody(extra: (w: ByteWriter) => void = () => {}): Uint8Array {
  const w = new ByteWriter();
  const enc = new RamEncoder({ pageSize: 4096 }, w);
  writeCommand(w, { command: MigCommand.POSTCOPY_LISTEN, payload: new Uint8Array() });
  writeSectionHeader(w, { kind: 'part', offset: 0, sectionId: 1 });
  enc.zeroPage('pc.ram', 0x1000, 0, true);
  enc.eos();
  writeFooter(w, 1);
  writeCommand(w, { command: MigCommand.PING, payload: be32(3) });
  writeCommand(w, { command: MigCommand.POSTCOPY_RUN, payload: new Uint8Array() });
  extra(w);
  return w.peek().slice();
}

/** A stream: RAM's START, the package (announced as `length` bytes, default its own), RAM's END, EOF. */
function streamWith(body: Uint8Array, length = body.length): Uint8Array {
  const w = new ByteWriter();
  const enc = new RamEncoder({ pageSize: 4096 }, w);
  writeHeader(w);
  writeSectionHeader(w, { kind: 'start', offset: 0, sectionId: 1, ...RAM });
  enc.memSize(0x10000);
  enc.block({ name: 'pc.ram', usedLength: 0x10000 });
  enc.eos();
  writeFooter(w, 1);
  writeCommand(w, { command: MigCommand.PACKAGED, payload: be32(length) });
  w.putBuffer(body);
  writeSectionHeader(w, { kind: 'end', offset: 0, sectionId: 1 });
  enc.eos();
  writeFooter(w, 1);
  writeEof(w);
  return w.peek().slice();
}

/** Where the stream the PACKAGED command announces begins: just past the command. */
function packageStart(bytes: Uint8Array): number {
  const command = Buffer.from([0x08, 0x00, MigCommand.PACKAGED, 0x00, 0x04]);
  return Buffer.from(bytes).indexOf(command) + command.length + 4;
}

async function formatError(bytes: Uint8Array): Promise<StreamFormatError> {
  const e = await listRecords(ChunkedSource.fromBytes(bytes), null).then(
    () => null,
    (err: unknown) => err,
  );
  assert.ok(e instanceof StreamFormatError, `expected a StreamFormatError, got ${String(e)}`);
  return e;
}

test('the records a PACKAGED command wraps are listed as inside it, and the stream rewrites byte for byte', async () => {
  const body = packageBody();
  const bytes = streamWith(body);
  const rows = await listRecords(ChunkedSource.fromBytes(bytes), null);
  const packagedAt = rows.findIndex((r) => r.type === 'command' && r.name === `PACKAGED ${body.length} bytes`);
  assert.ok(packagedAt > 0, JSON.stringify(rows));
  const from = rows[packagedAt].offset + rows[packagedAt].size;
  const inside = rows.filter((r) => r.packaged === true);
  assert.deepEqual(
    inside.map((r) => ('sectionId' in r ? `${r.type} ${r.sectionId}` : r.name)),
    ['POSTCOPY_LISTEN', 'part 1', 'PING 3', 'POSTCOPY_RUN'],
  );
  assert.equal(inside[0].offset, from);
  const last = inside[inside.length - 1];
  assert.equal(last.offset + last.size, from + body.length, 'the package ends where its length says');
  assert.deepEqual(
    rows.filter((r) => r.packaged !== true).map((r) => r.type),
    ['start', 'command', 'end', 'eof'],
  );
  // In the table, the records inside are indented under the PACKAGED line's name (line i + 1 is row i).
  const table = formatSectionTable(rows).split('\n');
  const nameColumn = (i: number) => {
    const r = rows[i];
    return table[i + 1].indexOf('sectionId' in r ? ` ${r.idstr} ` : ` ${r.name ?? ''}`) + 1;
  };
  const outer = nameColumn(packagedAt);
  rows.forEach((r, i) => r.type !== 'eof' && assert.equal(nameColumn(i), r.packaged ? outer + 2 : outer, `${table[i + 1]}\n${table.join('\n')}`));

  const chunks: Uint8Array[] = [];
  await rewriteStream(ChunkedSource.fromBytes(bytes), { page_size: 4096, devices: [] }, (c) => chunks.push(c.slice()));
  assert.deepEqual(Buffer.concat(chunks), Buffer.from(bytes));
});

test('a package whose length ends inside a record is a format error at its end', async () => {
  const body = packageBody();
  const bytes = streamWith(body, body.length - 1);
  const e = await formatError(bytes);
  assert.match(e.message, /runs past the end of its PACKAGED stream/);
  assert.equal(e.offset, packageStart(bytes) + body.length - 1);
});

test('EOF, a configuration record or another PACKAGED inside a package is a format error', async () => {
  const cases: { name: string; extra: (w: ByteWriter) => void; message: RegExp }[] = [
    { name: 'EOF', extra: (w) => writeEof(w), message: /EOF inside a PACKAGED stream/ },
    {
      name: 'configuration',
      extra: (w) => {
        w.putByte(0x07);
        w.putBe32(2);
        w.putBuffer(new TextEncoder().encode('pc'));
      },
      message: /configuration record inside a PACKAGED stream/,
    },
    {
      name: 'PACKAGED',
      extra: (w) => writeCommand(w, { command: MigCommand.PACKAGED, payload: be32(0) }),
      message: /PACKAGED command inside a PACKAGED stream/,
    },
  ];
  for (const c of cases) {
    const body = packageBody(c.extra);
    const bytes = streamWith(body);
    const e = await formatError(bytes);
    assert.match(e.message, c.message, c.name);
    assert.equal(e.offset, packageStart(bytes) + packageBody().length, `${c.name}: the offset of the record after RUN`);
  }
});

test('a configuration record anywhere but first is a format error', async () => {
  const w = new ByteWriter();
  writeHeader(w);
  writeCommand(w, { command: MigCommand.PING, payload: be32(1) });
  const at = w.peek().length;
  w.putByte(0x07);
  w.putBe32(2);
  w.putBuffer(new TextEncoder().encode('pc'));
  writeEof(w);
  const e = await formatError(w.peek().slice());
  assert.match(e.message, /configuration record after the first record/);
  assert.equal(e.offset, at);
});

test('the table formats any number of records (a real dirty-bitmap stream has over 128,000)', () => {
  const rows = Array.from({ length: 200_000 }, (_, i) => ({ offset: 8 + i, type: 'eof' as const, size: 1 }));
  const lines = formatSectionTable(rows).trimEnd().split('\n');
  assert.equal(lines.length, rows.length + 1);
  assert.equal(lines[lines.length - 1].trim().split(/\s+/)[0], String(8 + rows.length - 1));
});
