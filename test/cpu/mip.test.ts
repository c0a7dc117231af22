// mip read-modify-write with an external interrupt pending (privileged spec §3.1.9): the PLIC's SEIP
// signal shows in what CSRRS/CSRRC read, but only the software-writable SEIP bit is written back.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runAsm } from '../helpers/bare-machine.js';

const MIP_SEIP = 1 << 9;
const MIP_STIP = 1 << 5;

test('csrc/csrs on mip while the SEIP line is high do not latch SEIP once the line drops', (t) => {
  const r = runAsm(t, `
  csrr a1, mip          # SEIP is visible while the line is high
  li t0, ${MIP_STIP}
  csrs mip, t0          # what firmware does to forward a timer to S-mode...
  csrc mip, t0          # ...and to take it back
  csrs mip, zero        # a read with no write
  pass
`, { setup: (m) => m.harts[0].setInterruptLine(9, true) });
  if (!r) return;
  assert.equal(r.exitCode, 0);
  const h = r.machine.harts[0];
  assert.equal(Number(r.machine.reg(11)) & MIP_SEIP, MIP_SEIP, 'the line shows in mip');
  h.setInterruptLine(9, false);
  assert.equal(h.mip & MIP_SEIP, 0, 'the software-writable SEIP bit stayed clear');
  assert.equal(h.wakeable, false, 'nothing is pending once the controller lowers the line');
});

test('software can still set and clear its own SEIP bit', (t) => {
  const r = runAsm(t, `
  li t0, ${MIP_SEIP}
  csrs mip, t0
  csrr a1, mip
  csrc mip, t0
  csrr a2, mip
  pass
`);
  if (!r) return;
  assert.equal(Number(r.machine.reg(11)) & MIP_SEIP, MIP_SEIP);
  assert.equal(Number(r.machine.reg(12)) & MIP_SEIP, 0);
});
