/**
 * COMPRESS pages (the `compress` capability, QEMU up to 9.0): each page deflated with zlib on its own, in
 * the zlib format (a header and an Adler-32 after the deflate data).
 */
import { inflateSync } from 'node:zlib';
import { StreamFormatError } from '../errors.js';

/** Inflates one page of `pageSize` bytes into `into`; throws StreamFormatError (at `offset`) when the data is not one. */
export function inflatePage(deflated: Uint8Array, into: Uint8Array, offset = 0): void {
  let page: Uint8Array;
  try {
    // One byte more than a page may hold, so that too long a page shows as one.
    page = inflateSync(deflated, { maxOutputLength: into.length + 1 });
  } catch (e) {
    throw new StreamFormatError(`compressed page does not inflate: ${(e as Error).message}`, { offset, path: '' });
  }
  if (page.length !== into.length) throw new StreamFormatError(`compressed page inflates to ${page.length} bytes, not ${into.length}`, { offset, path: '' });
  into.set(page);
}
