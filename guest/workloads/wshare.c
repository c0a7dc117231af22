/* Mirrorball workload "wshare": threads that all read and write the same few pages, all the time. */
#define _GNU_SOURCE /* CPU_SET, pthread_setaffinity_np */
#include "common.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/*
 * The case a NUMA page-migration policy must leave alone (Disco, SOSP 1997, section 4.2: "write-shared
 * pages stay where they are"): every thread updates counters spread over the same PAGES pages with atomic
 * adds and reads others between its updates, so every page is missed on, read and written from every node
 * at once. Moving such a page only moves whose misses are remote, and a read-only copy would be collapsed
 * by the next write: the right action is none, and a policy that acts only costs time.
 *
 * Each update adds a pseudo-random amount to a pseudo-random counter; additions commute, so the counters'
 * final values, and the checksum over them, depend only on the parameters, not on how the threads
 * interleaved. What the reads see does depend on it: they only keep the caches' lines shared.
 */

static const char usage[] =
	"usage: wshare [-t THREADS] [-g PAGES] [-n UPDATES] [-r READS] [-S SEED] [-A]\n"
	"  -t THREADS  threads (default: the number of CPUs)\n"
	"  -g PAGES    shared pages of counters (default 4)\n"
	"  -n UPDATES  atomic updates per thread (default 1000000)\n"
	"  -r READS    reads of other counters after each update (default 3)\n"
	"  -S SEED     input seed: other counters and amounts, the same amount of work (default 0)\n"
	"  -A          pin thread i to CPU i (modulo the CPUs)\n";

#define PAGE_BYTES 4096

static struct {
	uint64_t *counters;
	uint64_t words; /* a power of two */
	long updates, reads;
	uint64_t seed;
	int affinity;
} shared;

static void *worker(void *arg)
{
	long id = (long)arg;
	if (shared.affinity) {
		cpu_set_t cpus;
		CPU_ZERO(&cpus);
		CPU_SET((int)(id % mb_cpus()), &cpus);
		pthread_setaffinity_np(pthread_self(), sizeof cpus, &cpus); /* best effort: placement, not results */
	}
	uint64_t random = mb_mix(mb_seeded(0x5a4eULL, shared.seed), (uint64_t)id), seen = 0;
	uint64_t mask = shared.words - 1;
	for (long i = 0; i < shared.updates; i++) {
		uint64_t r = mb_random(&random);
		__atomic_fetch_add(&shared.counters[r & mask], (r >> 32) | 1, __ATOMIC_RELAXED);
		uint64_t at = r >> 20;
		for (long k = 0; k < shared.reads; k++) {
			at = at * 6364136223846793005ULL + 1442695040888963407ULL;
			seen += __atomic_load_n(&shared.counters[(at >> 33) & mask], __ATOMIC_RELAXED);
		}
	}
	return (void *)(uintptr_t)seen; /* keeps the reads; not part of any result */
}

int wshare_main(int argc, char **argv)
{
	long threads = mb_cpus(), pages = 4;
	shared.updates = 1000000;
	shared.reads = 3;
	int opt;
	while ((opt = getopt(argc, argv, "t:g:n:r:S:Ah")) != -1) {
		switch (opt) {
		case 't': threads = mb_parse_long(optarg, "thread count", 1, 1024); break;
		case 'g': pages = mb_parse_long(optarg, "page count", 1, 1L << 20); break;
		case 'n': shared.updates = mb_parse_long(optarg, "update count", 1, 1L << 40); break;
		case 'r': shared.reads = mb_parse_long(optarg, "read count", 0, 1024); break;
		case 'S': shared.seed = mb_parse_seed(optarg); break;
		case 'A': shared.affinity = 1; break;
		default: mb_usage(usage);
		}
	}
	if (optind != argc)
		mb_usage(usage);
	/* Whole pages, a power-of-two number of counters: the pages are rounded down to a power of two. */
	long rounded = 1;
	while (rounded * 2 <= pages)
		rounded *= 2;
	pages = rounded;
	size_t bytes = (size_t)pages * PAGE_BYTES;
	shared.words = bytes / sizeof(uint64_t);
	shared.counters = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (shared.counters == MAP_FAILED) {
		perror("wshare: mmap");
		return 1;
	}
	memset(shared.counters, 0, bytes); /* the pages exist before the threads start */

	double start = mb_now();
	pthread_t *ids = mb_alloc((size_t)threads * sizeof(pthread_t), "the threads");
	for (long i = 0; i < threads; i++) {
		if (pthread_create(&ids[i], NULL, worker, (void *)i) != 0) {
			fprintf(stderr, "wshare: cannot create thread %ld\n", i);
			return 1;
		}
	}
	for (long i = 0; i < threads; i++)
		pthread_join(ids[i], NULL);
	double end = mb_now();

	uint64_t checksum = MB_CHECKSUM_SEED;
	for (uint64_t w = 0; w < shared.words; w++)
		checksum = mb_mix(checksum, shared.counters[w]);
	mb_result("wshare", end - start, checksum, "threads=%ld pages=%ld updates=%ld reads=%ld seed=%llu", threads, pages,
		  shared.updates, shared.reads, (unsigned long long)shared.seed);
	munmap(shared.counters, bytes);
	free(ids);
	return 0;
}
