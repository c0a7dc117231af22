/* durable: writes numbered records and says a record's number only once fsync has made it durable. The
 * guest side of the power-loss test (test/e2e/power-loss.test.ts, docs/disks.md); not a workload. */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
	"usage: durable [-n COUNT] [-a ACK-FILE] DIR\n"
	"For N = 1 ... COUNT (default 50) makes record N durable three ways in DIR, then writes the line\n"
	"\"DURABLE N\" to ACK-FILE (default: standard output):\n"
	"  appended to DIR/log, then fsync of the log;\n"
	"  as the new file DIR/records/N, then fsync of the file and of DIR/records;\n"
	"  as DIR/latest, replaced whole: written to DIR/latest.tmp, fsync, renamed over DIR/latest, fsync of DIR.\n"
	"Record N is \"record \", N in 8 digits, a space, 20 + (37 N mod 1200) letters and a newline; letter i is\n"
	"'a' + (N + 7 i) mod 26.\n";

#define MAX_RECORD (7 + 8 + 1 + 20 + 1200 + 1)

static size_t record(unsigned n, char *out)
{
	size_t length = (size_t)sprintf(out, "record %08u ", n);
	size_t letters = 20 + (37u * n) % 1200;
	for (size_t i = 0; i < letters; i++)
		out[length++] = (char)('a' + (n + 7 * i) % 26);
	out[length++] = '\n';
	return length;
}

static void fail(const char *what, const char *path)
{
	fprintf(stderr, "durable: %s %s: %s\n", what, path, strerror(errno));
	exit(1);
}

static void write_all(int fd, const char *data, size_t length, const char *path)
{
	while (length > 0) {
		ssize_t n = write(fd, data, length);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fail("cannot write", path);
		data += n;
		length -= (size_t)n;
	}
}

static void sync_fd(int fd, const char *path)
{
	if (fsync(fd) != 0)
		fail("cannot fsync", path);
}

static int open_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		fail("cannot open", path);
	return fd;
}

int durable_main(int argc, char **argv)
{
	long count = 50;
	const char *ack_path = NULL;
	int opt;
	while ((opt = getopt(argc, argv, "n:a:h")) != -1) {
		if (opt == 'n')
			count = mb_parse_long(optarg, "count", 1, 99999999);
		else if (opt == 'a')
			ack_path = optarg;
		else
			mb_usage(usage);
	}
	if (optind != argc - 1)
		mb_usage(usage);
	const char *dir = argv[optind];

	char log_path[4096], records_path[4096], latest_path[4096], temporary_path[4096], file_path[4200];
	snprintf(log_path, sizeof log_path, "%s/log", dir);
	snprintf(records_path, sizeof records_path, "%s/records", dir);
	snprintf(latest_path, sizeof latest_path, "%s/latest", dir);
	snprintf(temporary_path, sizeof temporary_path, "%s/latest.tmp", dir);

	int ack = STDOUT_FILENO;
	if (ack_path != NULL && (ack = open(ack_path, O_WRONLY | O_NOCTTY | O_APPEND)) < 0)
		fail("cannot open", ack_path);
	int dir_fd = open_dir(dir);
	if (mkdir(records_path, 0755) != 0)
		fail("cannot create", records_path);
	sync_fd(dir_fd, dir);
	int records_fd = open_dir(records_path);
	int log = open(log_path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND, 0644);
	if (log < 0)
		fail("cannot create", log_path);
	sync_fd(dir_fd, dir);

	char text[MAX_RECORD];
	for (unsigned n = 1; n <= (unsigned)count; n++) {
		size_t length = record(n, text);

		write_all(log, text, length, log_path);
		sync_fd(log, log_path);

		snprintf(file_path, sizeof file_path, "%s/%u", records_path, n);
		int file = open(file_path, O_WRONLY | O_CREAT | O_EXCL, 0644);
		if (file < 0)
			fail("cannot create", file_path);
		write_all(file, text, length, file_path);
		sync_fd(file, file_path);
		close(file);
		sync_fd(records_fd, records_path);

		int temporary = open(temporary_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (temporary < 0)
			fail("cannot create", temporary_path);
		write_all(temporary, text, length, temporary_path);
		sync_fd(temporary, temporary_path);
		close(temporary);
		if (rename(temporary_path, latest_path) != 0)
			fail("cannot rename over", latest_path);
		sync_fd(dir_fd, dir);

		/* Only now is record n durable: say so. */
		char line[32];
		int line_length = snprintf(line, sizeof line, "DURABLE %u\n", n);
		write_all(ack, line, (size_t)line_length, ack_path != NULL ? ack_path : "standard output");
	}
	return 0;
}
