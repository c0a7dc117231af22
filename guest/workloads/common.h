/* Mirrorball workloads: what every workload shares (timing, sizes, a checksum, the result line). */
#ifndef MB_COMMON_H
#define MB_COMMON_H

#include <stddef.h>
#include <stdint.h>

/*
 * Every workload ends by printing exactly one line
 *   RESULT <name> elapsed=<seconds> checksum=<16 hex digits> [<key>=<value> ...]
 * on standard output and exits 0, or prints a message on standard error and exits non-zero. The checksum
 * depends only on the workload's parameters (never on timing, thread count or the machine), so a run can
 * be compared with a reference run of the same parameters on the host: a wrong result is caught.
 * Only integer arithmetic and IEEE operations that every platform rounds the same way (+ - * / sqrt,
 * without fused multiply-add) feed the checksums.
 */

/* Monotonic guest time in seconds. */
double mb_now(void);

/* "64M", "512K", "1G" or a plain number of bytes; exits with a message when not valid. */
uint64_t mb_parse_size(const char *text, const char *what);

/* A decimal integer in [min, max]; exits with a message when not valid. */
long mb_parse_long(const char *text, const char *what, long min, long max);

/* The number of online CPUs (at least 1). */
int mb_cpus(void);

/* malloc that exits with a message when memory runs out. */
void *mb_alloc(size_t bytes, const char *what);

/* Checksum combining: order-sensitive, 64-bit. */
uint64_t mb_mix(uint64_t hash, uint64_t value);
uint64_t mb_mix_bytes(uint64_t hash, const void *data, size_t length);
#define MB_CHECKSUM_SEED 0x6d6972726f72ULL

/* A deterministic pseudo-random generator (splitmix64), the same on every platform. */
uint64_t mb_random(uint64_t *state);

/*
 * Input seeds (-S SEED in every workload): a seed changes a workload's input (a scene, a netlist, a trace,
 * the text it compiles) but not the amount of work, so that runs of an experiment can differ. Seed 0, the
 * default, is the reference input: `mb_seeded(base, 0)` is `base`, so a command without -S prints the
 * checksum it printed before seeds existed.
 */
uint64_t mb_parse_seed(const char *text);
uint64_t mb_seeded(uint64_t base, uint64_t seed);

/* Prints the RESULT line; `extra` is printf-formatted "key=value ..." text, or NULL. */
void mb_result(const char *name, double elapsed, uint64_t checksum, const char *extra, ...)
	__attribute__((format(printf, 4, 5)));

/* Prints the usage on standard error and exits with status 2. */
_Noreturn void mb_usage(const char *usage);

/* The workloads, dispatched by mbwork.c on the name the binary was called by. */
int cpubench_main(int argc, char **argv);
int membench_main(int argc, char **argv);
int pmake_main(int argc, char **argv);
int raytrace_main(int argc, char **argv);
int dbbench_main(int argc, char **argv);
int engineering_main(int argc, char **argv);
int wshare_main(int argc, char **argv);
int mbctl_main(int argc, char **argv);

#endif
