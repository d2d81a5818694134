/**
 * The closed set of errors vmstate throws. Each has a literal `code`, structured `data` and `toJSON()`,
 * so callers can branch on the code and tools can print or log them without string matching. Errors that
 * belong to one layer are declared there, but their codes are listed here, so the set stays closed.
 */

/** Every code a VmstateError can carry. */
export type VmstateErrorCode =
  | 'STREAM_TRUNCATED'
  | 'STREAM_FORMAT'
  | 'USAGE'
  | 'IO'
  | 'LOAD'
  | 'SAVE'
  | 'LOAD_ORDER'
  | 'PLAN'
  | 'QMP' // QmpError, qmp/
  | 'DMA_FAULT' // DmaFault, machine/
  | 'GUEST_MEMORY' // GuestMemoryError, ram/
  | 'MIGRATION'; // MigrationError, migration/

/** Where in a stream a failure happened. */
export interface StreamPosition {
  /** Absolute byte offset in the stream. */
  readonly offset: number;
  /** Section and field path, e.g. `0000:00:01.0/pcie-root-port (39).config[1]`; empty when outside a section. */
  readonly path: string;
}

/** Base class: every vmstate error has a literal code and JSON-safe data. */
export abstract class VmstateError extends Error {
  abstract readonly code: VmstateErrorCode;
  readonly data: Readonly<Record<string, unknown>>;

  constructor(message: string, data: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.data = data;
  }

  toJSON(): { name: string; code: VmstateErrorCode; message: string; data: Readonly<Record<string, unknown>> } {
    return { name: this.name, code: this.code, message: this.message, data: this.data };
  }
}

function located(message: string, at: StreamPosition): string {
  const where = at.path ? `${at.path}: ` : '';
  return `${where}${message} (at byte offset ${at.offset})`;
}

/** The stream ended before a value it announced: "ran out of bytes". */
export class StreamTruncatedError extends VmstateError {
  readonly code = 'STREAM_TRUNCATED' as const;
  readonly offset: number;
  readonly path: string;

  constructor(wanted: number, available: number, at: StreamPosition) {
    super(located(`stream ends after ${available} of ${wanted} bytes`, at), { wanted, available, ...at });
    this.offset = at.offset;
    this.path = at.path;
  }

  /** The same failure with `prefix` (a section or enclosing field) put before its path. */
  withPathPrefix(prefix: string): StreamTruncatedError {
    const d = this.data as { wanted: number; available: number };
    return new StreamTruncatedError(d.wanted, d.available, { offset: this.offset, path: joinPath(prefix, this.path) });
  }
}

/** The bytes are present but wrong: bad magic, unknown record type, length out of bounds, mismatched footer. */
export class StreamFormatError extends VmstateError {
  readonly code = 'STREAM_FORMAT' as const;
  readonly offset: number;
  readonly path: string;

  constructor(message: string, at: StreamPosition, data: Record<string, unknown> = {}) {
    super(located(message, at), { ...data, ...at, reason: message });
    this.offset = at.offset;
    this.path = at.path;
  }

  /** The same failure with `prefix` (a section or enclosing field) put before its path. */
  withPathPrefix(prefix: string): StreamFormatError {
    const { reason, offset: _o, path: _p, ...rest } = this.data as { reason: string; offset: number; path: string };
    return new StreamFormatError(reason, { offset: this.offset, path: joinPath(prefix, this.path) }, rest);
  }
}

/** Puts `prefix` before `path` in a field path: sections and struct fields are joined by '.'. */
export function joinPath(prefix: string, path: string): string {
  if (!path) return prefix;
  if (!prefix) return path;
  return path.startsWith('[') ? prefix + path : `${prefix}.${path}`;
}

/** Adds a path prefix to a stream error; other errors pass through unchanged. */
export function prefixStreamError(e: unknown, prefix: string): unknown {
  if (e instanceof StreamTruncatedError || e instanceof StreamFormatError) return e.withPathPrefix(prefix);
  return e;
}

/** A stream error found in bytes read apart from the stream they stand at `delta` in: the same failure at its real offset. */
export function shiftStreamError(e: unknown, delta: number): unknown {
  if (e instanceof StreamTruncatedError) {
    const d = e.data as { wanted: number; available: number };
    return new StreamTruncatedError(d.wanted, d.available, { offset: e.offset + delta, path: e.path });
  }
  if (e instanceof StreamFormatError) {
    const { reason, offset: _o, path: _p, ...rest } = e.data as { reason: string; offset: number; path: string };
    return new StreamFormatError(reason, { offset: e.offset + delta, path: e.path }, rest);
  }
  return e;
}

/**
 * A request that cannot be carried out as asked: a bad `--set` path, a value out of range (a counted
 * string over 255 bytes, a RAM block that is not whole pages), a machine that cannot be built.
 */
export class UsageError extends VmstateError {
  readonly code = 'USAGE' as const;

  constructor(message: string, data: Record<string, unknown> = {}) {
    super(message, data);
  }
}

/** An operating-system failure (open, read, write) with the path it concerned. */
export class IoError extends VmstateError {
  readonly code = 'IO' as const;

  constructor(message: string, data: Record<string, unknown> = {}, cause?: unknown) {
    super(message, data, { cause });
  }
}

/** A failure that concerns one section or description: its message starts with that path. */
export abstract class SectionError extends VmstateError {
  /** The section (idstr, or `idstr (section id)`) and field path it concerns. */
  readonly path: string;

  constructor(message: string, path: string, data: Record<string, unknown> = {}, cause?: unknown) {
    super(path ? `${path}: ${message}` : message, { ...data, path, reason: message }, { cause });
    this.path = path;
  }
}

/** A section could not be loaded: unknown or missing, a version out of range, a value that must match, a hook that failed. */
export class LoadError extends SectionError {
  readonly code = 'LOAD' as const;
}

/**
 * Saving failed: a pre-save hook refused, or the state does not fit its description. When a value does not
 * fit, `data.field` is its path from the description's name on (`dev.regs[3].ctl`, `dev/sub.x`), and
 * `data.value` and `data.expected` say what it holds and what it should.
 */
export class SaveError extends SectionError {
  readonly code = 'SAVE' as const;
}

/** A device read another device's state before that state was loaded. */
export class LoadOrderError extends VmstateError {
  readonly code = 'LOAD_ORDER' as const;

  constructor(
    readonly reader: string,
    readonly target: string,
    readonly readerPosition: number,
    readonly targetPosition: number | null,
  ) {
    const where = targetPosition === null ? 'is not in the stream before it' : `comes later, at position ${targetPosition}`;
    super(`${reader} (loaded at position ${readerPosition}) read the state of ${target}, which ${where}`, {
      reader,
      target,
      readerPosition,
      targetPosition,
    });
  }
}

/** The save order cannot be planned: a dependency cycle, or an edge that contradicts the priorities. */
export class PlanError extends VmstateError {
  readonly code = 'PLAN' as const;

  constructor(message: string, data: Record<string, unknown> = {}) {
    super(message, data);
  }
}
