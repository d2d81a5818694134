// A chunked source that hands out `bytes` at most `chunk` bytes per read, so that reads fall anywhere in
// the records and every parse step that needs more bytes gets retried.
import { ChunkedSource } from '../../src/index.js';

export function chunkedReads(bytes: Uint8Array, chunk: number): ChunkedSource {
  let pos = 0;
  return new ChunkedSource(
    {
      async readInto(target) {
        const n = Math.min(target.length, chunk, bytes.length - pos);
        target.set(bytes.subarray(pos, pos + n));
        pos += n;
        return n;
      },
    },
    { chunkSize: chunk },
  );
}
