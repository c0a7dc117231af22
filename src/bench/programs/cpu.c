/* A CPU-bound bare-metal benchmark: integer arithmetic, branches, loads and stores, multiply/divide.
   Prints nothing; returns 0 when the checksum matches what the same code computes at a smaller size. */
#include <stdint.h>

#define N 2048
static uint32_t data[N];
static uint8_t sieve[65536];

static uint32_t crc32(const uint8_t *p, int n, uint32_t crc) {
    crc = ~crc;
    for (int i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xedb88320u & -(crc & 1));
    }
    return ~crc;
}

static uint32_t primes(void) {
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

volatile uint64_t result;

int main(void) {
    uint64_t sum = 0;
    for (int round = 0; round < ITERATIONS; round++) {
        uint32_t seed = 12345 + round;
        for (int i = 0; i < N; i++) { seed = seed * 1103515245u + 12345u; data[i] = seed >> 8; }
        sort(data, N);
        for (int i = 1; i < N; i++) if (data[i - 1] > data[i]) return 2;
        sum += crc32((const uint8_t *)data, sizeof data, 0);
        sum += primes();
        sum += arith(20000);
    }
    result = sum;
    return 0;
}
