/* Mirrorball workloads: the shared helpers declared in common.h. */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double mb_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t mb_parse_size(const char *text, const char *what)
{
	char *end;
	errno = 0;
	unsigned long long value = strtoull(text, &end, 10);
	unsigned shift = 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	}
	if (errno != 0 || end == text || *end != '\0' || value == 0 || value > (UINT64_MAX >> shift)) {
		fprintf(stderr, "bad %s: %s (a size such as 4096, 512K, 64M or 1G)\n", what, text);
		exit(2);
	}
	return (uint64_t)value << shift;
}

long mb_parse_long(const char *text, const char *what, long min, long max)
{
	char *end;
	errno = 0;
	long value = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || value < min || value > max) {
		fprintf(stderr, "bad %s: %s (an integer from %ld to %ld)\n", what, text, min, max);
		exit(2);
	}
	return value;
}

int mb_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : (int)n;
}

void *mb_alloc(size_t bytes, const char *what)
{
	void *p = malloc(bytes ? bytes : 1);
	if (p == NULL) {
		fprintf(stderr, "out of memory allocating %zu bytes for %s\n", bytes, what);
		exit(1);
	}
	return p;
}

/* A multiply-xorshift finalizer (the splitmix64/Murmur3 mixer) over hash + value. */
uint64_t mb_mix(uint64_t hash, uint64_t value)
{
	uint64_t x = (hash ^ value) + 0x9e3779b97f4a7c15ULL + (hash << 6) + (hash >> 2);
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

uint64_t mb_mix_bytes(uint64_t hash, const void *data, size_t length)
{
	const unsigned char *p = data;
	uint64_t word = 0;
	size_t i;
	for (i = 0; i < length; i++) {
		word = (word << 8) | p[i];
		if ((i & 7) == 7) {
			hash = mb_mix(hash, word);
			word = 0;
		}
	}
	return mb_mix(hash, word ^ ((uint64_t)length << 56));
}

uint64_t mb_random(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

uint64_t mb_parse_seed(const char *text)
{
	return (uint64_t)mb_parse_long(text, "seed", 0, 0x7fffffffL);
}

uint64_t mb_seeded(uint64_t base, uint64_t seed)
{
	return seed == 0 ? base : mb_mix(base, seed);
}

void mb_result(const char *name, double elapsed, uint64_t checksum, const char *extra, ...)
{
	printf("RESULT %s elapsed=%.6f checksum=%016" PRIx64, name, elapsed, checksum);
	if (extra != NULL) {
		va_list ap;
		va_start(ap, extra);
		putchar(' ');
		vprintf(extra, ap);
		va_end(ap);
	}
	putchar('\n');
	fflush(stdout);
}

_Noreturn void mb_usage(const char *usage)
{
	fputs(usage, stderr);
	exit(2);
}
