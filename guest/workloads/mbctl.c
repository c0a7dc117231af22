/* mbctl: asks the Mirrorball machine for simulation services from inside the guest, through the control
 * device ("mirrorball,control" in the device tree) mapped with /dev/mem. Not a workload: a tool that the
 * workloads' scripts put around the part they measure (docs/timing.md, "Guest control"). */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CONTROL_BASE 0x110000
#define CONTROL_SIZE 4096
#define REG_MAGIC 0x00
#define REG_ARGUMENT 0x08
#define REG_REQUEST 0x0c
#define REG_RESULT 0x10
#define MAGIC 0x3143424du /* "MBC1" */

enum { ROI_BEGIN = 0, ROI_END = 1, STATS_DUMP = 2, STATS_RESET = 3, QUERY_MODE = 4 };
#define NOT_SUPPORTED (-2)

static const char usage[] =
	"usage: mbctl roi begin|end        timing mode on (begin) or off (end) around a region of interest\n"
	"       mbctl stats dump [TAG]     snapshot the statistics, tagged TAG (default 0)\n"
	"       mbctl stats reset          start the statistics from zero\n"
	"       mbctl mode                 print the machine's mode: fast or timing\n"
	"The machine must run with a timing configuration (mirrorball run --timing roi).\n";

static volatile uint32_t *map_control(void)
{
	int fd = open("/dev/mem", O_RDWR | O_SYNC);
	if (fd < 0) {
		fprintf(stderr, "mbctl: cannot open /dev/mem: %s\n", strerror(errno));
		return NULL;
	}
	void *page = mmap(NULL, CONTROL_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, CONTROL_BASE);
	close(fd);
	if (page == MAP_FAILED) {
		fprintf(stderr, "mbctl: cannot map the control device: %s\n", strerror(errno));
		return NULL;
	}
	volatile uint32_t *regs = page;
	if (regs[REG_MAGIC / 4] != MAGIC) {
		fprintf(stderr, "mbctl: no Mirrorball control device at 0x%x (not a Mirrorball machine?)\n", CONTROL_BASE);
		return NULL;
	}
	return regs;
}

/* Runs one request; returns its result (negative: an SBI error code). */
static int32_t request(volatile uint32_t *regs, uint32_t what, uint32_t argument)
{
	regs[REG_ARGUMENT / 4] = argument;
	regs[REG_REQUEST / 4] = what;
	return (int32_t)regs[REG_RESULT / 4];
}

int mbctl_main(int argc, char **argv)
{
	uint32_t what;
	uint32_t argument = 0;
	if (argc == 3 && strcmp(argv[1], "roi") == 0 && strcmp(argv[2], "begin") == 0) what = ROI_BEGIN;
	else if (argc == 3 && strcmp(argv[1], "roi") == 0 && strcmp(argv[2], "end") == 0) what = ROI_END;
	else if ((argc == 3 || argc == 4) && strcmp(argv[1], "stats") == 0 && strcmp(argv[2], "dump") == 0) {
		what = STATS_DUMP;
		if (argc == 4) {
			char *end;
			unsigned long tag = strtoul(argv[3], &end, 0);
			if (*argv[3] == '\0' || *end != '\0' || tag > 0xffffffffu) {
				fprintf(stderr, "mbctl: the tag must be a number from 0 to 4294967295, not '%s'\n", argv[3]);
				return 2;
			}
			argument = (uint32_t)tag;
		}
	} else if (argc == 3 && strcmp(argv[1], "stats") == 0 && strcmp(argv[2], "reset") == 0) what = STATS_RESET;
	else if (argc == 2 && strcmp(argv[1], "mode") == 0) what = QUERY_MODE;
	else {
		fputs(usage, argc == 2 && strcmp(argv[1], "-h") == 0 ? stdout : stderr);
		return argc == 2 && strcmp(argv[1], "-h") == 0 ? 0 : 2;
	}
	volatile uint32_t *regs = map_control();
	if (regs == NULL)
		return 1;
	int32_t result = request(regs, what, argument);
	if (result == NOT_SUPPORTED) {
		fprintf(stderr, "mbctl: the machine has no timing configuration (run it with --timing roi)\n");
		return 1;
	}
	if (result < 0) {
		fprintf(stderr, "mbctl: the machine refused the request (error %d)\n", (int)result);
		return 1;
	}
	if (what == QUERY_MODE)
		puts(result == 1 ? "timing" : "fast");
	return 0;
}
