/**
 * QEMU 10.0's scripts/analyze-migration.py, where it reads device state differently from 7.2's (the
 * rest, how leaves print and how sections are keyed, is 7.2's):
 *
 *   - the fields of one name gather into one list at the first one's place when there are two elements
 *     or more, whatever their `index` (10.0's descriptions leave the index off the last element of an
 *     array that is not compressed); one element alone, even of an array, is a plain key; no index is
 *     checked;
 *   - a field of type "nullptr" (a NULL element of an array of pointers, from 9.1.3 on) prints
 *     `nullptr`.
 */
import { leafRule72, type AnalyzeScript, type LeafRule } from './script-7.2.js';

const NULLPTR: LeafRule = { kind: 'bytes', signed: false, shownSigned: false, shown: 'nullptr' };

export const SCRIPT_10_0: AnalyzeScript = {
  name: 'analyze-migration.py (QEMU 10.0)',
  leaf: (type, size) => (type === 'nullptr' ? NULLPTR : leafRule72(type, size)),
  lists: 'name',
};
