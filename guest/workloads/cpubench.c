/* Mirrorball workload "cpubench": CPU-bound kernels in rounds; prints rounds per second as the score. */
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * Each round runs six small kernels whose data fit in a first-level cache, so the score measures the
 * CPU (integer, branches, floating point, loads/stores) and not memory: a sieve, a quicksort, a matrix
 * product, a table-driven CRC-32, the 8-queens search and a word-count hash table. Inputs vary with the
 * round number so no round can be skipped, and every result feeds the checksum.
 */

#define SIEVE_LIMIT 100000
#define SORT_COUNT 16384
#define MATRIX_N 40
#define CRC_BYTES 65536
#define QUEENS 8
#define WORDS 12000
#define WORD_TABLE 16384 /* power of two, at least twice the distinct words (4^2 + ... + 4^7 < 22000) */
#define WORD_TABLE_FULL (WORD_TABLE * 3 / 4)

static const char usage[] =
	"usage: cpubench [-n ROUNDS] [-S SEED]\n"
	"  -n ROUNDS  rounds of the six kernels (default 300, a few seconds on a 1 GHz core)\n"
	"  -S SEED    input seed: other data to sort, multiply, checksum and count, the same amount of work (default 0)\n";

static uint64_t sieve(unsigned char *composite, uint32_t limit)
{
	memset(composite, 0, limit + 1);
	uint64_t count = 0, sum = 0;
	for (uint32_t i = 2; i <= limit; i++) {
		if (composite[i])
			continue;
		count++;
		sum += i;
		for (uint64_t j = (uint64_t)i * i; j <= limit; j += i)
			composite[j] = 1;
	}
	return (count << 32) ^ sum;
}

static void quicksort(uint32_t *a, long lo, long hi)
{
	while (lo < hi) {
		uint32_t pivot = a[lo + (hi - lo) / 2];
		long i = lo, j = hi;
		while (i <= j) {
			while (a[i] < pivot)
				i++;
			while (a[j] > pivot)
				j--;
			if (i <= j) {
				uint32_t t = a[i];
				a[i++] = a[j];
				a[j--] = t;
			}
		}
		/* Recurse into the smaller side, loop on the larger: bounded stack depth. */
		if (j - lo < hi - i) {
			quicksort(a, lo, j);
			lo = i;
		} else {
			quicksort(a, i, hi);
			hi = j;
		}
	}
}

static uint64_t sort_round(uint32_t *a, uint64_t seed)
{
	for (int i = 0; i < SORT_COUNT; i++)
		a[i] = (uint32_t)mb_random(&seed);
	quicksort(a, 0, SORT_COUNT - 1);
	uint64_t h = 0;
	for (int i = 0; i < SORT_COUNT; i += 97)
		h = mb_mix(h, a[i]);
	for (int i = 1; i < SORT_COUNT; i++) {
		if (a[i - 1] > a[i]) {
			fprintf(stderr, "cpubench: sort produced a wrong order\n");
			exit(1);
		}
	}
	return h;
}

static uint64_t matrix_round(double *a, double *b, double *c, uint64_t seed)
{
	for (int i = 0; i < MATRIX_N * MATRIX_N; i++) {
		a[i] = (double)(mb_random(&seed) % 1000) / 64.0;
		b[i] = (double)(mb_random(&seed) % 1000) / 32.0;
	}
	for (int i = 0; i < MATRIX_N; i++) {
		for (int j = 0; j < MATRIX_N; j++) {
			double sum = 0.0;
			for (int k = 0; k < MATRIX_N; k++)
				sum += a[i * MATRIX_N + k] * b[k * MATRIX_N + j];
			c[i * MATRIX_N + j] = sum;
		}
	}
	double trace = 0.0;
	for (int i = 0; i < MATRIX_N; i++)
		trace += c[i * MATRIX_N + i];
	/* Products of multiples of 1/64 and 1/32 below 2^10 are exact in a double: the trace is exact. */
	return (uint64_t)(trace * 2048.0);
}

static uint32_t crc_table[256];

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
}

static uint64_t crc_round(unsigned char *buffer, uint64_t seed)
{
	for (int i = 0; i < CRC_BYTES; i += 8) {
		uint64_t r = mb_random(&seed);
		memcpy(buffer + i, &r, 8);
	}
	uint32_t crc = 0xffffffffu;
	for (int i = 0; i < CRC_BYTES; i++)
		crc = crc_table[(crc ^ buffer[i]) & 0xff] ^ (crc >> 8);
	return crc ^ 0xffffffffu;
}

