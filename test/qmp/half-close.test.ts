// A client that sends its requests and then shuts its side down (`nc -N`, `socat -t`) still gets every
// reply whole, even while the VM emits events (found by the QMP fuzzer, test/fuzz: an event written to
// the ending socket destroyed it, and the reply still queued was cut short).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startQmpServer } from '../../src/qmp/index.js';
import { FakeVm } from './fake-vm.js';
import { tempUnixAddress } from './raw-socket.js';

test('replies to a client that half-closed are whole while events are emitted', async () => {
  const vm = new FakeVm();
  const { address, path } = await tempUnixAddress();
  const server = await startQmpServer(address, vm);
  const id = 'x'.repeat(500_000);
  const client = async (): Promise<string> => {
    const socket = net.connect({ path });
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (t: string) => (received += t));
    socket.on('error', () => {});
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write('{"execute": "qmp_capabilities"}');
    await new Promise((resolve) => setTimeout(resolve, 20));
    socket.end(`{"execute": "query-status", "id": "${id}"}`);
    await closed;
    return received;
  };
  const events = setInterval(() => vm.emit('STOP'), 1);
  try {
    const received = await Promise.all(Array.from({ length: 20 }, client));
    for (const text of received) {
      const lines = text.split('\r\n');
      assert.equal(lines.at(-1), '', 'the last line is whole');
      const reply = lines.filter((l) => l.startsWith('{"return": {"status"'));
      assert.deepEqual(
        reply.map((l) => l.length),
        [`{"return": {"status": "running", "singlestep": false, "running": true}, "id": "${id}"}`.length],
      );
    }
  } finally {
    clearInterval(events);
    await server.close();
  }
});
