// A guest that keeps dirtying memory, for live migrations of a real QEMU: a multiboot kernel (QEMU's
// -kernel loads it, SeaBIOS runs it in 32-bit protected mode, paging off) that adds 1 to the first word
// of each of `pages` consecutive pages in turn, with an empty delay loop between two writes, forever.
// Machine code is written out byte by byte, so no assembler is needed:
//
//          mov esi, DIRTY_AT
//   outer: mov edi, esi
//          mov ecx, PAGES
//   page:  [invlpg [edi]]          with flushTlb
//          inc dword [edi]
//          [inc dword [COUNT_AT]]  with countAt
//          add edi, 4096
//          mov edx, DELAY_LOOPS
//   delay: dec edx
//          jnz delay
//          dec ecx
//          jnz page
//          jmp outer

/** Options of {@link dirtyingKernel}. */
export interface DirtyingKernelOptions {
  /** The multiboot load address; the code starts 32 bytes in, after the header. */
  readonly loadAt: number;
  /** The first page written. */
  readonly dirtyAt: number;
  /** How many consecutive pages are written, in turn. */
  readonly pages: number;
  /** Turns of the empty loop between two writes. */
  readonly delayLoops: number;
  /**
   * Flush the page's TLB entry (invlpg) before each write, so QEMU's TCG looks the page up again, and marks
   * it dirty for migration, every time. Under QEMU 7.2's TCG, without it, the dirty-bitmap sync after the
   * pass that sent 128 such pages found none of them dirty though the guest kept writing them (every time,
   * here); with it every pass finds them. Defaults to false.
   */
  readonly flushTlb?: boolean;
  /** Where to count every write in one more word, so that one read tells how many the guest made. */
  readonly countAt?: number;
}

/** MULTIBOOT_HEADER_MAGIC, and flag bit 16: the address fields below are valid (no ELF needed). */
const MULTIBOOT_MAGIC = 0x1badb002;
const MULTIBOOT_AOUT_KLUDGE = 0x00010000;
const HEADER_BYTES = 32;

function le32(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
}

/** A short jump's displacement byte from the end of a 2-byte jump at `from` to `to`. */
function rel8(from: number, to: number): number {
  const d = to - (from + 2);
  if (d < -128 || d > 127) throw new Error(`jump of ${d} bytes does not fit a rel8`);
  return d & 0xff;
}

/** The kernel's image, header and code, to write to a file for -kernel. */
export function dirtyingKernel(o: DirtyingKernelOptions): Buffer {
  const { loadAt } = o;
  const header = [
    MULTIBOOT_MAGIC,
    MULTIBOOT_AOUT_KLUDGE,
    -(MULTIBOOT_MAGIC + MULTIBOOT_AOUT_KLUDGE) >>> 0, // checksum: the three words add up to 0
    loadAt, //                                          header_addr
    loadAt, //                                          load_addr
    0, //                                               load_end_addr: the whole file
    0, //                                               bss_end_addr: none
    loadAt + HEADER_BYTES, //                           entry_addr
  ].flatMap(le32);
  const code: number[] = [];
  code.push(0xbe, ...le32(o.dirtyAt)); //               mov esi, DIRTY_AT
  const outer = code.length;
  code.push(0x89, 0xf7); //                             mov edi, esi
  code.push(0xb9, ...le32(o.pages)); //                 mov ecx, PAGES
  const page = code.length;
  if (o.flushTlb === true) code.push(0x0f, 0x01, 0x3f); // invlpg [edi]
  code.push(0xff, 0x07); //                             inc dword [edi]
  if (o.countAt !== undefined) code.push(0xff, 0x05, ...le32(o.countAt)); // inc dword [COUNT_AT]
  code.push(0x81, 0xc7, ...le32(4096)); //              add edi, 4096
  code.push(0xba, ...le32(o.delayLoops)); //            mov edx, DELAY_LOOPS
  const delay = code.length;
  code.push(0x4a); //                                   dec edx
  code.push(0x75, rel8(code.length, delay)); //         jnz delay
  code.push(0x49); //                                   dec ecx
  code.push(0x75, rel8(code.length, page)); //          jnz page
  code.push(0xeb, rel8(code.length, outer)); //         jmp outer
  return Buffer.from([...header, ...code]);
}
