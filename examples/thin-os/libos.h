/* The thin library OS: what a parallel program gets from it (libos.c). No memory management, no processes,
   no interrupts: one address space (physical, no paging), one thread per hart, the SBI for everything else. */
#ifndef LIBOS_H
#define LIBOS_H

#include <stdint.h>

#define MAX_HARTS 32

/* Harts the program runs on (all the machine has, up to MAX_HARTS), and this hart's index among them. */
unsigned libos_harts(void);
unsigned libos_self(void);

/* Console output through the SBI debug console (or the legacy putchar when the SBI has no DBCN). */
void libos_puts(const char *s);
void libos_put_hex(uint64_t v);
void libos_put_dec(uint64_t v);

/* Every hart waits here until all have arrived. */
void libos_barrier(void);

/* Runs body(i) for i in [0, n) on every hart, each taking the next index as it finishes one; returns on every
   hart when all are done. How many each took depends on timing; what body writes must not. */
void libos_parallel_for(unsigned n, void (*body)(unsigned i));
/* Indices this hart took in parallel_for calls so far. */
unsigned libos_taken(void);

/* Powers the machine off through SBI SRST (failure: reason "system failure"). Never returns. */
void libos_shutdown(int failure) __attribute__((noreturn));

/* The program: runs on every hart once the library has started them all. */
int program_main(void);

#endif
