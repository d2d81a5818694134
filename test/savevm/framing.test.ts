// The stream's framing on synthetic streams: configuration subsections, commands, footers present or
// absent, and the exact errors for what QEMU 7.2 would refuse.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ByteWriter,
  ChunkedSource,
  StreamFormatError,
  walkStream,
  writeCommand,
  writeConfiguration,
  writeEof,
  writeFooter,
  writeHeader,
  writeSectionHeader,
  writeVmdesc,
  QemuJsonWriter,
  type ConfigurationRecord,
  type StreamVisitor,
} from '../../src/index.js';
import { decodeCommand, describeCommand } from '../../src/savevm/index.js';

/** A visitor whose sections are bodies of `n` raw bytes, where n is the section's version. */
function recorder(log: string[]): StreamVisitor {
  return {
    configuration: (c) => log.push(`config ${c.machineName} ${JSON.stringify(c.subsections.map((s) => s.name))}`),
    command: (c) => log.push(`command ${c.command} [${[...c.payload].join(',')}]`),
    section: (ctx) => ({
      need: ctx.version,
      step(r) {
        r.skip(ctx.version);
        log.push(`${ctx.header.kind} ${ctx.label}`);
        return true;
      },
    }),
    sectionDone: (ctx, _end, footer) => log.push(`done ${ctx.sectionId} footer=${footer}`),
    eof: (o) => log.push(`eof @${o}`),
    vmdesc: (json) => log.push(`vmdesc ${new TextDecoder().decode(json)}`),
  };
}

function stream(build: (w: ByteWriter) => void): Uint8Array {
  const w = new ByteWriter();
  build(w);
  return w.peek().slice();
}

const CONFIG: ConfigurationRecord = {
  machineName: 'pc-q35-7.2',
  subsections: [
    { name: 'configuration/target-page-bits', version: 1, targetPageBits: 12 },
    { name: 'configuration/capabilities', version: 1, capabilities: ['x-ignore-shared'] },
    { name: 'configuration/uuid', version: 1, uuid: new Uint8Array(16).fill(0x12) },
  ],
};

test('a stream with configuration subsections, commands, START/PART/END/FULL, footers and a trailer', async () => {
  const bytes = stream((w) => {
    writeHeader(w);
    writeConfiguration(w, CONFIG);
    writeCommand(w, { command: 2, payload: new Uint8Array([0, 0, 0, 1]) }); // PING 1
    writeSectionHeader(w, { kind: 'start', offset: 0, sectionId: 7, idstr: 'it', instanceId: 0, version: 2 });
    w.putFill(0, 2);
    writeFooter(w, 7);
    writeSectionHeader(w, { kind: 'part', offset: 0, sectionId: 7 });
    w.putFill(0, 2);
    writeFooter(w, 7);
    writeSectionHeader(w, { kind: 'full', offset: 0, sectionId: 9, idstr: 'dev', instanceId: 1, version: 3 });
    w.putFill(0, 3);
    writeFooter(w, 9);
    writeEof(w);
    writeVmdesc(w, new TextEncoder().encode('{}'));
  });
  const log: string[] = [];
  await walkStream(ChunkedSource.fromBytes(bytes), recorder(log));
  assert.deepEqual(log, [
    'config pc-q35-7.2 ["configuration/target-page-bits","configuration/capabilities","configuration/uuid"]',
    'command 2 [0,0,0,1]',
    'start it (7)',
    'done 7 footer=true',
    'part it (7)',
    'done 7 footer=true',
    'full dev (9)',
    'done 9 footer=true',
    `eof @${bytes.length - 8}`,
    'vmdesc {}',
  ]);
});

