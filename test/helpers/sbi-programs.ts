// S-mode programs for the built-in SBI on harts of several threads or hosts (docs/threads.md, docs/giantvm.md).

/** The SBI extensions' ids and a macro `sbi EXT, FID` that makes the call: the start of every program here. */
export const SBI_PRELUDE = `
.equ EXT_HSM, 0x48534d
.equ EXT_IPI, 0x735049
.equ EXT_RFENCE, 0x52464e43
.equ EXT_TIME, 0x54494d45
.equ EXT_SRST, 0x53525354
.equ EXT_DBCN, 0x4442434e
.macro sbi ext, fid
  li a7, \\ext
  li a6, \\fid
  ecall
.endm
`;

/**
 * Two harts, loaded at the start of RAM and started under the SBI (hart 0 at the start). Hart 0 starts hart
 * 1 (HSM, with an opaque value it checks), sends it an IPI, patches code hart 1 runs translated and makes a
 * remote FENCE.I that must reach hart 1's blocks before the call returns; both harts then fence each other
 * 300 times at once (no deadlock); hart 1 sets an SBI timer and waits for it. Hart 0 prints OK on the SBI's
 * debug console and powers off with 0; with 1 if something went wrong.
 */
export const SBI_PROGRAM = `${SBI_PRELUDE}
.globl _start
_start:
  bnez a0, hart1
  li a0, 1
  la a1, hart1
  li a2, 0x1234
  sbi EXT_HSM, 0
  bnez a0, fail
1: li a0, 1
  sbi EXT_HSM, 2
  bnez a1, 1b
  la t0, flag1
2: lw t1, 0(t0)
  beqz t1, 2b
  li a0, 2
  li a1, 0
  sbi EXT_IPI, 0
  la t0, flag2
3: lw t1, 0(t0)
  beqz t1, 3b
  # hart 1 runs 'patch' in a loop: make it return 2, then fence hart 1's instruction fetches
  la t0, patch
  li t1, 0x00200513
  sw t1, 0(t0)
  li a0, 2
  li a1, 0
  sbi EXT_RFENCE, 0
  la t0, flag3
  li t1, 1
  sw t1, 0(t0)
  li s0, 300
4: li a0, 2
  li a1, 0
  sbi EXT_RFENCE, 0
  addi s0, s0, -1
  bnez s0, 4b
  la t0, flag4
5: lw t1, 0(t0)
  beqz t1, 5b
  li t2, 1
  bne t1, t2, fail
  li a0, 'O'
  sbi EXT_DBCN, 2
  li a0, 'K'
  sbi EXT_DBCN, 2
  li a0, 0
  li a1, 0
  sbi EXT_SRST, 0
6: j 6b
fail:
  li a0, 0
  li a1, 1
  sbi EXT_SRST, 0
7: j 7b

hart1:
  li t0, 0x1234
  bne a1, t0, fail
  # warm 'patch' up, so that this thread runs it translated
  li s0, 20000
0: call patch
  addi s0, s0, -1
  bnez s0, 0b
  la t0, flag1
  li t1, 1
  sw t1, 0(t0)
  li t0, 2
  csrw sie, t0
1: wfi
  csrr t0, sip
  andi t0, t0, 2
  beqz t0, 1b
  csrci sip, 2
  la t0, flag2
  li t1, 1
  sw t1, 0(t0)
  la s1, flag3
2: call patch
  lw t1, 0(s1)
  beqz t1, 2b
  call patch
  li t0, 2
  bne a0, t0, bad
  li s0, 300
3: li a0, 1
  li a1, 0
  sbi EXT_RFENCE, 0
  addi s0, s0, -1
  bnez s0, 3b
  rdtime t0
  addi a0, t0, 1000
  sbi EXT_TIME, 0
  li t0, 0x20
  csrw sie, t0
4: wfi
  csrr t0, sip
  andi t0, t0, 0x20
  beqz t0, 4b
  li t1, 1
  j 5f
bad:
  li t1, 2
5: la t0, flag4
  sw t1, 0(t0)
6: wfi
  j 6b

.align 12
.option push
.option norvc
patch:
  li a0, 1
  ret
.option pop
.align 12
.data
.align 6
flag1: .word 0
.align 6
flag2: .word 0
.align 6
flag3: .word 0
.align 6
flag4: .word 0
`;
