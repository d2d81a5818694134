/**
 * XBZRLE pages (migration/xbzrle.c): a page sent as its difference from the copy the destination
 * already has. The delta is a run of pairs:
 *
 *   delta := ( uleb128 unchanged  uleb128 changed  byte[changed] )*
 *
 * `unchanged` bytes keep their value (only the first pair may have none), then `changed` bytes are
 * replaced by the ones that follow (at least one). Each count is a ULEB128 of one or two bytes (below
 * 2^14). The result may end before the page does; the rest is unchanged.
 */
import { StreamFormatError } from '../errors.js';

/** Applies `delta` to `page` in place; throws StreamFormatError (at `offset`) when the delta is malformed. */
export function applyXbzrle(page: Uint8Array, delta: Uint8Array, offset = 0): void {
  const bad = (why: string): never => {
    throw new StreamFormatError(`XBZRLE page: ${why}`, { offset, path: '' });
  };
  let i = 0;
  let d = 0;
  /** A one- or two-byte ULEB128 at delta[i]. */
  const count = (): number => {
    if (delta.length - i < 2) bad(`a run length is cut at byte ${i} of ${delta.length}`);
    const lo = delta[i++];
    if (lo < 0x80) return lo;
    const hi = delta[i++];
    if (hi >= 0x80) bad('a run length takes more than two bytes');
    return (lo & 0x7f) | (hi << 7);
  };
  while (i < delta.length) {
    const at = i;
    const unchanged = count();
    if (at > 0 && unchanged === 0) bad('an empty unchanged run after the first');
    d += unchanged;
    if (d > page.length) bad(`the unchanged run ends at byte ${d}, past the ${page.length}-byte page`);
    const changed = count();
    if (changed === 0) bad('an empty changed run');
    if (d + changed > page.length || i + changed > delta.length) bad(`a changed run of ${changed} bytes goes past the page or the delta`);
    page.set(delta.subarray(i, i + changed), d);
    d += changed;
    i += changed;
  }
}
