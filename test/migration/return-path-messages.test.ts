// The return path's messages, byte by byte, and the source's end of it: waiting for PONG and SHUT, and
// every way the wait ends otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteReader, type PullSource } from '../../src/stream/index.js';
import { encodePong, encodeShut, readReturnPathMessage, SourceReturnPath } from '../../src/migration/index.js';

const hex = (s: string) => new Uint8Array(Buffer.from(s.replace(/ /g, ''), 'hex'));

test('SHUT and PONG in QEMU\'s framing: be16 type, be16 length, be32 value', () => {
  assert.deepEqual(encodeShut(0), hex('0001 0004 00000000'));
  assert.deepEqual(encodeShut(1), hex('0001 0004 00000001'));
  assert.deepEqual(encodePong(0xdeadbeef), hex('0002 0004 deadbeef'));
  assert.deepEqual(readReturnPathMessage(new ByteReader(hex('0002 0004 00000002'))), { type: 'pong', value: 2 });
  assert.deepEqual(readReturnPathMessage(new ByteReader(hex('0001 0004 00000000'))), { type: 'shut', status: 0 });
  // A page request (postcopy's REQ_PAGES, type 4), and a SHUT of the wrong length.
  assert.throws(() => readReturnPathMessage(new ByteReader(hex('0004 000c 0000000000001000 00001000'))), /^IoError: return path: unexpected message type 4 with length 12$/);
  assert.throws(() => readReturnPathMessage(new ByteReader(hex('0001 0002 0000'))), /^IoError: return path: unexpected message type 1 with length 2$/);
});

/** A connection whose bytes the test hands over one chunk at a time; null ends it. */
function connection(): { source: PullSource; send(bytes: Uint8Array | null): void } {
  const queue: (Uint8Array | null)[] = [];
  let wake: (() => void) | null = null;
  return {
    source: {
      async readInto(target) {
        while (queue.length === 0) await new Promise<void>((resolve) => (wake = resolve));
        const next = queue[0];
        if (next === null) return 0;
        const n = Math.min(next.length, target.length);
        target.set(next.subarray(0, n));
        if (n === next.length) queue.shift();
        else queue[0] = next.subarray(n);
        return n;
      },
    },
    send(bytes) {
      queue.push(bytes);
      wake?.();
    },
  };
}

test('the source waits for PONG 2, then SHUT 0, from bytes that come split anywhere', async () => {
  const c = connection();
  const broken: Error[] = [];
  const rp = new SourceReturnPath(c.source, (e) => broken.push(e));
  const pong = rp.waitForPong(2, 5000);
  const bytes = new Uint8Array([...encodePong(1), ...encodePong(2), ...encodeShut(0)]);
  for (let i = 0; i < bytes.length; i += 3) c.send(bytes.subarray(i, i + 3));
  await pong;
  assert.equal(await rp.waitForShut(5000), 0);
  assert.deepEqual(broken, []);
});

test('a wait ends with the first failure: SHUT 1, the connection closing, nothing in time', async () => {
  {
    const c = connection();
    const broken: Error[] = [];
    const rp = new SourceReturnPath(c.source, (e) => broken.push(e));
    const pong = rp.waitForPong(2, 5000);
    c.send(encodeShut(1));
    await assert.rejects(pong, /^IoError: the destination sent SHUT 1 instead of PONG 2$/);
    assert.deepEqual(
      broken.map((e) => e.message),
      ['the destination failed to load the stream (SHUT 1)'],
    );
    assert.equal(rp.shut, 1);
  }
  {
    const c = connection();
    const rp = new SourceReturnPath(c.source, () => undefined);
    c.send(encodePong(1).subarray(0, 5));
    c.send(null);
    await assert.rejects(rp.waitForPong(2, 5000), /^IoError: the return path closed in the middle of a message$/);
  }
  {
    const c = connection();
    const rp = new SourceReturnPath(c.source, () => undefined);
    c.send(encodePong(2));
    c.send(null);
    await rp.waitForPong(2, 5000);
    await assert.rejects(rp.waitForShut(5000), /^IoError: the destination closed the return path$/);
  }
  {
    const c = connection();
    const broken: Error[] = [];
    const rp = new SourceReturnPath(c.source, (e) => broken.push(e));
    await assert.rejects(rp.waitForPong(2, 20), /^IoError: the destination sent no PONG 2 within 20 ms$/);
    assert.equal(broken.length, 1);
    // Every later wait fails with it.
    await assert.rejects(rp.waitForShut(5000), /^IoError: the destination sent no PONG 2 within 20 ms$/);
  }
});
