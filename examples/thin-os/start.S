# Entry of the thin OS, in S-mode under an SBI. The hart the SBI starts first enters at _start, the others at
# _secondary once it starts them with HSM hart_start; every hart arrives with a0 = its hart id and a1 = the
# device tree's address (the boot hart) or the opaque word of hart_start (the others). Each takes its own stack,
# turns the FPU on, points stvec at the trap handler and goes to C.

    .equ STACK_BYTES, 16384
    .equ SSTATUS_FS_INITIAL, 0x2000

    .section .text.start
    .globl _start
_start:
    la    t0, boot_hart
    sd    a0, 0(t0)
    call  setup
    call  thin_main
    j     halt

    .globl _secondary
_secondary:
    call  setup
    call  secondary_main
halt:
    wfi
    j     halt

# tp = hartid; sp = stacks + (hartid + 1) * STACK_BYTES (main starts only harts below MAX_HARTS).
setup:
    mv    tp, a0
    la    sp, stacks
    addi  t0, a0, 1
    li    t1, STACK_BYTES
    mul   t0, t0, t1
    add   sp, sp, t0
    li    t0, SSTATUS_FS_INITIAL
    csrs  sstatus, t0
    la    t0, trap_entry
    csrw  stvec, t0
    csrw  sie, zero
    ret

    .align 2
trap_entry:
    csrr  a0, scause
    csrr  a1, sepc
    csrr  a2, stval
    call  trap
    j     halt

    .bss
    .align 4
    .globl stacks
stacks:
    .space STACK_BYTES * 32
