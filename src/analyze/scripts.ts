/** The versions of analyze-migration.py vmstate's output can match, by the QEMU release they come with. */
import { SCRIPT_10_0 } from './script-10.0.js';
import { SCRIPT_7_2, type AnalyzeScript } from './script-7.2.js';

/** Each script by its QEMU version, oldest first. */
export const ANALYZE_SCRIPTS: Readonly<Record<string, AnalyzeScript>> = { '7.2': SCRIPT_7_2, '10.0': SCRIPT_10_0 };

/** The script matched unless another is asked for: the newest. Its output equals 7.2's wherever 7.2's reads a stream QEMU writes. */
export const DEFAULT_SCRIPT: AnalyzeScript = SCRIPT_10_0;
