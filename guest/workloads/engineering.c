/* Mirrorball workload "engineering": independent processes with large private working sets, like Disco's Engineering. */
#define _GNU_SOURCE /* CPU_SET, sched_setaffinity */
#include "common.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * Disco's Engineering workload ran the Flashlite memory-system simulator and the VCS Verilog simulator
 * side by side: several processes that share nothing, each missing in the caches over a large private
 * working set. A NUMA-oblivious allocator leaves most of those misses remote; moving each process's
 * pages to its CPU's node makes them local. Here the main process forks PROCS children; child i (from 0)
 * runs, on a working set of SIZE bytes of its own:
 *   - even i: an event-driven gate-level logic simulator over a generated netlist (a timing wheel of
 *     delays, one pending evaluation per gate, primary inputs toggled every clock period);
 *   - odd i: a memory-system simulator (a set-associative second-level cache and a directory entry per
 *     memory line) fed by a synthetic trace of first-level cache misses; the tags and the directory are
 *     the working set.
 * Each does exactly WORK units (a gate evaluation, or a reference of the trace) whatever the seed: the seed
 * changes the netlist and the trace, never how much there is to do. Nothing is shared, so the netlists,
 * tags and directories are private pages touched by one process each; they have little locality, so most
 * accesses to them miss. Every child sends its checksum to the parent through a pipe; the result's
 * checksum combines them in child order, and depends only on the parameters.
 */

static const char usage[] =
	"usage: engineering [-p PROCS] [-m SIZE] [-n WORK] [-S SEED] [-A]\n"
	"  -p PROCS  independent processes (default: the number of CPUs); even ones simulate logic, odd ones a memory system\n"
	"  -m SIZE   private working set of each process (default 16M; K, M, G suffixes)\n"
	"  -n WORK   gate evaluations or trace references per process (default 2000000)\n"
	"  -S SEED   input seed: another netlist and trace, the same amount of work (default 0)\n"
	"  -A        pin process i to CPU i (modulo the CPUs)\n";

#define MIN_SIZE (64 << 10)

/* What a child reports (less than PIPE_BUF bytes: one write, never interleaved with another child's). */
struct report {
	uint32_t index;
	uint32_t kind; /* 0 logic, 1 memory system */
	uint64_t checksum;
	uint64_t events;  /* logic: output changes; memory system: L2 misses */
	double seconds;
};

/* ---- The logic simulator ---- */

enum { AND, OR, NAND, NOR, XOR, XNOR, GATE_TYPES, INPUT = GATE_TYPES };

#define WHEEL 8          /* slots of the timing wheel: more than the longest delay */
#define MAX_DELAY 7
#define PERIOD 16        /* ticks of a clock period: the primary inputs change at its start */
#define NONE UINT32_MAX

struct gate {
	uint32_t in[2];  /* the gates it reads */
	uint32_t out[2]; /* the gates that read it */
	uint32_t next;   /* the next gate in the same wheel slot */
	uint8_t type, delay, value, pending;
};

struct logic {
	struct gate *gates;
	uint32_t count, inputs;
	uint32_t wheel[WHEEL];
};

static void schedule_fanouts(struct logic *s, uint32_t g, uint64_t now)
{
	for (int k = 0; k < 2; k++) {
		uint32_t target = s->gates[g].out[k];
		struct gate *f = &s->gates[target];
		if (f->pending)
			continue; /* its evaluation is already due, no later than this one, and will see the change */
		f->pending = 1;
		uint32_t slot = (uint32_t)((now + f->delay) % WHEEL);
		f->next = s->wheel[slot];
		s->wheel[slot] = target;
	}
}

static uint8_t evaluate(const struct logic *s, const struct gate *g)
{
	uint8_t a = s->gates[g->in[0]].value, b = s->gates[g->in[1]].value;
	switch (g->type) {
	case AND: return a & b;
	case OR: return a | b;
	case NAND: return !(a & b);
	case NOR: return !(a | b);
	case XOR: return a ^ b;
	case XNOR: return !(a ^ b);
	default: return g->value; /* a primary input changes only with the stimulus */
	}
}

