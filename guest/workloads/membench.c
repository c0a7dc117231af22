/* Mirrorball workload "membench": memory bandwidth (read, write, copy) and load latency over a working set. */
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * Bandwidth: REPS sequential passes reading (summing), writing and copying the working set, in MB/s
 * (10^6 bytes). Latency: a chain of dependent loads, one per 64-byte line, visiting every line of the
 * working set in a random cyclic order (Sattolo's shuffle), so neither prefetching nor overlapping can
 * hide a miss: nanoseconds per load. The default working set (64 MiB) is larger than the caches of the
 * machines this runs on, and than the emulator's cache model.
 */

#define LINE 64
#define WORDS_PER_LINE (LINE / sizeof(uint64_t))

static const char usage[] =
	"usage: membench [-m SIZE] [-r REPS] [-l LOADS] [-S SEED]\n"
	"  -m SIZE   working set (default 64M; K, M, G suffixes)\n"
	"  -r REPS   passes of each bandwidth test (default 4)\n"
	"  -l LOADS  dependent loads in the latency test (default 4000000)\n"
	"  -S SEED   input seed: another order of the latency test's loads, the same amount of work (default 0)\n";

static double mbps(uint64_t bytes, double seconds)
{
	return seconds > 0 ? (double)bytes / seconds / 1e6 : 0.0;
}

int membench_main(int argc, char **argv)
{
	uint64_t size = 64ULL << 20;
	long reps = 4, loads = 4000000;
	uint64_t input = 0;
	int opt;
	while ((opt = getopt(argc, argv, "m:r:l:S:h")) != -1) {
		if (opt == 'm')
			size = mb_parse_size(optarg, "working set size");
		else if (opt == 'r')
			reps = mb_parse_long(optarg, "repetitions", 1, 1000000);
		else if (opt == 'l')
			loads = mb_parse_long(optarg, "load count", 1, 1L << 40);
		else if (opt == 'S')
			input = mb_parse_seed(optarg);
		else
			mb_usage(usage);
	}
	if (optind != argc)
		mb_usage(usage);
	if (size < 2 * LINE) {
		fprintf(stderr, "membench: the working set must be at least %d bytes\n", 2 * LINE);
		return 2;
	}
	size -= size % (2 * LINE);
	size_t words = size / sizeof(uint64_t);
	size_t lines = size / LINE;

	double start = mb_now();
	uint64_t *data = mb_alloc(size, "the working set");
	uint64_t checksum = MB_CHECKSUM_SEED;

	/* Write: fill every word with a value of its index and the pass. */
	double t = mb_now();
	for (long r = 0; r < reps; r++) {
		uint64_t v = (uint64_t)r << 40;
		for (size_t i = 0; i < words; i++)
			data[i] = v + i;
	}
	double write_s = mb_now() - t;

	/* Read: sum every word. */
	t = mb_now();
	uint64_t sum = 0;
	for (long r = 0; r < reps; r++) {
		for (size_t i = 0; i < words; i++)
			sum += data[i] ^ (uint64_t)r;
	}
	double read_s = mb_now() - t;
	checksum = mb_mix(checksum, sum);

	/* Copy: the first half onto the second and back. */
	t = mb_now();
	size_t half = size / 2;
	for (long r = 0; r < reps; r++) {
		if (r & 1)
			memcpy(data, (char *)data + half, half);
		else
			memcpy((char *)data + half, data, half);
	}
	double copy_s = mb_now() - t;
	checksum = mb_mix(checksum, data[words / 2 - 1] + data[words - 1] + data[words / 3]);

	/* Latency: link the lines into one random cycle (the first word of each holds the next line). */
	uint64_t seed = mb_seeded(size, input);
	for (size_t i = 0; i < lines; i++)
		data[i * WORDS_PER_LINE] = i;
	for (size_t i = lines - 1; i > 0; i--) {
		size_t j = (size_t)(mb_random(&seed) % i); /* Sattolo: j < i gives a single cycle */
		uint64_t tmp = data[i * WORDS_PER_LINE];
		data[i * WORDS_PER_LINE] = data[j * WORDS_PER_LINE];
		data[j * WORDS_PER_LINE] = tmp;
	}
	t = mb_now();
	uint64_t at = 0;
	for (long n = 0; n < loads; n++)
		at = data[at * WORDS_PER_LINE];
	double chase_s = mb_now() - t;
	checksum = mb_mix(checksum, at);

	double elapsed = mb_now() - start;
	uint64_t moved = size * (uint64_t)reps;
	mb_result("membench", elapsed, checksum, "size=%llu read_mbps=%.1f write_mbps=%.1f copy_mbps=%.1f latency_ns=%.2f",
		  (unsigned long long)size, mbps(moved, read_s), mbps(moved, write_s), mbps(moved, copy_s),
		  chase_s * 1e9 / (double)loads);
	free(data);
	return 0;
}
