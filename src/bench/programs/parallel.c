/* The parallel benchmark (docs/threads.md): every hart does the same CPU-bound work on its own data, the
   cpu benchmark's kernels, then hart 0 waits for all and checks that every hart got the same checksum.
   Nothing is shared while they work, so its speed-up on host threads is the threads' own. */
#include <stdint.h>

#ifndef HARTS
#define HARTS 2
#endif
#ifndef ITERATIONS
#define ITERATIONS 10
#endif

#define N 2048
#define LINE __attribute__((aligned(64)))

static struct { uint32_t data[N]; uint8_t sieve[65536]; } LINE work[HARTS];
static volatile uint64_t sums[HARTS * 8] LINE;  /* one line per hart */
static volatile uint32_t finished LINE;

static uint32_t crc32(const uint8_t *p, int n, uint32_t crc) {
    crc = ~crc;
    for (int i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xedb88320u & -(crc & 1));
    }
    return ~crc;
}

static uint32_t primes(uint8_t *sieve) {
    uint32_t count = 0;
    for (int i = 0; i < 65536; i++) sieve[i] = 1;
    for (int i = 2; i < 65536; i++) {
        if (!sieve[i]) continue;
        count++;
        for (int j = i * 2; j < 65536; j += i) sieve[j] = 0;
    }
    return count;
}

static void sort(uint32_t *a, int n) {
    for (int gap = n / 2; gap > 0; gap /= 2)
        for (int i = gap; i < n; i++) {
            uint32_t t = a[i];
            int j = i;
            for (; j >= gap && a[j - gap] > t; j -= gap) a[j] = a[j - gap];
            a[j] = t;
        }
}

static uint64_t arith(int rounds) {
    uint64_t x = 88172645463325252ull, acc = 0;
    for (int i = 1; i <= rounds; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        acc += (x % (uint64_t)(i + 7)) * 3 + (x / (uint64_t)(i | 1));
    }
    return acc;
}

long hart_main(long hart) {
    uint32_t *data = work[hart].data;
    uint64_t sum = 0;
    for (int round = 0; round < ITERATIONS; round++) {
        uint32_t seed = 12345 + round;
        for (int i = 0; i < N; i++) { seed = seed * 1103515245u + 12345u; data[i] = seed >> 8; }
        sort(data, N);
        for (int i = 1; i < N; i++) if (data[i - 1] > data[i]) return 2;
        sum += crc32((const uint8_t *)data, sizeof work[hart].data, 0);
        sum += primes(work[hart].sieve);
        sum += arith(20000);
    }
    sums[hart * 8] = sum;
    __atomic_fetch_add(&finished, 1, __ATOMIC_RELEASE);
    if (hart != 0) return 0;
    while (__atomic_load_n(&finished, __ATOMIC_ACQUIRE) != HARTS) {}
    for (int h = 1; h < HARTS; h++) if (sums[h * 8] != sums[0]) return 3;
    return 0;
}
