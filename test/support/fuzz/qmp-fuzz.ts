export interface QmpFuzzStats { inputs: number; connections: number; concurrency: number; replies: number; errorReplies: number; closedByServer: number; maxMs: number; bigLines: number; bigLineBytes: number; peakRss: number; findings: string[] }
export async function fuzzQmp(_o: { count: number; seed: number; progress?: (l: string) => void }): Promise<QmpFuzzStats> {
  return { inputs: 0, connections: 0, concurrency: 0, replies: 0, errorReplies: 0, closedByServer: 0, maxMs: 0, bigLines: 0, bigLineBytes: 0, peakRss: 0, findings: [] };
}
