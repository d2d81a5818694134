/**
 * One QMP connection's request handling, free of sockets: a request's text in, the reply out. Follows
 * QEMU's monitor/qmp.c and qapi/qmp-dispatch.c:
 *
 *   1. The text must parse as JSON        else GenericError "JSON parse error, ..."
 *   2. and be an object                   else GenericError "QMP input must be a JSON object"
 *   3. whose members are `execute` (a string, required), `arguments` (an object) and `id` (anything),
 *                                         else GenericError "QMP input member 'X' must be a string" /
 *                                         "... 'arguments' must be an object" / "... 'X' is unexpected" /
 *                                         "QMP input lacks member 'execute'"
 *   4. Until `qmp_capabilities` succeeds, every other command is CommandNotFound
 *      "Expecting capabilities negotiation with 'qmp_capabilities'"; afterwards `qmp_capabilities` is
 *      CommandNotFound "Capabilities negotiation is already complete, command ignored".
 *   5. An unknown command is CommandNotFound "The command X has not been found".
 *   6. The command checks its arguments and runs; its result is `{"return": R}` (`{}` when it returns
 *      nothing), a QmpError it throws is `{"error": {"class", "desc"}}`, any other error GenericError.
 *   7. `id`, when the request has one, is echoed in the reply whatever the outcome (after step 2).
 */
import { checkArguments } from './arguments.js';
import type { QmpCommand } from './command.js';
import { QmpError, type VmControl } from './vm-control.js';

/** A reply to send, and what to run once it has been written. */
export interface QmpReply {
  /** `{"return": ...}` or `{"error": {...}}`, with `id` when the request had one. */
  readonly reply: Record<string, unknown>;
  /** Runs after the reply is written (the `quit` command's exit). */
  readonly afterReply?: () => void;
}

/** The error object of a reply. */
export function errorReply(errorClass: string, desc: string): Record<string, unknown> {
  return { error: { class: errorClass, desc } };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseErrorDetail(text: string, e: unknown): string {
  if (/^[A-Za-z_]/.test(text)) return `invalid keyword '${text}'`;
  const message = e instanceof Error ? e.message : String(e);
  return message.charAt(0).toLowerCase() + message.slice(1);
}

/** Dispatches one connection's requests; remembers whether capabilities have been negotiated. */
export class QmpSession {
  private negotiatedFlag = false;

  constructor(
    private readonly vm: VmControl,
    private readonly commands: ReadonlyMap<string, QmpCommand>,
  ) {}

  /** Whether `qmp_capabilities` has succeeded on this connection (events flow only then). */
  get negotiated(): boolean {
    return this.negotiatedFlag;
  }

  /** Handles one request's text; always yields exactly one reply. */
  handle(text: string): QmpReply {
    let request: unknown;
    try {
      request = JSON.parse(text);
    } catch (e) {
      return { reply: errorReply('GenericError', `JSON parse error, ${parseErrorDetail(text, e)}`) };
    }
    if (!isPlainObject(request)) return { reply: errorReply('GenericError', 'QMP input must be a JSON object') };
    const hasId = Object.hasOwn(request, 'id');
    const withId = (reply: Record<string, unknown>): Record<string, unknown> => (hasId ? { ...reply, id: request.id } : reply);
    try {
      const { reply, afterReply } = this.dispatch(request);
      return { reply: withId(reply), afterReply };
    } catch (e) {
      const err = e instanceof QmpError ? e : new QmpError('GenericError', e instanceof Error ? e.message : String(e));
      return { reply: withId(errorReply(err.errorClass, err.message)) };
    }
  }

  private dispatch(request: Record<string, unknown>): QmpReply {
    for (const [key, value] of Object.entries(request)) {
      if (key === 'execute') {
        if (typeof value !== 'string') throw new QmpError('GenericError', "QMP input member 'execute' must be a string");
      } else if (key === 'arguments') {
        if (!isPlainObject(value)) throw new QmpError('GenericError', "QMP input member 'arguments' must be an object");
      } else if (key !== 'id') {
        throw new QmpError('GenericError', `QMP input member '${key}' is unexpected`);
      }
    }
    if (!Object.hasOwn(request, 'execute')) throw new QmpError('GenericError', "QMP input lacks member 'execute'");
    const name = request.execute as string;
    const args = (request.arguments ?? {}) as Record<string, unknown>;

    if (name === 'qmp_capabilities') {
      checkArguments(args, { enable: { type: { list: { enum: ['oob'] } }, optional: true } });
      if (this.negotiatedFlag) throw new QmpError('CommandNotFound', 'Capabilities negotiation is already complete, command ignored');
      // The greeting offers no capabilities, so none can be enabled.
      const enable = (args.enable ?? []) as string[];
      if (enable.length > 0) throw new QmpError('GenericError', `Capability ${enable[0]} not available`);
      this.negotiatedFlag = true;
      return { reply: { return: {} } };
    }
    if (!this.negotiatedFlag) throw new QmpError('CommandNotFound', "Expecting capabilities negotiation with 'qmp_capabilities'");
    const command = this.commands.get(name);
    if (!command) throw new QmpError('CommandNotFound', `The command ${name} has not been found`);
    const result = command.run(this.vm, args);
    const after = command.afterReply;
    return { reply: { return: result === undefined ? {} : result }, afterReply: after ? () => after(this.vm) : undefined };
  }
}
