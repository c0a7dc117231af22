// Rounding a binary64 value plus the sign of its error to binary32, in every RISC-V rounding mode.
import { FFLAG_NX, FFLAG_OF, FFLAG_UF, RM_RDN, RM_RMM, RM_RNE, RM_RTZ, RM_RUP } from '../fp-state.js';
import { F32_MAX, F32_MIN_NORMAL, nextDown32, nextUp32, status } from './float-bits.js';

/**
 * Why this is exact: every binary32 operation is computed in binary64 as d with the exact result
 * d + err (err known exactly, or at least its sign). The two binary32 neighbours of the exact value
 * and their midpoint are binary64 numbers, so d lies on the same side of each as the exact value
 * unless d equals one of them, where the sign of err decides.
 */

/** Scale that moves any binary32 overflow or underflow edge into the normal range, exactly. */
const EDGE_SCALE = 2 ** 64;

let coreInexact = false;

/** Rounds d + ε·errSign (|ε| below half a binary64 ulp of d) to the binary32 grid, ignoring overflow. */
function roundCore(d: number, errSign: number, rm: number): number {
  const f = Math.fround(d);
  if (f === d) {
    coreInexact = errSign !== 0;
    if (!coreInexact || rm === RM_RNE || rm === RM_RMM) return f;
    if (rm === RM_RDN) return errSign < 0 ? nextDown32(f) : f;
    if (rm === RM_RTZ) {
      if (f > 0 && errSign < 0) return nextDown32(f);
      if (f < 0 && errSign > 0) return nextUp32(f);
      return f;
    }
    return errSign > 0 ? nextUp32(f) : f;
  }
  coreInexact = true;
  const lo = f < d ? f : nextDown32(f);
  const hi = f < d ? nextUp32(f) : f;
  if (rm === RM_RNE || rm === RM_RMM) {
    if (d !== (lo + hi) / 2) return f;
    if (errSign !== 0) return errSign > 0 ? hi : lo;
    if (rm === RM_RNE) return f;
    return d > 0 ? hi : lo;
  }
  if (rm === RM_RDN) return lo;
  if (rm === RM_RTZ) return d > 0 ? lo : hi;
  return hi;
}

/**
 * The binary32 value of d + ε·errSign rounded by `rm`, flags ORed into status.flags.
 * d is finite and nonzero when errSign is nonzero. Tininess is detected after rounding (ISA §11.4).
 */
export function roundSingle(d: number, errSign: number, rm: number): number {
  if (d >= F32_MAX || d <= -F32_MAX) {
    // Round with an unbounded exponent, scaled down, to see whether the result overflows.
    const scaled = roundCore(d / EDGE_SCALE, errSign, rm);
    if (Math.abs(scaled) <= F32_MAX / EDGE_SCALE) {
      if (coreInexact) status.flags |= FFLAG_NX;
      return scaled * EDGE_SCALE;
    }
    status.flags |= FFLAG_OF | FFLAG_NX;
    const toMax = rm === RM_RTZ || (rm === RM_RDN && d > 0) || (rm === RM_RUP && d < 0);
    return toMax ? Math.sign(d) * F32_MAX : Math.sign(d) * Infinity;
  }
  const r = roundCore(d, errSign, rm);
  if (!coreInexact) return r;
  status.flags |= FFLAG_NX;
  const mag = Math.abs(r);
  if (mag < F32_MIN_NORMAL) {
    status.flags |= FFLAG_UF;
  } else if (mag === F32_MIN_NORMAL) {
    // Tiny iff rounding with an unbounded exponent stays below the smallest normal.
    const unbounded = roundCore(d * EDGE_SCALE, errSign, rm);
    if (Math.abs(unbounded) < F32_MIN_NORMAL * EDGE_SCALE) status.flags |= FFLAG_UF;
  }
  return r;
}
