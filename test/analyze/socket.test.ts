// A stream arriving over a socket in whatever pieces TCP delivers decodes like the file it came from.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { ChunkedSource, pullFromIterable } from '../../src/index.js';
import { analyzeStream, formatAnalysis, openStreamFile, requireVmdesc } from '../../src/analyze/index.js';
import { fixtures } from '../support/fixtures.js';

test('a fixture sent over loopback TCP in small writes decodes like the file', async () => {
  const fx = fixtures().find((f) => f.name === 'q35-iommu-3rp-switch-bios-live');
  assert.ok(fx);
  const bytes = fs.readFileSync(fx.stream);
  const file = openStreamFile(fx.stream);
  const { vmdesc } = requireVmdesc(file);
  const expected = formatAnalysis(await analyzeStream(file.source(), vmdesc));
  file.close();

  const server = net.createServer((sock) => {
    // Odd-sized writes so records straddle packet boundaries.
    for (let i = 0; i < bytes.length; i += 7001) sock.write(bytes.subarray(i, i + 7001));
    sock.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as net.AddressInfo;
    const sock = net.connect(port, '127.0.0.1');
    const src = new ChunkedSource(pullFromIterable(sock), { chunkSize: 64 * 1024 });
    assert.equal(formatAnalysis(await analyzeStream(src, vmdesc)), expected);
    sock.destroy();
  } finally {
    server.close();
  }
});
