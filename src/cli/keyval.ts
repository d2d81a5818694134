/**
 * QEMU's option syntax for `-object` and `-global`, as the VM process takes them:
 *
 *   object  = TYPE "," KEY "=" VALUE ("," KEY "=" VALUE)*     e.g. tls-creds-x509,id=tls0,dir=/pki,endpoint=server
 *           | JSON-OBJECT                                      {"qom-type": "authz-list", "id": "auth0", "rules": [...]}
 *   global  = DRIVER "." PROPERTY "=" VALUE                    e.g. migration.tls-creds=tls0
 *
 * A comma inside a value is written twice (`dir=/a,,b` is `/a,b`). Booleans are on/off (also yes/no,
 * true/false), as QEMU's keyval reads them; lists need the JSON form.
 */
import { UsageError } from '../errors.js';
import { OBJECT_PROPERTIES } from '../qmp/index.js';

/** Splits `a=1,b=x,,y` into its pairs, undoubling commas; a first element without `=` goes to `implied`. */
export function parseKeyval(text: string, implied: string): [string, string][] {
  const parts: string[] = [''];
  for (let i = 0; i < text.length; i++) {
    if (text[i] !== ',') {
      parts[parts.length - 1] += text[i];
    } else if (text[i + 1] === ',') {
      parts[parts.length - 1] += ',';
      i++;
    } else {
      parts.push('');
    }
  }
  return parts.map((part, i) => {
    const eq = part.indexOf('=');
    if (eq < 0) {
      if (i === 0 && part !== '') return [implied, part];
      throw new UsageError(`'${text}': expected KEY=VALUE, not '${part}'`);
    }
    return [part.slice(0, eq), part.slice(eq + 1)];
  });
}

const BOOLEANS: Readonly<Record<string, boolean>> = { on: true, yes: true, true: true, off: false, no: false, false: false };

/** `-object SPEC` as object-add's arguments (checked later, by object-add itself). */
export function parseObjectOption(text: string): Record<string, unknown> {
  if (text.trimStart().startsWith('{')) {
    try {
      const v = JSON.parse(text) as unknown;
      if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
    } catch (e) {
      throw new UsageError(`-object ${text}: ${(e as Error).message}`);
    }
    throw new UsageError(`-object ${text}: expected a JSON object`);
  }
  const props: Record<string, unknown> = {};
  const pairs = parseKeyval(text, 'qom-type');
  const spec = OBJECT_PROPERTIES[String(pairs.find(([k]) => k === 'qom-type')?.[1])] ?? {};
  for (const [key, value] of pairs) {
    if (Object.hasOwn(props, key)) throw new UsageError(`-object ${text}: '${key}' is given twice`);
    if (spec[key]?.type === 'bool') {
      if (!Object.hasOwn(BOOLEANS, value)) throw new UsageError(`-object ${text}: Parameter '${key}' expects 'on' or 'off'`);
      props[key] = BOOLEANS[value];
    } else {
      props[key] = value;
    }
  }
  return props;
}

/** The migration properties `-global` may set: QEMU's migration object's TLS properties. */
const MIGRATION_GLOBALS: readonly string[] = ['tls-creds', 'tls-hostname', 'tls-authz'];

/** `-global migration.PROPERTY=VALUE` as a migration parameter. */
export function parseGlobalOption(text: string): [string, string] {
  const m = /^([^.=]+)\.([^=]+)=(.*)$/s.exec(text);
  if (!m) throw new UsageError(`-global ${text}: expected DRIVER.PROPERTY=VALUE`);
  if (m[1] !== 'migration' || !MIGRATION_GLOBALS.includes(m[2])) {
    throw new UsageError(`-global ${text}: vmstate takes only ${MIGRATION_GLOBALS.map((p) => `migration.${p}`).join(', ')}`);
  }
  return [m[2], m[3]];
}
