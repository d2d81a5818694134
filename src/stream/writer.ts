/**
 * Big-endian writer into one growing buffer, mirroring QEMUFile's put* calls. `take()` hands the written
 * bytes over and starts a fresh buffer, so a streaming encoder can flush section by section.
 */
import { UsageError } from '../errors.js';

const TEXT = new TextEncoder();

export class ByteWriter {
  private buf: Uint8Array;
  private view: DataView;
  /** Bytes written so far into the current buffer. */
  length = 0;

  constructor(initialSize = 64 * 1024) {
    this.buf = new Uint8Array(initialSize);
    this.view = new DataView(this.buf.buffer);
  }

  private reserve(n: number): void {
    const need = this.length + n;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  putByte(v: number): void {
    this.reserve(1);
    this.buf[this.length++] = v;
  }

  putBe16(v: number): void {
    this.reserve(2);
    this.view.setUint16(this.length, v);
    this.length += 2;
  }

  putBe32(v: number): void {
    this.reserve(4);
    this.view.setUint32(this.length, v >>> 0);
    this.length += 4;
  }

  putBe64(v: bigint): void {
    this.reserve(8);
    // asUintN allocates: only negative values (two's complement) need it.
    this.view.setBigUint64(this.length, v >= 0n ? v : BigInt.asUintN(64, v));
    this.length += 8;
  }

  /** A big-endian integer of 1, 2, 4 or 8 bytes (two's complement for negatives): VMState's integer codecs. */
  putBeInt(size: 1 | 2 | 4 | 8, v: number | bigint): void {
    switch (size) {
      case 1:
        this.putByte(Number(v) & 0xff);
        return;
      case 2:
        this.putBe16(Number(v) & 0xffff);
        return;
      case 4:
        this.putBe32(Number(v) >>> 0);
        return;
      default:
        this.putBe64(BigInt(v));
    }
  }

  /** A be64 from a non-negative safe integer (RAM offsets and lengths). */
  putBe64Number(v: number): void {
    this.reserve(8);
    this.view.setUint32(this.length, Math.floor(v / 0x100000000));
    this.view.setUint32(this.length + 4, v >>> 0);
    this.length += 8;
  }

  putBuffer(bytes: Uint8Array): void {
    this.reserve(bytes.length);
    this.buf.set(bytes, this.length);
    this.length += bytes.length;
  }

  /** Writes `n` copies of `byte`. */
  putFill(byte: number, n: number): void {
    this.reserve(n);
    this.buf.fill(byte, this.length, this.length + n);
    this.length += n;
  }

  /** A string with a one-byte length prefix (QEMU's qemu_put_counted_string); at most 255 bytes. */
  putCountedString(s: string): void {
    const bytes = TEXT.encode(s);
    if (bytes.length > 255) throw new UsageError(`counted string of ${bytes.length} bytes exceeds 255`, { bytes: bytes.length });
    this.putByte(bytes.length);
    this.putBuffer(bytes);
  }

  /** The bytes written so far, as a view of the internal buffer (valid until the next write). */
  peek(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }

  /** Forgets what was written, keeping the buffer (after its bytes were copied or written out). */
  reset(): void {
    this.length = 0;
  }

  /**
   * Hands over the written bytes and starts again with an empty buffer: `next` if given (one handed over
   * earlier that its taker is done with), or a new one.
   */
  take(next?: Uint8Array): Uint8Array {
    const out = this.buf.subarray(0, this.length);
    this.buf = next ?? new Uint8Array(Math.max(64 * 1024, Math.min(this.buf.length, 1 << 22)));
    this.view = new DataView(this.buf.buffer);
    this.length = 0;
    return out;
  }
}
