// The stress program (docs/threads.md): every hart works on shared memory with AMOs, an LR/SC spinlock, an
// LR/SC counter and message passing with fences, and checks the invariants as it goes and at the end.
// Hart 0 exits 0 if all held; any hart that sees one broken ends the run with that check's number.

#include <stdint.h>

#ifndef HARTS
#define HARTS 4
#endif
#ifndef ITERATIONS
#define ITERATIONS 1000
#endif

void fail(long code) __attribute__((noreturn));

/* Each shared object on its own 64-byte line (a reservation granule), unless it shares one on purpose. */
#define LINE __attribute__((aligned(64)))
/* Both halves of a doubleword change together, so a load torn between two stores shows as neither value. */
#define BOTH_HALVES 0x100000001ull

static volatile uint64_t add64 LINE;
static volatile uint32_t add32 LINE;
static volatile uint64_t lrsc64 LINE;
static volatile uint32_t xor32 LINE;
static volatile uint32_t bits32 LINE;
/* The lock and what it guards share a line: stores under the lock break spinning harts' reservations. */
static struct { volatile uint32_t lock; volatile uint64_t guarded; volatile uint64_t record[2]; } locked LINE;
static volatile int64_t maximum LINE = INT64_MIN;
static volatile int64_t minimum LINE = INT64_MAX;
static volatile int64_t local_max[HARTS], local_min[HARTS];

struct mailbox { volatile uint64_t data[4]; volatile uint64_t seq; volatile uint64_t ack; } LINE;
static struct mailbox boxes[HARTS];

static volatile uint32_t barrier_count LINE;
static volatile uint32_t barrier_sense LINE;

static inline uint64_t amoadd_d(volatile uint64_t *p, uint64_t v) {
  uint64_t old;
  __asm__ volatile("amoadd.d %0, %2, (%1)" : "=r"(old) : "r"(p), "r"(v) : "memory");
  return old;
}

static inline uint32_t amoadd_w(volatile uint32_t *p, uint32_t v) {
  uint32_t old;
  __asm__ volatile("amoadd.w %0, %2, (%1)" : "=r"(old) : "r"(p), "r"(v) : "memory");
  return old;
}

static inline void amoxor_w(volatile uint32_t *p, uint32_t v) {
  __asm__ volatile("amoxor.w zero, %1, (%0)" : : "r"(p), "r"(v) : "memory");
}

static inline void amoor_w(volatile uint32_t *p, uint32_t v) {
  __asm__ volatile("amoor.w.aq zero, %1, (%0)" : : "r"(p), "r"(v) : "memory");
}

static inline void amoand_w(volatile uint32_t *p, uint32_t v) {
  __asm__ volatile("amoand.w.rl zero, %1, (%0)" : : "r"(p), "r"(v) : "memory");
}

static inline void amomax_d(volatile int64_t *p, int64_t v) {
  __asm__ volatile("amomax.d zero, %1, (%0)" : : "r"(p), "r"(v) : "memory");
}

static inline void amomin_d(volatile int64_t *p, int64_t v) {
  __asm__ volatile("amomin.d zero, %1, (%0)" : : "r"(p), "r"(v) : "memory");
}

/* An atomic add as an LR/SC loop (the constrained form of ISA §8.3). */
static inline void lrsc_add_d(volatile uint64_t *p, uint64_t v) {
  uint64_t old, tmp;
  __asm__ volatile("1: lr.d %0, (%2)\n  add %1, %0, %3\n  sc.d %1, %1, (%2)\n  bnez %1, 1b"
                   : "=&r"(old), "=&r"(tmp) : "r"(p), "r"(v) : "memory");
}

static inline void acquire(volatile uint32_t *l) {
  uint32_t tmp;
  __asm__ volatile("1: lr.w.aq %0, (%1)\n  bnez %0, 1b\n  sc.w %0, %2, (%1)\n  bnez %0, 1b"
                   : "=&r"(tmp) : "r"(l), "r"(1) : "memory");
}

static inline void release(volatile uint32_t *l) {
  __asm__ volatile("amoswap.w.rl zero, zero, (%0)" : : "r"(l) : "memory");
}

