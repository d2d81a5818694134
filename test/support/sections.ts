// Pulls one FULL section's body bytes and its VMDESCRIPTION entry out of a fixture stream.
import fs from 'node:fs';
import { listSections, openStreamFile, requireVmdesc, type VmdescDevice } from '../../src/analyze/index.js';

export interface SectionBody {
  readonly body: Uint8Array;
  readonly version: number;
  readonly desc: VmdescDevice;
}

export async function sectionBody(stream: string, idstr: string, instanceId = 0): Promise<SectionBody> {
  const file = openStreamFile(stream);
  try {
    const { vmdesc } = requireVmdesc(file);
    const rows = await listSections(file.source(), vmdesc);
    const row = rows.find((r) => r.type === 'full' && r.idstr === idstr && r.instanceId === instanceId);
    if (!row) throw new Error(`${stream} has no section ${idstr}#${instanceId}`);
    const bytes = fs.readFileSync(stream);
    const header = 1 + 4 + 1 + Buffer.byteLength(idstr) + 4 + 4;
    const desc = vmdesc.devices.find((d) => d.name === idstr && d.instance_id === instanceId);
    if (!desc) throw new Error(`no description of ${idstr}#${instanceId}`);
    return { body: new Uint8Array(bytes.subarray(row.offset + header, row.offset + row.size - 5)), version: row.version, desc };
  } finally {
    file.close();
  }
}
