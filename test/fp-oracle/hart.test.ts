// F/D instructions executed by a hart: operands from integer registers, fcsr's frm and fflags, results back.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runAsm } from '../helpers/bare-machine.js';

test('a hart runs F/D code: dynamic rounding from frm, accrued flags in fflags, saturating conversions', (t) => {
  const r = runAsm(t, `
  li t0, 0x2000            # mstatus.FS = Initial, so FP instructions are allowed (priv §3.1.6.6)
  csrs mstatus, t0
  li t0, 1
  fcvt.d.l fa0, t0
  li t0, 3
  fcvt.d.l fa1, t0
  csrr t1, fflags
  bnez t1, 1f
  fdiv.d fa2, fa0, fa1     # 1/3 rounded to nearest, inexact
  csrr t1, fflags
  li t2, 1
  bne t1, t2, 2f
  fmv.x.d t3, fa2
  li t4, 0x3fd5555555555555
  bne t3, t4, 3f
  csrwi frm, 3             # round up, used by the dyn field
  fdiv.d fa2, fa0, fa1
  fmv.x.d t3, fa2
  li t4, 0x3fd5555555555556
  bne t3, t4, 4f
  fdiv.s fa3, fa0, fa1, rne  # single operands that are not NaN-boxed read as the canonical NaN
  fmv.x.w t3, fa3
  li t4, 0x7fc00000
  bne t3, t4, 5f
  csrw fflags, zero
  fcvt.s.d fa4, fa1
  fcvt.s.d fa5, fa0
  fdiv.s fa3, fa5, fa4       # 1/3 in single, rounded up
  fmv.x.w t3, fa3
  li t4, 0x3eaaaaab
  bne t3, t4, 6f
  li t0, -1
  fcvt.d.l fa6, t0
  fsqrt.d fa6, fa6           # invalid: canonical NaN and NV
  fcvt.w.d t5, fa6, rtz      # NaN converts to 2^31 - 1, still NV only
  li t4, 0x7fffffff
  bne t5, t4, 7f
  csrr t1, fflags
  li t2, 0x11                # NV from the square root and NX from the division above
  bne t1, t2, 8f
  fclass.d t5, fa6
  li t4, 0x200
  bne t5, t4, 9f
  pass
1: fail 1
2: fail 2
3: fail 3
4: fail 4
5: fail 5
6: fail 6
7: fail 7
8: fail 8
9: fail 9
`);
  if (r) assert.equal(r.exitCode, 0);
});
