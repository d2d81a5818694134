/**
 * Cuts the bytes a QMP client sends into whole JSON values, as QEMU's json-streamer does: requests are
 * not delimited by newlines but by bracket balance, so one read may carry several requests and one
 * request may span several reads.
 *
 *   1. Whitespace between values is skipped.
 *   2. A value starting with `{` or `[` ends at the bracket that brings the depth back to 0; brackets
 *      inside strings (with `\` escapes) do not count.
 *   3. A string at depth 0 ends at its closing quote; a lone `,` `:` `}` or `]` is a value of its own;
 *      any other token at depth 0 (a number, `true`, a stray word) ends at whitespace or a structural
 *      character. These are never valid requests; the session reports them.
 *   4. A value longer than MAX_REQUEST_BYTES, or nested deeper than MAX_NESTING, is fatal: the splitter
 *      reports it once and ignores everything after, and the server closes the connection.
 *
 * Scanning works on bytes: every structural character is ASCII, and no byte of a multi-byte UTF-8
 * sequence is below 0x80, so no decoding is needed until a value is complete.
 */

/** The longest single request the server accepts, in bytes (1 MiB). */
export const MAX_REQUEST_BYTES = 1024 * 1024;
/** The deepest bracket nesting accepted (json-streamer.c MAX_NESTING). */
const MAX_NESTING = 1024;

/** One thing cut from the input: a complete value's text, or an error. */
export type SplitItem =
  | { readonly kind: 'value'; readonly text: string }
  | { readonly kind: 'error'; readonly desc: string; readonly fatal: boolean };

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;

function isWhitespace(b: number): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;
}

function endsScalar(b: number): boolean {
  return isWhitespace(b) || b === QUOTE || b === LBRACE || b === RBRACE || b === LBRACKET || b === RBRACKET || b === COMMA || b === COLON;
}

/** Incremental splitter for one connection's input. */
export class RequestSplitter {
  /** Unconsumed bytes; a value in progress starts at `start`. */
  private buf: Uint8Array = new Uint8Array(0);
  /** Index in `buf` the scan resumes at. */
  private pos = 0;
  /** Index in `buf` where the value in progress starts, or -1 between values. */
  private start = -1;
  private depth = 0;
  private inString = false;
  private escaped = false;
  private inScalar = false;
  private dead = false;
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });

  constructor(private readonly maxRequestBytes = MAX_REQUEST_BYTES) {}

  /** Feeds the next bytes read; returns the values (and errors) they complete, in order. */
  push(chunk: Uint8Array): SplitItem[] {
    if (this.dead) return [];
    const items: SplitItem[] = [];
    const data = this.buf.length === 0 ? chunk : concat(this.buf, chunk);
    let i = this.pos;
    while (i < data.length) {
      if (this.start !== -1 && i - this.start >= this.maxRequestBytes) {
        return this.die(items, `JSON parse error, request exceeds the limit of ${this.maxRequestBytes} bytes`);
      }
      const b = data[i];
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (b === BACKSLASH) this.escaped = true;
        else if (b === QUOTE) {
          this.inString = false;
          if (this.depth === 0) this.emit(items, data, i + 1);
        }
        i++;
        continue;
      }
      if (this.start === -1) {
        if (isWhitespace(b)) {
          i++;
          continue;
        }
        this.start = i;
      }
      if (this.inScalar) {
        if (endsScalar(b)) {
          this.emit(items, data, i);
          continue; // b starts the next value
        }
        i++;
        continue;
      }
      switch (b) {
        case QUOTE:
          this.inString = true;
          break;
        case LBRACE:
        case LBRACKET:
          if (++this.depth > MAX_NESTING) return this.die(items, `JSON parse error, nesting depth limit of ${MAX_NESTING} exceeded`);
          break;
        case RBRACE:
        case RBRACKET:
          if (this.depth > 0) this.depth--;
          if (this.depth === 0) this.emit(items, data, i + 1);
          break;
        case COMMA:
        case COLON:
          if (this.depth === 0) this.emit(items, data, i + 1);
          break;
        default:
          if (this.depth === 0) this.inScalar = true;
      }
      i++;
    }
    if (this.start === -1) {
      this.buf = new Uint8Array(0);
      this.pos = 0;
    } else {
      this.buf = data.subarray(this.start);
      this.pos = i - this.start;
      this.start = 0;
    }
    return items;
  }

  private emit(items: SplitItem[], data: Uint8Array, end: number): void {
    const bytes = data.subarray(this.start, end);
    this.start = -1;
    this.inScalar = false;
    this.depth = 0;
    try {
      items.push({ kind: 'value', text: this.decoder.decode(bytes) });
    } catch {
      items.push({ kind: 'error', desc: 'JSON parse error, invalid UTF-8 sequence', fatal: false });
    }
  }

  private die(items: SplitItem[], desc: string): SplitItem[] {
    this.dead = true;
    this.buf = new Uint8Array(0);
    items.push({ kind: 'error', desc, fatal: true });
    return items;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
