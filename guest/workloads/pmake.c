/* Mirrorball workload "pmake": a parallel make of many small "compilations", each a few short-lived processes. */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * Like Disco's pmake (a parallel compilation), this is OS-intensive: process creation, exec, pipes, file
 * creation, reads, writes and deletion dominate. The steps:
 *   1. write FILES source files of LINES lines of pseudo-C text into a fresh directory;
 *   2. "compile" each, JOBS at a time: a child process execs this binary as the compiler (--cc), which
 *      forks and execs the "assembler" (--as) and pipes its output to it; the assembler writes an object;
 *   3. "link": read every object in order into one output file, then delete the tree.
 * The compiler lowercases identifiers, numbers the lines and hashes each token; the assembler keeps a
 * sorted table of token hashes per file. The checksum is over the linked output, so it does not depend
 * on JOBS or on the order in which the jobs finished.
 */

static const char usage[] =
	"usage: pmake [-j JOBS] [-n FILES] [-l LINES] [-d DIR] [-k] [-S SEED]\n"
	"  -j JOBS   compilations at a time (default: the number of CPUs)\n"
	"  -n FILES  source files (default 96)\n"
	"  -l LINES  lines per source file (default 1500)\n"
	"  -d DIR    where to make the work tree (default /tmp)\n"
	"  -k        keep the work tree\n"
	"  -S SEED   input seed: other source text, the same files and lines (default 0)\n";

static const char *const vocabulary[] = {
	"int", "static", "return", "if", "else", "while", "for", "struct", "unsigned", "char", "const", "void",
	"Buffer", "Count", "Index", "Next", "Node", "Value", "Table", "Hash", "Left", "Right", "Size", "Limit",
	"=", "+", "-", "*", "/", "(", ")", "{", "}", ";", "<", ">", "==", "!=", "&&", "||", "[", "]",
};
#define VOCABULARY (sizeof vocabulary / sizeof vocabulary[0])
#define MAX_TOKENS 65536