/*
 * A keyed pseudo-random bijection of [0, n), without a table: odd multiplies, an add and xor-shifts, each
 * a bijection of [0, 2^bits), applied again while the result is n or more (cycle walking).
 */
struct shuffle {
	uint64_t n, mask, mul[2], add;
	unsigned shift;
};

static struct shuffle make_shuffle(uint64_t n, uint64_t *random)
{
	struct shuffle p = { .n = n, .mask = 1 };
	unsigned bits = 1;
	while ((p.mask + 1) < n) {
		p.mask = p.mask << 1 | 1;
		bits++;
	}
	p.shift = bits / 2 + 1;
	p.mul[0] = mb_random(random) | 1;
	p.mul[1] = mb_random(random) | 1;
	p.add = mb_random(random);
	return p;
}

static uint64_t shuffled(const struct shuffle *p, uint64_t x)
{
	do {
		x = (x * p->mul[0] + p->add) & p->mask;
		x ^= x >> p->shift;
		x = (x * p->mul[1]) & p->mask;
		x ^= x >> p->shift;
	} while (x >= p->n);
	return x;
}

/*
 * A random netlist in which every gate has two inputs and drives two: the 2 × count input pins are
 * dealt to the gates' outputs in a shuffled order, so a gate's inputs and outputs are anywhere in the
 * netlist (loops included: they keep it busy). Building it costs two scattered writes a gate.
 */
static void build_netlist(struct logic *s, uint64_t size, uint64_t *random)
{
	uint64_t count = size / sizeof(struct gate);
	if (count > UINT32_MAX / 4)
		count = UINT32_MAX / 4;
	s->count = (uint32_t)count;
	s->inputs = s->count / 64 + 1;
	s->gates = mb_alloc(count * sizeof(struct gate), "the netlist");
	memset(s->gates, 0, count * sizeof(struct gate));
	struct shuffle pins = make_shuffle(2 * count, random);
	for (uint32_t g = 0; g < s->count; g++) {
		uint64_t r = mb_random(random);
		struct gate *gate = &s->gates[g];
		gate->value = (uint8_t)(r & 1);
		gate->delay = (uint8_t)(1 + (r >> 1) % MAX_DELAY);
		gate->type = g < s->inputs ? INPUT : (uint8_t)((r >> 8) % GATE_TYPES);
		gate->next = NONE;
		for (int k = 0; k < 2; k++) {
			uint64_t pin = shuffled(&pins, 2 * (uint64_t)g + (uint64_t)k);
			gate->out[k] = (uint32_t)(pin >> 1);
			s->gates[pin >> 1].in[pin & 1] = g;
		}
	}
	for (int slot = 0; slot < WHEEL; slot++)
		s->wheel[slot] = NONE;
}

static uint64_t simulate_logic(uint64_t size, uint64_t work, uint64_t seed, uint64_t *changes_out)
{
	struct logic s;
	uint64_t random = seed;
	build_netlist(&s, size, &random);
	uint64_t evaluations = 0, changes = 0, now = 0;
	uint32_t toggles = s.inputs / 8 + 1;
	while (evaluations < work) {
		if (now % PERIOD == 0) {
			for (uint32_t k = 0; k < toggles; k++) {
				uint32_t g = (uint32_t)(mb_random(&random) % s.inputs);
				s.gates[g].value ^= 1;
				changes++;
				schedule_fanouts(&s, g, now);
			}
		}
		uint32_t slot = (uint32_t)(now % WHEEL), g = s.wheel[slot];
		s.wheel[slot] = NONE; /* delays are 1..WHEEL-1: nothing scheduled now lands in this slot */
		while (g != NONE && evaluations < work) {
			struct gate *gate = &s.gates[g];
			uint32_t next = gate->next;
			gate->pending = 0;
			evaluations++;
			uint8_t value = evaluate(&s, gate);
			if (value != gate->value) {
				gate->value = value;
				changes++;
				schedule_fanouts(&s, g, now);
			}
			g = next;
		}
		now++;
	}
	/* The checksum: what happened, and the value of every gate at the end. */
	uint64_t checksum = mb_mix(mb_mix(mb_mix(MB_CHECKSUM_SEED, evaluations), changes), now);
	uint64_t word = 0;
	for (uint32_t g = 0; g < s.count; g++) {
		word = (word << 1) | s.gates[g].value;
		if ((g & 63) == 63)
			checksum = mb_mix(checksum, word);
	}
	checksum = mb_mix(checksum, word);
	free(s.gates);
	*changes_out = changes;
	return checksum;
}