static uint64_t queens(int row, uint32_t cols, uint32_t diag1, uint32_t diag2)
{
	if (row == QUEENS)
		return 1;
	uint64_t n = 0;
	uint32_t free = ~(cols | diag1 | diag2) & ((1u << QUEENS) - 1);
	while (free) {
		uint32_t bit = free & -free;
		free ^= bit;
		n += queens(row + 1, cols | bit, (diag1 | bit) << 1, (diag2 | bit) >> 1);
	}
	return n;
}

static uint64_t words_round(uint64_t seed)
{
	static uint32_t keys[WORD_TABLE], counts[WORD_TABLE];
	memset(keys, 0, sizeof keys);
	memset(counts, 0, sizeof counts);
	uint64_t distinct = 0;
	for (int w = 0; w < WORDS; w++) {
		/* A word of 2-7 letters from a 4-letter alphabet, hashed with FNV-1a as it is "read". */
		uint64_t r = mb_random(&seed);
		int length = 2 + (int)(r % 6);
		uint32_t h = 2166136261u;
		for (int i = 0; i < length; i++) {
			unsigned letter = 'a' + (unsigned)((r >> (8 + 2 * i)) & 3);
			h = (h ^ letter) * 16777619u;
		}
		if (h == 0)
			h = 1;
		uint32_t slot = h & (WORD_TABLE - 1);
		while (keys[slot] != 0 && keys[slot] != h)
			slot = (slot + 1) & (WORD_TABLE - 1);
		if (keys[slot] == 0) {
			if (distinct == WORD_TABLE_FULL)
				continue; /* never fill the table: probing must always find a free slot */
			keys[slot] = h;
			distinct++;
		}
		counts[slot]++;
	}
	uint64_t sum = distinct;
	for (int i = 0; i < WORD_TABLE; i++)
		sum = sum * 31 + counts[i] * (uint64_t)keys[i];
	return sum;
}

int cpubench_main(int argc, char **argv)
{
	long rounds = 300;
	uint64_t input = 0;
	int opt;
	while ((opt = getopt(argc, argv, "n:S:h")) != -1) {
		if (opt == 'n')
			rounds = mb_parse_long(optarg, "round count", 1, 1000000000);
		else if (opt == 'S')
			input = mb_parse_seed(optarg);
		else
			mb_usage(usage);
	}
	if (optind != argc)
		mb_usage(usage);

	unsigned char *composite = mb_alloc(SIEVE_LIMIT + 1, "the sieve");
	uint32_t *numbers = mb_alloc(SORT_COUNT * sizeof *numbers, "the sort");
	double *matrices = mb_alloc(3 * MATRIX_N * MATRIX_N * sizeof *matrices, "the matrices");
	unsigned char *buffer = mb_alloc(CRC_BYTES, "the CRC buffer");
	crc_init();

	double start = mb_now();
	uint64_t checksum = MB_CHECKSUM_SEED;
	for (long round = 0; round < rounds; round++) {
		uint64_t seed = mb_seeded((uint64_t)round * 0x100000001b3ULL, input);
		checksum = mb_mix(checksum, sieve(composite, SIEVE_LIMIT - (uint32_t)(round % 1000)));
		checksum = mb_mix(checksum, sort_round(numbers, seed));
		checksum = mb_mix(checksum, matrix_round(matrices, matrices + MATRIX_N * MATRIX_N, matrices + 2 * MATRIX_N * MATRIX_N, seed));
		checksum = mb_mix(checksum, crc_round(buffer, seed));
		uint64_t solutions = queens(0, 0, 0, 0);
		if (solutions != 92) {
			fprintf(stderr, "cpubench: %d-queens found %llu solutions, not 92\n", QUEENS, (unsigned long long)solutions);
			return 1;
		}
		checksum = mb_mix(checksum, solutions);
		checksum = mb_mix(checksum, words_round(seed));
	}
	double elapsed = mb_now() - start;
	mb_result("cpubench", elapsed, checksum, "rounds=%ld score=%.2f", rounds, elapsed > 0 ? (double)rounds / elapsed : 0.0);
	free(composite);
	free(numbers);
	free(matrices);
	free(buffer);
	return 0;
}
