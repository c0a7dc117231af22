/* The thin library OS (Disco's SPLASHOS case): it brings up every hart through SBI HSM, gives the program a
   barrier, a parallel loop and a console, and powers off with the program's status. SBI calls follow the
   RISC-V SBI specification v2.0: a7 = extension, a6 = function, a0-a5 arguments; a0 = error, a1 = value. */
#include "libos.h"

#define EXT_BASE 0x10
#define EXT_HSM 0x48534d
#define EXT_SRST 0x53525354
#define EXT_DBCN 0x4442434e
#define LEGACY_PUTCHAR 1
#define BASE_PROBE_EXTENSION 3
#define HSM_HART_START 0
#define HSM_HART_STOP 1
#define HSM_HART_GET_STATUS 2
#define HSM_STARTED 0
#define SRST_SHUTDOWN 0
#define SRST_NO_REASON 0
#define SRST_SYSTEM_FAILURE 1
#define DBCN_WRITE 0
#define SBI_SUCCESS 0

struct sbiret { long error; long value; };

static struct sbiret sbi_call(long ext, long fid, long a0, long a1, long a2) {
  register long r0 asm("a0") = a0;
  register long r1 asm("a1") = a1;
  register long r2 asm("a2") = a2;
  register long r6 asm("a6") = fid;
  register long r7 asm("a7") = ext;
  asm volatile("ecall" : "+r"(r0), "+r"(r1) : "r"(r2), "r"(r6), "r"(r7) : "memory");
  return (struct sbiret){ r0, r1 };
}

/* Set by start.S: the hart the SBI started first. */
uint64_t boot_hart;
extern char _secondary[];

static unsigned hart_count;
/* Hart id -> index, so that the program sees indices 0..harts-1 whatever the ids. */
static unsigned index_of[MAX_HARTS];
static int has_dbcn;

unsigned libos_harts(void) { return hart_count; }

/* start.S keeps the hart id in tp, which nothing else uses (no threads, no TLS). */
static uint64_t hart_id(void) {
  uint64_t id;
  asm volatile("mv %0, tp" : "=r"(id));
  return id;
}

unsigned libos_self(void) { return index_of[hart_id()]; }

static void put_bytes(const char *s, unsigned long n) {
  if (has_dbcn) {
    /* No paging: the physical address of the bytes is their address. */
    struct sbiret r = sbi_call(EXT_DBCN, DBCN_WRITE, (long)n, (long)s, 0);
    if (r.error == SBI_SUCCESS && (unsigned long)r.value == n) return;
  }
  for (unsigned long i = 0; i < n; i++) sbi_call(LEGACY_PUTCHAR, 0, s[i], 0, 0);
}

/* One line at a time from one hart: the console is shared. */
static volatile int console_lock;

static void lock(volatile int *l) { while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE)) {} }
static void unlock(volatile int *l) { __atomic_store_n(l, 0, __ATOMIC_RELEASE); }

void libos_puts(const char *s) {
  unsigned long n = 0;
  while (s[n]) n++;
  lock(&console_lock);
  put_bytes(s, n);
  unlock(&console_lock);
}

void libos_put_hex(uint64_t v) {
  char buf[19];
  buf[0] = '0';
  buf[1] = 'x';
  for (int i = 0; i < 16; i++) buf[2 + i] = "0123456789abcdef"[(v >> (60 - 4 * i)) & 15];
  buf[18] = 0;
  libos_puts(buf);
}

void libos_put_dec(uint64_t v) {
  char buf[21];
  int at = 20;
  buf[at] = 0;
  do { buf[--at] = (char)('0' + v % 10); v /= 10; } while (v != 0);
  libos_puts(buf + at);
}

/* A sense-reversing barrier: the last to arrive flips the sense the others spin on. */
static volatile unsigned barrier_count;
static volatile unsigned barrier_sense;

void libos_barrier(void) {
  unsigned sense = !__atomic_load_n(&barrier_sense, __ATOMIC_ACQUIRE);
  if (__atomic_add_fetch(&barrier_count, 1, __ATOMIC_ACQ_REL) == hart_count) {
    __atomic_store_n(&barrier_count, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&barrier_sense, sense, __ATOMIC_RELEASE);
  } else {
    while (__atomic_load_n(&barrier_sense, __ATOMIC_ACQUIRE) != sense) {}
  }
}

static volatile unsigned next_index;
static unsigned taken[MAX_HARTS];

void libos_parallel_for(unsigned n, void (*body)(unsigned i)) {
  if (libos_self() == 0) __atomic_store_n(&next_index, 0, __ATOMIC_RELAXED);
  libos_barrier();
  for (;;) {
    unsigned i = __atomic_fetch_add(&next_index, 1, __ATOMIC_ACQ_REL);
    if (i >= n) break;
    body(i);
    taken[libos_self()]++;
  }
  libos_barrier();
}

unsigned libos_taken(void) { return taken[libos_self()]; }

void libos_shutdown(int failure) {
  sbi_call(EXT_SRST, 0, SRST_SHUTDOWN, failure ? SRST_SYSTEM_FAILURE : SRST_NO_REASON, 0);
  for (;;) asm volatile("wfi");
}

static volatile int status;

/* The other harts: the program, then HSM hart_stop. */
void secondary_main(void) {
  program_main();
  sbi_call(EXT_HSM, HSM_HART_STOP, 0, 0, 0);
}

/* The boot hart: counts the harts, starts the others, runs the program and powers off with its status. */
void thin_main(void) {
  has_dbcn = sbi_call(EXT_BASE, BASE_PROBE_EXTENSION, EXT_DBCN, 0, 0).value != 0;
  /* Hart ids are 0..N-1 on this machine (and QEMU's virt): HSM hart_get_status answers an invalid parameter past the last. */
  unsigned n = 0;
  for (unsigned id = 0; id < MAX_HARTS; id++) {
    if (sbi_call(EXT_HSM, HSM_HART_GET_STATUS, id, 0, 0).error != SBI_SUCCESS) break;
    index_of[id] = id == boot_hart ? 0 : ++n;
  }
  hart_count = n + 1;
  for (unsigned id = 0; id < hart_count; id++) {
    if (id == boot_hart) continue;
    struct sbiret r = sbi_call(EXT_HSM, HSM_HART_START, id, (long)_secondary, 0);
    if (r.error != SBI_SUCCESS) {
      libos_puts("thin-os: hart_start failed for hart ");
      libos_put_dec(id);
      libos_puts("\n");
      libos_shutdown(1);
    }
  }
  int result = program_main();
  libos_shutdown(result != 0);
}

void trap(uint64_t cause, uint64_t pc, uint64_t value) {
  libos_puts("thin-os: unexpected trap, scause ");
  libos_put_hex(cause);
  libos_puts(" sepc ");
  libos_put_hex(pc);
  libos_puts(" stval ");
  libos_put_hex(value);
  libos_puts("\n");
  libos_shutdown(1);
}