/* ---- The memory-system simulator ---- */

/*
 * What the processors' first-level caches missed on goes to a second-level cache and, when that misses
 * too, to memory, whose directory keeps an entry per line (as FLASH's did). The trace is synthetic: strided
 * streams, a hot region about half the L2's size that moves now and then, and references anywhere in the
 * footprint; 30 % of them are writes. Half the working set (rounded down to a power of two) is the L2's
 * tags, the rest the directory, and the footprint has as many lines as the directory has entries.
 */

#define WAYS 4
#define STREAMS 4
#define TRACE_CHUNK 4096  /* references generated at a time, then simulated */
#define HOT_PHASE 65536   /* references before the hot region moves */
/* Out of 256: the shares of streams (20 %), the hot region (50 %), and of writes (30 %). */
#define STREAM_SHARE 51
#define HOT_SHARE 128
#define WRITE_SHARE 77

/* `sets` sets of WAYS entries, most recently used first; an entry is 0 (invalid) or (line + 1) << 1 | dirty. */
struct cache {
	uint64_t *tags;
	uint64_t sets;
	uint64_t hits, misses, writebacks;
};

/* Looks `line` up; on a miss fills it and returns the dirty victim's line + 1 in *victim (else 0). */
static int access_cache(struct cache *c, uint64_t line, uint64_t write, uint64_t *victim)
{
	uint64_t *set = &c->tags[(line & (c->sets - 1)) * WAYS];
	uint64_t want = (line + 1) << 1, entry;
	int way = 0;
	while (way < WAYS && (set[way] & ~1ULL) != want)
		way++;
	int hit = way < WAYS;
	*victim = 0;
	if (hit) {
		c->hits++;
		entry = set[way] | write;
	} else {
		c->misses++;
		way = WAYS - 1;
		if (set[way] & 1) {
			c->writebacks++;
			*victim = set[way] >> 1;
		}
		entry = want | write;
	}
	for (; way > 0; way--) /* to the front: the others move back one way */
		set[way] = set[way - 1];
	set[0] = entry;
	return hit;
}

struct trace {
	uint64_t random, footprint, hot_base, hot_lines, phase_left;
	uint64_t stream_at[STREAMS], stream_left[STREAMS], stream_stride[STREAMS];
};

/* r scaled to [0, n): the high half of a 64 × 64-bit product, cheaper than a division. */
static uint64_t below(uint64_t r, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)r * n) >> 64);
}

