/**
 * The VMDESCRIPTION JSON as a tree that keeps every member in order, duplicates included (QEMU's qtailq
 * descriptions repeat keys inside one object), and writes it back exactly as QEMU's JSON writer does
 * (qobject/json-writer.c, QEMU 7.2): compact, ", " and ": " separators, non-ASCII and control characters
 * as uppercase \uXXXX escapes.
 */
import { StreamFormatError } from '../errors.js';
import { qemuJsonString as qemuString } from '../vmstate/index.js';

export type JsonNode =
  | { readonly t: 'obj'; readonly members: [string, JsonNode][] }
  | { readonly t: 'arr'; readonly items: JsonNode[] }
  | { readonly t: 'str'; readonly v: string }
  | { readonly t: 'num'; readonly text: string }
  | { readonly t: 'lit'; readonly text: 'true' | 'false' | 'null' };

const MAX_DEPTH = 256;

/** Parses JSON text into a JsonNode tree. `offset` is the text's stream offset, for errors. */
export function parseJsonTree(text: string, offset: number): JsonNode {
  let i = 0;
  const fail = (why: string): never => {
    throw new StreamFormatError(`VMDESCRIPTION JSON: ${why} at character ${i}`, { offset, path: 'vmdesc' });
  };
  const ws = () => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\n' || text[i] === '\r' || text[i] === '\t')) i++;
  };
  const str = (): string => {
    const start = ++i;
    let out = '';
    let from = start;
    for (;;) {
      if (i >= text.length) fail('unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) break;
      if (c === 0x5c) {
        out += text.slice(from, i);
        const e = text[i + 1];
        if (e === 'u') {
          const hex = text.slice(i + 2, i + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail('bad \\u escape');
          out += String.fromCharCode(parseInt(hex, 16));
          i += 6;
        } else {
          const map: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
          if (e === undefined || !(e in map)) fail('bad escape');
          out += map[e as string];
          i += 2;
        }
        from = i;
        continue;
      }
      i++;
    }
    out += text.slice(from, i);
    i++;
    return out;
  };
  const value = (depth: number): JsonNode => {
    if (depth > MAX_DEPTH) fail('nesting too deep');
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const members: [string, JsonNode][] = [];
      ws();
      if (text[i] === '}') {
        i++;
        return { t: 'obj', members };
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a key');
        const k = str();
        ws();
        if (text[i] !== ':') fail("expected ':'");
        i++;
        members.push([k, value(depth + 1)]);
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return { t: 'obj', members };
        }
        fail("expected ',' or '}'");
      }
    }
    if (c === '[') {
      i++;
      const items: JsonNode[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return { t: 'arr', items };
      }
      for (;;) {
        items.push(value(depth + 1));
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return { t: 'arr', items };
        }
        fail("expected ',' or ']'");
      }
    }
    if (c === '"') return { t: 'str', v: str() };
    const m = /^(?:-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i, i + 40));
    if (!m) return fail('unexpected character');
    i += m[0].length;
    if (m[0] === 'true' || m[0] === 'false' || m[0] === 'null') return { t: 'lit', text: m[0] };
    return { t: 'num', text: m[0] };
  };
  const root = value(0);
  ws();
  if (i !== text.length) fail('trailing characters');
  return root;
}

/** Writes a JsonNode tree the way QEMU writes the VMDESCRIPTION. */
export function formatQemuJson(node: JsonNode): string {
  const out: string[] = [];
  const write = (n: JsonNode): void => {
    switch (n.t) {
      case 'obj':
        out.push('{');
        n.members.forEach(([k, v], idx) => {
          if (idx > 0) out.push(', ');
          out.push(qemuString(k), ': ');
          write(v);
        });
        out.push('}');
        return;
      case 'arr':
        out.push('[');
        n.items.forEach((v, idx) => {
          if (idx > 0) out.push(', ');
          write(v);
        });
        out.push(']');
        return;
      case 'str':
        out.push(qemuString(n.v));
        return;
      default:
        out.push(n.text);
    }
  };
  write(node);
  return out.join('');
}
