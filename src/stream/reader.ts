/**
 * Big-endian reader over one Uint8Array, mirroring QEMUFile's get* calls. One DataView, built once;
 * every read is bounds-checked first and reports the absolute stream offset when it runs out.
 */
import { StreamFormatError, StreamTruncatedError } from '../errors.js';

const TEXT = new TextDecoder('utf-8', { fatal: false });
const LATIN1 = new TextDecoder('latin1');

export class ByteReader {
  /** The bytes being read; `pos` indexes into them. */
  readonly bytes: Uint8Array;
  /** Absolute stream offset of `bytes[0]`. */
  readonly base: number;
  /** Current read position inside `bytes`. */
  pos: number;
  private readonly view: DataView;

  /**
   * True when the window ends where the stream ends; false when a chunked source may have more. Peeks
   * that look past the end (QEMU's subsection probe) need to know which.
   */
  readonly final: boolean;

  constructor(bytes: Uint8Array, base = 0, pos = 0, final = true) {
    this.final = final;
    // A plain view even of a Node Buffer: a Buffer's slice() is a view, not a copy, and what getBuffer
    // returns must copy with slice() like any Uint8Array.
    this.bytes = bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.base = base;
    this.pos = pos;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Absolute stream offset of the next byte to read. */
  get offset(): number {
    return this.base + this.pos;
  }

  /** Bytes left in this window. */
  get remaining(): number {
    return this.bytes.length - this.pos;
  }

  /** Throws StreamTruncatedError unless `n` more bytes are available. */
  need(n: number): void {
    if (this.bytes.length - this.pos < n) {
      throw new StreamTruncatedError(n, this.bytes.length - this.pos, { offset: this.base + this.pos, path: '' });
    }
  }

  getByte(): number {
    this.need(1);
    return this.bytes[this.pos++];
  }

  /** The next byte without consuming it, or -1 at the end of the window. */
  peekByte(ahead = 0): number {
    const i = this.pos + ahead;
    return i < this.bytes.length ? this.bytes[i] : -1;
  }

  getBe16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }

  getBe32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  getBe64(): bigint {
    this.need(8);
    const v = this.view.getBigUint64(this.pos);
    this.pos += 8;
    return v;
  }

  /**
   * A big-endian integer of 1, 2, 4 or 8 bytes, signed or not: a number up to 4 bytes, a bigint for 8
   * (VMState's integer codecs).
   */
  getBeInt(size: 1 | 2 | 4 | 8, signed: boolean): number | bigint {
    switch (size) {
      case 1: {
        const v = this.getByte();
        return signed ? (v << 24) >> 24 : v;
      }
      case 2: {
        const v = this.getBe16();
        return signed ? (v << 16) >> 16 : v;
      }
      case 4: {
        const v = this.getBe32();
        return signed ? v | 0 : v;
      }
      default: {
        const v = this.getBe64();
        return signed ? BigInt.asIntN(64, v) : v;
      }
    }
  }

  /** A be64 known to fit in 2^53 (RAM offsets, lengths); larger values are a format error. */
  getBe64Number(): number {
    this.need(8);
    const hi = this.view.getUint32(this.pos);
    const lo = this.view.getUint32(this.pos + 4);
    if (hi >= 0x200000) {
      throw new StreamFormatError(`64-bit value 0x${this.view.getBigUint64(this.pos).toString(16)} is too large`, {
        offset: this.offset,
        path: '',
      });
    }
    this.pos += 8;
    return hi * 0x100000000 + lo;
  }

  /** `n` bytes as a view into the underlying buffer (no copy). */
  getBuffer(n: number): Uint8Array {
    this.need(n);
    const v = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  skip(n: number): void {
    this.need(n);
    this.pos += n;
  }

  /** A string preceded by a one-byte length (QEMU's qemu_get_counted_string). */
  getCountedString(): string {
    const n = this.getByte();
    return this.getString(n);
  }

  /** `n` bytes decoded as UTF-8 (idstrs and block names are ASCII in practice). */
  getString(n: number): string {
    this.need(n);
    const start = this.pos;
    this.pos += n;
    let ascii = true;
    for (let i = start; i < start + n; i++) {
      if (this.bytes[i] >= 0x80) {
        ascii = false;
        break;
      }
    }
    const slice = this.bytes.subarray(start, start + n);
    return ascii ? LATIN1.decode(slice) : TEXT.decode(slice);
  }
}