/* The next reference, as (line << 1) | write. */
static uint64_t next_reference(struct trace *t)
{
	if (t->phase_left-- == 0) {
		t->phase_left = HOT_PHASE - 1;
		t->hot_base = below(mb_random(&t->random), t->footprint - t->hot_lines);
	}
	uint64_t r = mb_random(&t->random), line;
	unsigned kind = (unsigned)(r & 0xff);
	uint64_t write = ((r >> 8) & 0xff) < WRITE_SHARE;
	if (kind < STREAM_SHARE) {
		int s = (int)((r >> 16) & (STREAMS - 1));
		if (t->stream_left[s] == 0) {
			t->stream_at[s] = below(r, t->footprint);
			t->stream_left[s] = 64 + ((r >> 24) & 1023);
			t->stream_stride[s] = 1 + ((r >> 36) & 3);
		}
		t->stream_left[s]--;
		line = t->stream_at[s];
		t->stream_at[s] += t->stream_stride[s];
		if (t->stream_at[s] >= t->footprint)
			t->stream_at[s] -= t->footprint;
	} else if (kind < STREAM_SHARE + HOT_SHARE) {
		line = t->hot_base + below(r, t->hot_lines);
	} else {
		line = below(r, t->footprint);
	}
	return line << 1 | write;
}

/* A cheap order-sensitive hash of a large array (a multiply and an add a word), mixed once at the end. */
static uint64_t hash_words(uint64_t checksum, const void *data, uint64_t bytes)
{
	const unsigned char *p = data;
	uint64_t h = 0;
	for (uint64_t i = 0; i + sizeof h <= bytes; i += sizeof h) {
		uint64_t word;
		memcpy(&word, p + i, sizeof word);
		h = h * 0x100000001b3ULL + word;
	}
	return mb_mix(checksum, h);
}

/* The directory entry of a line counts its accesses (+1), fetches (+2^12) and writebacks (+2^22) in one word. */
#define FETCHED (1u << 12)
#define WRITTEN_BACK (1u << 22)

static uint64_t simulate_memory(uint64_t size, uint64_t work, uint64_t seed, uint64_t *misses_out)
{
	struct cache l2 = { .sets = 1 };
	while (l2.sets * 2 * WAYS * sizeof(uint64_t) <= size / 2)
		l2.sets *= 2;
	uint64_t l2_lines = l2.sets * WAYS, tag_bytes = l2_lines * sizeof(uint64_t);
	struct trace t = { .random = seed };
	t.hot_lines = l2_lines / 2;
	t.footprint = (size - tag_bytes) / sizeof(uint32_t);
	if (t.footprint < 2 * t.hot_lines)
		t.footprint = 2 * t.hot_lines;
	l2.tags = mb_alloc(tag_bytes, "the L2 tags");
	uint32_t *directory = mb_alloc(t.footprint * sizeof(uint32_t), "the directory");
	uint64_t *chunk = mb_alloc(TRACE_CHUNK * sizeof(uint64_t), "the trace");
	memset(l2.tags, 0, tag_bytes);
	memset(directory, 0, t.footprint * sizeof(uint32_t));

	for (uint64_t done = 0; done < work;) {
		uint64_t n = work - done < TRACE_CHUNK ? work - done : TRACE_CHUNK;
		for (uint64_t i = 0; i < n; i++)
			chunk[i] = next_reference(&t);
		for (uint64_t i = 0; i < n; i++) {
			uint64_t line = chunk[i] >> 1, victim;
			directory[line] += 1;
			if (!access_cache(&l2, line, chunk[i] & 1, &victim)) {
				directory[line] += FETCHED;
				if (victim != 0)
					directory[victim - 1] += WRITTEN_BACK;
			}
		}
		done += n;
	}
	uint64_t checksum = mb_mix(mb_mix(mb_mix(MB_CHECKSUM_SEED, l2.hits), l2.misses), l2.writebacks);
	checksum = hash_words(checksum, l2.tags, tag_bytes);
	checksum = hash_words(checksum, directory, t.footprint * sizeof(uint32_t));
	*misses_out = l2.misses;
	free(l2.tags);
	free(directory);
	free(chunk);
	return checksum;
}

/* ---- The processes ---- */

static void pin(int cpu)
{
	cpu_set_t cpus;
	CPU_ZERO(&cpus);
	CPU_SET(cpu, &cpus);
	sched_setaffinity(0, sizeof cpus, &cpus); /* best effort: placement, not results */
}

