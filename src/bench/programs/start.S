# Entry of the bare-metal benchmark programs: a stack, main(), then the exit code through HTIF tohost.
# tohost/fromhost carry a type and size because QEMU's spike machine finds them by ELF symbol and checks both.
    .section .text.start
    .globl _start
_start:
    csrr  t0, mhartid
    bnez  t0, park
    la    sp, stack_top
    call  main
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
    .align 4
stack:  .space 65536
stack_top:
