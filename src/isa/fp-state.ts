// The part of a hart's state that floating-point instructions read and write.

/**
 * Registers are raw 64-bit little-endian patterns: x[2i] is the low and x[2i+1] the high 32 bits of
 * integer register i (x0 stays zero), f[2i]/f[2i+1] likewise for FP register i; `f64` views the same
 * buffer as `f`. A single-precision value is NaN-boxed: high word all ones (RISC-V ISA §12.2).
 * `frm` is the dynamic rounding mode (0..4 valid), `fflags` the accrued exception flags (NV DZ OF UF NX
 * in bits 4..0).
 */
export interface FpState {
  readonly x: Int32Array;
  readonly f: Int32Array;
  readonly f64: Float64Array;
  frm: number;
  fflags: number;
}

export const FFLAG_NX = 1;
export const FFLAG_UF = 2;
export const FFLAG_OF = 4;
export const FFLAG_DZ = 8;
export const FFLAG_NV = 16;

export const RM_RNE = 0;
export const RM_RTZ = 1;
export const RM_RDN = 2;
export const RM_RUP = 3;
export const RM_RMM = 4;
export const RM_DYN = 7;