static _Noreturn void child(int fd, uint32_t index, uint64_t size, uint64_t work, uint64_t seed, int affinity)
{
	if (affinity)
		pin((int)(index % (uint32_t)mb_cpus()));
	struct report r = { .index = index, .kind = index & 1 };
	double start = mb_now();
	/* Each process its own input: the seed, its index and its size pick the netlist or the trace. */
	uint64_t input = mb_mix(mb_mix(mb_seeded(0xe6e1ULL, seed), index), size);
	if (r.kind == 0)
		r.checksum = simulate_logic(size, work, input, &r.events);
	else
		r.checksum = simulate_memory(size, work, input, &r.events);
	r.seconds = mb_now() - start;
	ssize_t n;
	do
		n = write(fd, &r, sizeof r);
	while (n < 0 && errno == EINTR);
	_exit(n == (ssize_t)sizeof r ? 0 : 1);
}

int engineering_main(int argc, char **argv)
{
	long procs = mb_cpus(), work = 2000000;
	uint64_t size = 16ULL << 20, seed = 0;
	int affinity = 0, opt;
	while ((opt = getopt(argc, argv, "p:m:n:S:Ah")) != -1) {
		switch (opt) {
		case 'p': procs = mb_parse_long(optarg, "process count", 1, 1024); break;
		case 'm': size = mb_parse_size(optarg, "working set size"); break;
		case 'n': work = mb_parse_long(optarg, "work", 1, 1L << 40); break;
		case 'S': seed = mb_parse_seed(optarg); break;
		case 'A': affinity = 1; break;
		default: mb_usage(usage);
		}
	}
	if (optind != argc)
		mb_usage(usage);
	if (size < MIN_SIZE) {
		fprintf(stderr, "engineering: the working set must be at least %d bytes\n", MIN_SIZE);
		return 2;
	}

	int fds[2];
	if (pipe(fds) != 0) {
		perror("engineering: pipe");
		return 1;
	}
	fflush(stdout);
	double start = mb_now();
	for (long i = 0; i < procs; i++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("engineering: fork");
			return 1;
		}
		if (pid == 0) {
			close(fds[0]);
			child(fds[1], (uint32_t)i, size, (uint64_t)work, seed, affinity);
		}
	}
	close(fds[1]);
	struct report *reports = mb_alloc((size_t)procs * sizeof *reports, "the reports");
	char seen[1024] = { 0 }; /* -p is at most 1024 */
	for (long got = 0; got < procs;) {
		struct report r;
		ssize_t n = read(fds[0], &r, sizeof r);
		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof r || r.index >= (uint32_t)procs || seen[r.index]) {
			fprintf(stderr, "engineering: %ld of %ld processes reported\n", got, procs);
			return 1;
		}
		seen[r.index] = 1;
		reports[r.index] = r;
		got++;
	}
	int failed = 0, status;
	for (long i = 0; i < procs; i++) {
		if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed = 1;
	}
	double end = mb_now();
	if (failed) {
		fprintf(stderr, "engineering: a process failed\n");
		return 1;
	}

	/* The checksum in child order; the events and the slowest process of each kind, for the record. */
	uint64_t checksum = MB_CHECKSUM_SEED, events[2] = { 0, 0 };
	double slowest[2] = { 0, 0 };
	for (long i = 0; i < procs; i++) {
		const struct report *r = &reports[i];
		checksum = mb_mix(checksum, r->checksum);
		events[r->kind] += r->events;
		if (r->seconds > slowest[r->kind])
			slowest[r->kind] = r->seconds;
	}
	mb_result("engineering", end - start, checksum,
		  "procs=%ld size=%llu work=%ld seed=%llu logic_changes=%llu l2_misses=%llu logic_s=%.6f memory_s=%.6f", procs,
		  (unsigned long long)size, work, (unsigned long long)seed, (unsigned long long)events[0], (unsigned long long)events[1],
		  slowest[0], slowest[1]);
	free(reports);
	return 0;
}
