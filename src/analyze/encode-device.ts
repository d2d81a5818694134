/** Encodes a decoded device body back to bytes: the mirror of decode-device.ts. */
import type { ByteWriter } from '../stream/index.js';
import { RecordType } from '../savevm/index.js';
import type { FieldValue, IntValue, StructValue } from './values.js';

export function encodeStruct(w: ByteWriter, s: StructValue): void {
  for (const f of s.fields) encodeField(w, f.value);
  for (const sub of s.subsections) {
    w.putByte(RecordType.SUBSECTION);
    w.putCountedString(sub.name);
    w.putBe32(sub.version);
    encodeStruct(w, sub.value);
  }
}

function encodeField(w: ByteWriter, v: FieldValue): void {
  switch (v.kind) {
    case 'struct':
      encodeStruct(w, v.value);
      return;
    case 'bool':
      w.putByte(v.value ? 1 : 0);
      return;
    case 'bytes':
      w.putBuffer(v.value);
      return;
    case 'int':
      encodeInt(w, v);
      return;
  }
}

function encodeInt(w: ByteWriter, v: IntValue): void {
  const n = v.value;
  switch (v.size) {
    case 1:
    case 2:
    case 4:
    case 8:
      w.putBeInt(v.size, n);
      return;
    default: {
      let u = BigInt.asUintN(v.size * 8, BigInt(n));
      const bytes = new Uint8Array(v.size);
      for (let i = v.size - 1; i >= 0; i--) {
        bytes[i] = Number(u & 0xffn);
        u >>= 8n;
      }
      w.putBuffer(bytes);
    }
  }
}
