/* A memory-bound bare-metal benchmark: a working set of 4 MiB, four times the cache model's default
   (1 MiB per CPU), read by pointer chasing (one dependent load per 128-byte line, in a random cyclic
   order) and by streaming (read, add, write back every doubleword). Returns 0 when the chase closes. */
#include <stdint.h>

#define BYTES (4u << 20)
#define LINE_WORDS 16                 /* 128 bytes: one node per cache line */
#define NODES (BYTES / 8 / LINE_WORDS)
static uint64_t heap[BYTES / 8];

volatile uint64_t result;

int main(void) {
    /* Sattolo's shuffle of the identity: one cycle through every node, in a random order. */
    for (uint32_t i = 0; i < NODES; i++) heap[i * LINE_WORDS] = i;
    uint32_t seed = 2463534242u;
    for (uint32_t i = NODES - 1; i > 0; i--) {
        seed ^= seed << 13; seed ^= seed >> 17; seed ^= seed << 5;
        uint32_t j = seed % i;
        uint64_t t = heap[i * LINE_WORDS];
        heap[i * LINE_WORDS] = heap[j * LINE_WORDS];
        heap[j * LINE_WORDS] = t;
    }
    uint64_t sum = 0;
    for (int round = 0; round < ITERATIONS; round++) {
        uint64_t p = 0;
        for (uint32_t k = 0; k < NODES; k++) p = heap[p * LINE_WORDS];
        if (p != 0) return 2;
        /* Streaming over the other words of each line, so the chase's pointers stay intact. */
        for (uint32_t i = 0; i < BYTES / 8; i++) {
            if ((i & (LINE_WORDS - 1)) == 0) continue;
            sum += heap[i];
            heap[i] = sum;
        }
    }
    result = sum;
    return 0;
}
