# Entry of the programs that run on every hart (stress.c, parallel.c): each hart gets its own stack and runs
# hart_main(hartid). Hart 0's return value is the exit code through HTIF tohost; the others park. fail()
# ends the run from any hart.
    .section .text.start
    .globl _start
_start:
    csrr  a0, mhartid
    li    t0, HARTS
    bgeu  a0, t0, park
    la    sp, stacks
    addi  t1, a0, 1
    slli  t1, t1, 14
    add   sp, sp, t1
    call  hart_main
    csrr  t0, mhartid
    bnez  t0, park
    # fall through with hart 0's result
    .globl fail
fail:
    slli  a0, a0, 1
    ori   a0, a0, 1
    la    t0, tohost
    sd    a0, 0(t0)
park:
    wfi
    j     park

    .section .tohost, "aw", @progbits
    .align 6
    .globl tohost
    .type tohost, @object
    .size tohost, 8
tohost: .dword 0
    .align 6
    .globl fromhost
    .type fromhost, @object
    .size fromhost, 8
fromhost: .dword 0

    .bss
    .align 12
stacks: .space 16384 * HARTS