static void die(const char *what)
{
	fprintf(stderr, "pmake: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void write_all(int fd, const void *data, size_t length)
{
	const char *p = data;
	while (length > 0) {
		ssize_t n = write(fd, p, length);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("write");
		}
		p += n;
		length -= (size_t)n;
	}
}

/* root/f<index>.<ext>, or exit when it does not fit in a path. */
static void member_path(char *out, const char *root, long index, const char *ext)
{
	int n = index < 0 ? snprintf(out, PATH_MAX, "%s/%s", root, ext) : snprintf(out, PATH_MAX, "%s/f%04ld.%s", root, index, ext);
	if (n < 0 || n >= PATH_MAX) {
		errno = ENAMETOOLONG;
		die(root);
	}
}

static void generate(const char *path, long index, long lines, uint64_t input)
{
	FILE *f = fopen(path, "w");
	if (f == NULL)
		die(path);
	uint64_t seed = mb_seeded((uint64_t)index * 7919 + 1, input);
	for (long l = 0; l < lines; l++) {
		uint64_t r = mb_random(&seed);
		int tokens = 3 + (int)(r % 9);
		for (int t = 0; t < tokens; t++) {
			const char *word = vocabulary[mb_random(&seed) % VOCABULARY];
			fprintf(f, t == 0 ? "%s" : " %s", word);
			if (r & (1ULL << (20 + t)))
				fprintf(f, "%u", (unsigned)(mb_random(&seed) % 1000));
		}
		fputc('\n', f);
	}
	if (fclose(f) != 0)
		die(path);
}

/* The compiler: reads the source, writes "line-number token-hash..." lines into the pipe to the assembler. */
static int compiler(const char *self, const char *source, const char *object)
{
	int pipefd[2];
	if (pipe(pipefd) != 0)
		die("pipe");
	pid_t assembler = fork();
	if (assembler < 0)
		die("fork");
	if (assembler == 0) {
		dup2(pipefd[0], STDIN_FILENO);
		close(pipefd[0]);
		close(pipefd[1]);
		execl(self, "pmake", "--as", object, (char *)NULL);
		die("exec the assembler");
	}
	close(pipefd[0]);
	FILE *in = fopen(source, "r");
	FILE *out = fdopen(pipefd[1], "w");
	if (in == NULL || out == NULL)
		die(source);
	char line[4096];
	long number = 0;
	while (fgets(line, sizeof line, in) != NULL) {
		fprintf(out, "%ld", ++number);
		for (char *token = strtok(line, " \n"); token != NULL; token = strtok(NULL, " \n")) {
			uint32_t h = 2166136261u;
			for (unsigned char *c = (unsigned char *)token; *c; c++) {
				unsigned char lower = (*c >= 'A' && *c <= 'Z') ? (unsigned char)(*c + 32) : *c;
				h = (h ^ lower) * 16777619u;
			}
			fprintf(out, " %08x", h);
		}
		fputc('\n', out);
	}
	fclose(in);
	if (fclose(out) != 0)
		die("write to the assembler");
	int status;
	if (waitpid(assembler, &status, 0) < 0)
		die("wait for the assembler");
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

static int compare_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* The assembler: reads the compiler's lines, writes a line count, a digest and the sorted token table. */
static int assembler(const char *object)
{
	static uint32_t tokens[MAX_TOKENS];
	size_t count = 0;
	long lines = 0;
	uint64_t digest = MB_CHECKSUM_SEED;
	char line[8192];
	while (fgets(line, sizeof line, stdin) != NULL) {
		lines++;
		digest = mb_mix_bytes(digest, line, strlen(line));
		char *rest = strchr(line, ' ');
		while (rest != NULL && count < MAX_TOKENS) {
			tokens[count++] = (uint32_t)strtoul(rest + 1, &rest, 16);
			if (*rest != ' ')
				rest = NULL;
		}
	}
	qsort(tokens, count, sizeof tokens[0], compare_u32);
	int fd = open(object, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		die(object);
	char header[64];
	int n = snprintf(header, sizeof header, "OBJ %ld %zu %016llx\n", lines, count, (unsigned long long)digest);
	write_all(fd, header, (size_t)n);
	write_all(fd, tokens, count * sizeof tokens[0]);
	if (close(fd) != 0)
		die(object);
	return 0;
}

static int run_make(long jobs, long files, long lines, uint64_t input, const char *base, int keep, const char *self)
{
	double start = mb_now();
	char root[PATH_MAX], path[PATH_MAX], object[PATH_MAX];
	if (snprintf(root, sizeof root, "%s/pmake.%ld", base, (long)getpid()) >= (int)sizeof root) {
		errno = ENAMETOOLONG;
		die(base);
	}
	if (mkdir(root, 0755) != 0)
		die(root);

	for (long i = 0; i < files; i++) {
		member_path(path, root, i, "c");
		generate(path, i, lines, input);
	}

	long next = 0, running = 0, processes = 0;
	int failed = 0;
	while (next < files || running > 0) {
		while (running < jobs && next < files) {
			member_path(path, root, next, "c");
			member_path(object, root, next, "o");
			pid_t pid = fork();
			if (pid < 0)
				die("fork");
			if (pid == 0) {
				execl(self, "pmake", "--cc", path, object, (char *)NULL);
				die("exec the compiler");
			}
			next++;
			running++;
			processes += 2;
		}
		int status;
		if (wait(&status) < 0)
			die("wait");
		running--;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed = 1;
	}
	if (failed) {
		fprintf(stderr, "pmake: a compilation failed\n");
		return 1;
	}

	/* Link: every object in order into a.out; the checksum is over what was linked. */
	member_path(path, root, -1, "a.out");
	int out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0755);
	if (out < 0)
		die(path);
	uint64_t checksum = MB_CHECKSUM_SEED;
	unsigned long long linked = 0;
	char buffer[16384];
	for (long i = 0; i < files; i++) {
		member_path(object, root, i, "o");
		int in = open(object, O_RDONLY);
		if (in < 0)
			die(object);
		ssize_t n;
		while ((n = read(in, buffer, sizeof buffer)) > 0) {
			checksum = mb_mix_bytes(checksum, buffer, (size_t)n);
			write_all(out, buffer, (size_t)n);
			linked += (unsigned long long)n;
		}
		if (n < 0)
			die(object);
		close(in);
	}
	if (close(out) != 0)
		die(path);

	if (!keep) {
		for (long i = 0; i < files; i++) {
			member_path(path, root, i, "c");
			unlink(path);
			member_path(path, root, i, "o");
			unlink(path);
		}
		member_path(path, root, -1, "a.out");
		unlink(path);
		if (rmdir(root) != 0)
			die(root);
	}
	mb_result("pmake", mb_now() - start, checksum, "jobs=%ld files=%ld lines=%ld processes=%ld linked_bytes=%llu", jobs, files,
		  lines, processes, linked);
	return 0;
}

int pmake_main(int argc, char **argv)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n < 0)
		die("readlink /proc/self/exe (is /proc mounted?)");
	self[n] = '\0';

	if (argc == 4 && strcmp(argv[1], "--cc") == 0)
		return compiler(self, argv[2], argv[3]);
	if (argc == 3 && strcmp(argv[1], "--as") == 0)
		return assembler(argv[2]);

	long jobs = mb_cpus(), files = 96, lines = 1500;
	const char *dir = "/tmp";
	uint64_t input = 0;
	int keep = 0, opt;
	while ((opt = getopt(argc, argv, "j:n:l:d:kS:h")) != -1) {
		switch (opt) {
		case 'j': jobs = mb_parse_long(optarg, "job count", 1, 4096); break;
		case 'n': files = mb_parse_long(optarg, "file count", 1, 100000); break;
		case 'l': lines = mb_parse_long(optarg, "line count", 1, 10000000); break;
		case 'd': dir = optarg; break;
		case 'k': keep = 1; break;
		case 'S': input = mb_parse_seed(optarg); break;
		default: mb_usage(usage);
		}
	}
	if (optind != argc)
		mb_usage(usage);
	return run_make(jobs, files, lines, input, dir, keep, self);
}
