// TEMPORARY STUB written by the lead so the CPU compiles before the FP engineer's work lands: replace freely.
import type { FpState } from '../fp-state.js';

export function executeFp(_s: FpState, _insn: number): boolean {
  return false;
}