test('the configuration record described as QEMU 8.2 and later describe it, each subsection as written', () => {
  const record: ConfigurationRecord = { ...CONFIG, subsections: [CONFIG.subsections[0], { name: 'configuration/capabilities', version: 1, capabilities: ['x-ignore-shared', 'validate-uuid'] }, CONFIG.subsections[2]] };
  const desc = new QemuJsonWriter();
  desc.startObject();
  const described = stream((w) => writeConfiguration(w, record, desc));
  desc.endObject();
  assert.deepEqual(described, stream((w) => writeConfiguration(w, record)), 'the same bytes with and without the description');
  assert.equal(
    desc.toString(),
    '{"vmsd_name": "configuration", "version": 1, "fields": [{"name": "len", "type": "uint32", "size": 4}, {"name": "name", "type": "buffer", "size": 10}], ' +
      '"subsections": [{"vmsd_name": "configuration/target-page-bits", "version": 1, "fields": [{"name": "target_page_bits", "type": "uint32", "size": 4}]}, ' +
      // A compressed array of capabilities, described by the first one: a length byte and 15 letters.
      '{"vmsd_name": "configuration/capabilities", "version": 1, "fields": [{"name": "caps_count", "type": "uint32", "size": 4}, ' +
      '{"name": "capabilities", "array_len": 2, "type": "capability", "size": 16}]}, ' +
      '{"vmsd_name": "configuration/uuid", "version": 1, "fields": [{"name": "uuid.data", "array_len": 16, "type": "uint8", "size": 1}]}]}',
  );
  const bare = new QemuJsonWriter();
  bare.startObject();
  writeConfiguration(new ByteWriter(), { machineName: 'pc-q35-10.0', subsections: [] }, bare);
  bare.endObject();
  assert.equal(bare.toString(), '{"vmsd_name": "configuration", "version": 1, "fields": [{"name": "len", "type": "uint32", "size": 4}, {"name": "name", "type": "buffer", "size": 11}]}');
});

test('footers may be absent throughout (send-section-footer=off), and the trailer too', async () => {
  const bytes = stream((w) => {
    writeHeader(w);
    writeSectionHeader(w, { kind: 'full', offset: 0, sectionId: 1, idstr: 'a', instanceId: 0, version: 1 });
    w.putByte(0x55);
    writeEof(w);
  });
  const log: string[] = [];
  await walkStream(ChunkedSource.fromBytes(bytes), recorder(log));
  assert.deepEqual(log, ['full a (1)', 'done 1 footer=false', 'eof @24']);
});

async function walkError(build: (w: ByteWriter) => void): Promise<string> {
  try {
    await walkStream(ChunkedSource.fromBytes(stream(build)), recorder([]));
  } catch (e) {
    assert.ok(e instanceof StreamFormatError, String(e));
    return e.message;
  }
  return assert.fail('no error');
}

test('framing errors name what was expected and where', async () => {
  assert.equal(
    await walkError((w) => {
      w.putBe32(0x5145564d);
      w.putBe32(2);
    }),
    'stream version 2 is not supported, expected 3 (at byte offset 4)',
  );
  assert.equal(
    await walkError((w) => {
      writeHeader(w);
      writeSectionHeader(w, { kind: 'full', offset: 0, sectionId: 4, idstr: 'a', instanceId: 0, version: 0 });
      writeFooter(w, 5);
    }),
    'a (4): section footer closes section 5, expected 4 (at byte offset 23)',
  );
  assert.equal(
    await walkError((w) => {
      writeHeader(w);
      writeSectionHeader(w, { kind: 'full', offset: 0, sectionId: 4, idstr: 'a', instanceId: 0, version: 0 });
      writeFooter(w, 4);
      writeSectionHeader(w, { kind: 'full', offset: 0, sectionId: 6, idstr: 'b', instanceId: 0, version: 0 });
      writeEof(w);
    }),
    'b (6): missing section footer (at byte offset 43)',
  );
  assert.equal(
    await walkError((w) => {
      writeHeader(w);
      writeSectionHeader(w, { kind: 'part', offset: 0, sectionId: 3 });
    }),
    'section PART for section id 3, which no START announced (at byte offset 8)',
  );
  assert.equal(
    await walkError((w) => {
      writeHeader(w);
      w.putByte(0x08);
      w.putBe16(2);
      w.putBe16(3);
      w.putFill(0, 3);
    }),
    'command PING has length 3, expected 4 (at byte offset 8)',
  );
  assert.equal(
    await walkError((w) => {
      writeHeader(w);
      writeConfiguration(w, { machineName: 'virt-7.2', subsections: [] });
      w.putByte(0x05);
      w.putCountedString('configuration/unheard-of');
      w.putBe32(1);
    }),
    'configuration: unknown configuration subsection "configuration/unheard-of" (at byte offset 21)',
  );
  assert.equal(
    await walkError((w) => {
      writeHeader(w);
      writeEof(w);
      writeVmdesc(w, new TextEncoder().encode('{}'));
      w.putByte(0);
    }),
    'unexpected bytes after the VMDESCRIPTION trailer (at byte offset 16)',
  );
});

