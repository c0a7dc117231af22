/* Mirrorball workloads: one static multi-call binary (like busybox), dispatched on the name it runs as. */
#include "common.h"

#include <stdio.h>
#include <string.h>

/*
 * One binary for all workloads keeps the initramfs small: a static glibc program costs about 400 KiB,
 * paid once here instead of once per workload. /usr/bin/cpubench etc. are symlinks to /usr/bin/mbwork.
 */
static const struct {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *what;
} workloads[] = {
	{ "cpubench", cpubench_main, "CPU-bound kernels (sieve, sort, matrix, CRC, queens, words): a score" },
	{ "membench", membench_main, "memory bandwidth and latency over a large working set" },
	{ "pmake", pmake_main, "parallel make: many short-lived processes doing file I/O and text processing" },
	{ "raytrace", raytrace_main, "threads ray tracing a large shared scene (NUMA-sensitive)" },
	{ "dbbench", dbbench_main, "a scripted sqlite3 load: inserts, indexed updates, joins" },
	{ "engineering", engineering_main, "independent processes simulating logic and a memory system over large private working sets" },
	{ "wshare", wshare_main, "threads reading and writing the same few pages (write-shared)" },
	{ "mbctl", mbctl_main, "not a workload: asks the machine for timing mode and statistics (mbctl -h)" },
};

static int dispatch(const char *name, int argc, char **argv)
{
	const char *base = strrchr(name, '/');
	base = base != NULL ? base + 1 : name;
	for (size_t i = 0; i < sizeof workloads / sizeof workloads[0]; i++) {
		if (strcmp(base, workloads[i].name) == 0)
			return workloads[i].main(argc, argv);
	}
	return -1;
}

int main(int argc, char **argv)
{
	int status = dispatch(argv[0], argc, argv);
	if (status >= 0)
		return status;
	if (argc > 1) {
		status = dispatch(argv[1], argc - 1, argv + 1);
		if (status >= 0)
			return status;
	}
	fprintf(stderr, "usage: mbwork WORKLOAD [OPTIONS]  (or run it as WORKLOAD; -h for its options)\n");
	for (size_t i = 0; i < sizeof workloads / sizeof workloads[0]; i++)
		fprintf(stderr, "  %-11s %s\n", workloads[i].name, workloads[i].what);
	return 2;
}
