// The pieces under the server, tested as data: how input is cut into requests, and how replies are written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RequestSplitter } from '../../src/qmp/request-splitter.js';
import { parseQmpAddress } from '../../src/qmp/index.js';
import { formatQemuJson, formatSocketAddress } from '../../src/stream/index.js';

const bytes = (s: string) => new TextEncoder().encode(s);

/** Feeds `chunks` to a fresh splitter and lists what came out, errors as `!desc`. */
function split(chunks: string[], maxRequestBytes?: number): string[] {
  const splitter = new RequestSplitter(maxRequestBytes);
  return chunks.flatMap((c) => splitter.push(bytes(c)).map((item) => (item.kind === 'value' ? item.text : `!${item.desc}`)));
}

test('values are cut by bracket balance, not by newlines', () => {
  const cases: [string[], string[]][] = [
    [['{"a": 1}{"b": 2}'], ['{"a": 1}', '{"b": 2}']],
    [['  {"a":', ' [1, {"b": "}"}]}\n'], ['{"a": [1, {"b": "}"}]}']],
    [['{"s": "\\\\"}', '{"t": "\\""}'], ['{"s": "\\\\"}', '{"t": "\\""}']],
    [['[1]', ' "str"', ' 42', ' true{}'], ['[1]', '"str"', '42', 'true', '{}']],
    [[' } ] , :'], ['}', ']', ',', ':']],
    [['42'], []], // a number is not over until something follows it
    [['{"unfinished": '], []],
  ];
  for (const [chunks, values] of cases) assert.deepEqual(split(chunks), values, JSON.stringify(chunks));
});

test('every split point of a request gives the same request', () => {
  const text = '{"execute": "x", "id": "é{[\\"]}"}';
  const all = bytes(text);
  for (let cut = 0; cut <= all.length; cut++) {
    const splitter = new RequestSplitter();
    const out = [...splitter.push(all.subarray(0, cut)), ...splitter.push(all.subarray(cut))];
    assert.deepEqual(out, [{ kind: 'value', text }], `cut at ${cut}`);
  }
});

test('invalid UTF-8 is an error for that value only', () => {
  const splitter = new RequestSplitter();
  const out = splitter.push(Uint8Array.of(0x7b, 0x22, 0xff, 0x22, 0x7d, 0x7b, 0x7d));
  assert.deepEqual(out, [
    { kind: 'error', desc: 'JSON parse error, invalid UTF-8 sequence', fatal: false },
    { kind: 'value', text: '{}' },
  ]);
});

test('the size limit counts from the value\'s first byte and is fatal', () => {
  assert.deepEqual(split(['   {"a": "123"}'], 14), ['{"a": "123"}']);
  assert.deepEqual(split(['{"a": "1234567', '8"}', '{}'], 14), ['!JSON parse error, request exceeds the limit of 14 bytes']);
});

test('replies are written as QEMU writes them', () => {
  assert.equal(formatQemuJson({ return: {} }), '{"return": {}}');
  assert.equal(formatQemuJson({ a: [], b: [1, true, null], c: { d: 'x' }, e: undefined }), '{"a": [], "b": [1, true, null], "c": {"d": "x"}}');
  assert.equal(formatQemuJson('tab\t"q"\\ é\u0001\u007f😀/'), '"tab\\t\\"q\\"\\\\ \\u00E9\\u0001\\u007F\\uD83D\\uDE00/"');
  assert.equal(formatQemuJson([Number.NaN, 1.5, -3, 2n ** 64n]), '[null, 1.5, -3, 18446744073709551616]');
});

test('addresses parse and print back', () => {
  for (const text of ['unix:/tmp/q.sock', 'tcp:127.0.0.1:4444', 'tcp:[::1]:0', 'tcp:localhost:65535']) {
    assert.equal(formatSocketAddress(parseQmpAddress(text)), text);
  }
  assert.deepEqual(parseQmpAddress('tcp:[::1]:5'), { kind: 'tcp', host: '::1', port: 5 });
  for (const bad of ['unix:', 'tcp:host', 'tcp::1', 'tcp:h:x', 'tcp:h:70000', 'stdio']) assert.throws(() => parseQmpAddress(bad), { code: 'USAGE' }, bad);
});
