/**
 * Argument checking for QMP commands, with QEMU's messages (qapi/qobject-input-visitor.c). Members are
 * checked in declaration order, then unexpected members are reported, as the generated QAPI visitors do:
 *
 *   missing member          Parameter 'uri' is missing
 *   wrong JSON type         Invalid parameter type for 'uri', expected: string
 *   integer out of range    Parameter 'compress-level' expects uint8
 *   unknown enum value      Parameter 'capability' does not accept value 'foo'
 *   member not declared     Parameter 'foo' is unexpected
 *
 * Names inside lists and structs are written in full: `capabilities[0].state`.
 */
import { QmpError } from './vm-control.js';

/** A QAPI type, as far as QMP arguments need one. */
export type ArgType =
  | 'str'
  | 'bool'
  | 'int'
  | 'uint8'
  | 'uint32'
  | 'uint64'
  | 'size'
  | 'StrOrNull'
  | { readonly enum: readonly string[] }
  | { readonly list: ArgType }
  | { readonly struct: ArgSpec };

/** A struct's members in declaration order; `optional` members may be absent. */
export type ArgSpec = Readonly<Record<string, { readonly type: ArgType; readonly optional?: boolean }>>;

/** Checks `args` against `spec`; returns them unchanged or throws QmpError GenericError. */
export function checkArguments(args: Readonly<Record<string, unknown>>, spec: ArgSpec): Readonly<Record<string, unknown>> {
  checkStruct(args, spec, '');
  return args;
}

function generic(message: string): QmpError {
  return new QmpError('GenericError', message);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkStruct(obj: Readonly<Record<string, unknown>>, spec: ArgSpec, prefix: string): void {
  for (const [name, member] of Object.entries(spec)) {
    const full = prefix + name;
    if (!Object.hasOwn(obj, name)) {
      if (member.optional) continue;
      throw generic(`Parameter '${full}' is missing`);
    }
    checkValue(obj[name], member.type, full, name);
  }
  for (const name of Object.keys(obj)) {
    if (!Object.hasOwn(spec, name)) throw generic(`Parameter '${prefix}${name}' is unexpected`);
  }
}

const UINT_MAX: Readonly<Record<string, number>> = { uint8: 0xff, uint32: 0xffffffff };

function checkValue(v: unknown, type: ArgType, full: string, name: string): void {
  const wrongType = (expected: string) => generic(`Invalid parameter type for '${full}', expected: ${expected}`);
  if (typeof type === 'object') {
    if ('enum' in type) {
      if (typeof v !== 'string') throw wrongType('string');
      if (!type.enum.includes(v)) throw generic(`Parameter '${name}' does not accept value '${v}'`);
    } else if ('list' in type) {
      if (!Array.isArray(v)) throw wrongType('array');
      v.forEach((item, i) => checkValue(item, type.list, `${full}[${i}]`, `${full}[${i}]`));
    } else {
      if (!isPlainObject(v)) throw wrongType('object');
      checkStruct(v, type.struct, `${full}.`);
    }
    return;
  }
  switch (type) {
    case 'str':
      if (typeof v !== 'string') throw wrongType('string');
      return;
    case 'StrOrNull':
      if (typeof v !== 'string' && v !== null) throw wrongType('string');
      return;
    case 'bool':
      if (typeof v !== 'boolean') throw wrongType('boolean');
      return;
    case 'int':
      if (!Number.isInteger(v)) throw wrongType('integer');
      return;
    case 'size':
      if (!Number.isInteger(v) || (v as number) < 0) throw wrongType('size');
      return;
    case 'uint64':
      // QEMU accepts negative numbers here for backward compatibility; the range check is the VM's.
      if (!Number.isInteger(v)) throw generic(`Parameter '${full}' expects uint64`);
      return;
    case 'uint8':
    case 'uint32':
      if (!Number.isInteger(v)) throw generic(`Parameter '${full}' expects uint64`);
      if ((v as number) < 0 || (v as number) > UINT_MAX[type]) throw generic(`Parameter '${full}' expects ${type}`);
      return;
  }
}