test('commands are described by name with what their payload says', () => {
  const cmd = (command: number, ...payload: number[]) => describeCommand({ command, payload: new Uint8Array(payload) });
  assert.equal(cmd(1), 'OPEN_RETURN_PATH');
  assert.equal(cmd(2, 0, 0, 0, 7), 'PING 7');
  assert.equal(cmd(3, 0, 0, 0, 0, 0, 0x20, 0x10, 0, 0, 0, 0, 0, 0, 0, 0x10, 0), 'POSTCOPY_ADVISE page sizes 0x201000, target page 0x1000');
  assert.equal(cmd(3), 'POSTCOPY_ADVISE');
  assert.equal(cmd(6, 0, 2, 0x61, 0x62, 0, ...new Array(32).fill(1)), 'POSTCOPY_RAM_DISCARD ab 2 range(s)');
  assert.equal(cmd(7, 0, 0, 1, 0), 'PACKAGED 256 bytes');
  assert.equal(cmd(10, 3, 0x72, 0x61, 0x6d), 'RECV_BITMAP ram');
  assert.equal(cmd(11), 'SWITCHOVER_START');
  assert.equal(cmd(99, 1, 2), 'command 99');
});

test("commands' payloads decode to their fields", () => {
  const cmd = (command: number, ...payload: number[]) => decodeCommand({ command, payload: new Uint8Array(payload) });
  const be64 = (n: number) => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(n));
    return [...b];
  };
  assert.deepEqual(cmd(2, 0, 0, 1, 2), { number: 2, name: 'PING', value: 258 });
  assert.deepEqual(cmd(3, ...be64(0x201000), ...be64(0x1000)), { number: 3, name: 'POSTCOPY_ADVISE', pageSizes: 0x201000, targetPageSize: 0x1000 });
  assert.deepEqual(cmd(3), { number: 3, name: 'POSTCOPY_ADVISE' });
  assert.deepEqual(cmd(6, 0, 2, 0x61, 0x62, 0, ...be64(0x1000), ...be64(0x2000), ...be64(2 ** 40), ...be64(0x1000)), {
    number: 6,
    name: 'POSTCOPY_RAM_DISCARD',
    block: 'ab',
    ranges: [
      { start: 0x1000, length: 0x2000 },
      { start: 2 ** 40, length: 0x1000 },
    ],
  });
  // A block name longer than the payload reads as "?", with no ranges.
  assert.deepEqual(cmd(6, 0, 9, 0x61), { number: 6, name: 'POSTCOPY_RAM_DISCARD', block: '?', ranges: [] });
  assert.deepEqual(cmd(7, 0, 1, 0, 0), { number: 7, name: 'PACKAGED', length: 65536 });
  assert.deepEqual(cmd(10, 1, 0x78), { number: 10, name: 'RECV_BITMAP', block: 'x' });
  assert.deepEqual(cmd(9), { number: 9, name: 'POSTCOPY_RESUME' });
  assert.deepEqual(cmd(42, 1, 2, 3), { number: 42, name: null, length: 3 });
});