static void barrier(uint32_t *sense) {
  uint32_t s = !*sense;
  *sense = s;
  if (amoadd_w(&barrier_count, 1) == HARTS - 1) {
    barrier_count = 0;
    __atomic_store_n(&barrier_sense, s, __ATOMIC_RELEASE);
  } else {
    while (__atomic_load_n(&barrier_sense, __ATOMIC_ACQUIRE) != s) {}
  }
}

static uint64_t next_random(uint64_t x) {
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return x;
}

/* The k-th data word of message i from hart `from`. */
static uint64_t message_word(uint64_t i, long from, int k) {
  return (i * 4 + (uint64_t)k + (uint64_t)from * 1000003u) * BOTH_HALVES;
}

static void send(struct mailbox *out, uint64_t i, long hart) {
  // Wait until the receiver has read message i - 1 (its ack), then publish message i.
  while (out->ack != (i - 1) * BOTH_HALVES) {}
  __asm__ volatile("fence r, w" ::: "memory");
  for (int k = 0; k < 4; k++) out->data[k] = message_word(i, hart, k);
  __asm__ volatile("fence w, w" ::: "memory");
  out->seq = i * BOTH_HALVES;
}

static void receive(struct mailbox *in, uint64_t i, long from) {
  for (;;) {
    uint64_t seq = in->seq;
    if (seq == i * BOTH_HALVES) break;
    if (seq != (i - 1) * BOTH_HALVES) fail(4);  // a torn doubleword
  }
  __asm__ volatile("fence r, r" ::: "memory");
  for (int k = 0; k < 4; k++) {
    if (in->data[k] != message_word(i, from, k)) fail(3);
  }
  __asm__ volatile("fence r, w" ::: "memory");
  in->ack = i * BOTH_HALVES;
}

long hart_main(long hart) {
  uint32_t sense = 0;
  uint64_t seed = (uint64_t)(hart + 1) * 0x9e3779b97f4a7c15ull;
  int64_t mine_max = INT64_MIN, mine_min = INT64_MAX;
  const uint32_t bit = 1u << hart;
  const long from = (hart + HARTS - 1) % HARTS;
  barrier(&sense);
  for (uint64_t i = 1; i <= ITERATIONS; i++) {
    amoadd_d(&add64, (uint64_t)hart + 1);
    amoadd_w(&add32, 1);
    lrsc_add_d(&lrsc64, 3);
    amoxor_w(&xor32, (uint32_t)seed);
    // My bit, set by me, can be cleared by nobody else.
    amoor_w(&bits32, bit);
    if ((bits32 & bit) == 0) fail(5);
    amoand_w(&bits32, ~bit);

    acquire(&locked.lock);
    if (locked.record[0] != locked.record[1]) fail(2);
    uint64_t g = locked.guarded;
    locked.record[0] = (g + 1) * BOTH_HALVES;
    locked.guarded = g + 1;
    locked.record[1] = (g + 1) * BOTH_HALVES;
    release(&locked.lock);

    amoxor_w(&xor32, (uint32_t)seed);  // the same value again: the word's total effect is nothing
    seed = next_random(seed);
    int64_t v = (int64_t)seed;
    if (v > mine_max) mine_max = v;
    if (v < mine_min) mine_min = v;
    amomax_d(&maximum, v);
    amomin_d(&minimum, v);

    if (HARTS > 1) {
      send(&boxes[(hart + 1) % HARTS], i, hart);
      receive(&boxes[hart], i, from);
    }
  }
  local_max[hart] = mine_max;
  local_min[hart] = mine_min;
  barrier(&sense);
  if (hart != 0) return 0;

  if (add64 != (uint64_t)ITERATIONS * HARTS * (HARTS + 1) / 2) return 10;
  if (add32 != (uint32_t)((uint64_t)ITERATIONS * HARTS)) return 11;
  if (lrsc64 != 3ull * ITERATIONS * HARTS) return 12;
  if (locked.guarded != (uint64_t)ITERATIONS * HARTS) return 13;
  if (xor32 != 0 || bits32 != 0) return 14;
  int64_t all_max = INT64_MIN, all_min = INT64_MAX;
  for (int h = 0; h < HARTS; h++) {
    if (local_max[h] > all_max) all_max = local_max[h];
    if (local_min[h] < all_min) all_min = local_min[h];
  }
  if (maximum != all_max || minimum != all_min) return 15;
  return 0;
}
