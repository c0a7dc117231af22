/* Mirrorball workload "raytrace": threads ray tracing one large shared scene (memory-intensive, NUMA-sensitive). */
#define _GNU_SOURCE /* CPU_SET, pthread_setaffinity_np */
#include "common.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/*
 * Like the SPLASH raytrace that Disco ran as its Raytrace workload, the threads share a large read-mostly
 * data set: SPHERES spheres in a uniform grid (3-D DDA traversal, Amanatides & Woo 1987) and a TEXTURE of
 * several MiB that every hit samples at SAMPLES pseudo-random places, so most samples miss in the caches. The
 * texture is filled by the threads in slices (first touch places each slice on its filler's NUMA node
 * under a NUMA-aware kernel), or by one thread with -1. Threads take rows from a shared counter. Each
 * pixel is computed the same way whatever thread renders it, so the checksum of the image depends only
 * on the parameters.
 *
 * With -L (local bands) the program has the structure a NUMA placement rewards: thread i, pinned to CPU
 * i, fills slice i of the texture and then renders band i of the rows, whose hits sample only slice i.
 * The bands follow the thread count, so with -L the checksum depends on -t as well. -P sets the memory
 * policy (set_mempolicy) before anything is allocated: first-touch (the kernel's default, local to the
 * CPU that first writes a page), node0 (everything on node 0 while it has room) or interleave (pages
 * round-robin over all nodes).
 */

static const char usage[] =
	"usage: raytrace [-t THREADS] [-w WIDTH] [-H HEIGHT] [-s SPHERES] [-m TEXTURE] [-k SAMPLES] [-1] [-L] [-P POLICY] [-S SEED]\n"
	"  -t THREADS  rendering threads (default: the number of CPUs)\n"
	"  -w WIDTH    image width in pixels (default 640)\n"
	"  -H HEIGHT   image height (default: the width)\n"
	"  -s SPHERES  spheres in the scene (default 20000)\n"
	"  -m TEXTURE  size of the shared texture (default 64M; K, M, G suffixes)\n"
	"  -k SAMPLES  texels sampled at each hit, each a likely cache miss (default 16)\n"
	"  -1          fill the texture from one thread (all of it on one NUMA node)\n"
	"  -L          local bands: thread i (on CPU i) fills and samples only slice i of the texture\n"
	"  -P POLICY   memory policy: first-touch (default), node0 or interleave\n"
	"  -S SEED     input seed: another scene and texture of the same sizes (default 0)\n";

#define ROWS_PER_TASK 2
#define EPSILON 1e-7
#define MAX_DEPTH 2

typedef struct { double x, y, z; } vec;

static vec add(vec a, vec b) { return (vec){ a.x + b.x, a.y + b.y, a.z + b.z }; }
static vec sub(vec a, vec b) { return (vec){ a.x - b.x, a.y - b.y, a.z - b.z }; }
static vec scale(vec a, double s) { return (vec){ a.x * s, a.y * s, a.z * s }; }
static double dot(vec a, vec b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
static vec unit(vec a) { return scale(a, 1.0 / sqrt(dot(a, a))); }

typedef struct { vec center; double radius; uint32_t color; } sphere;

static struct {
	sphere *spheres;
	long count;
	int grid;              /* cells per axis; the scene is the unit cube */
	uint32_t *cell_start;  /* grid^3 + 1 offsets into cell_items */
	uint32_t *cell_items;  /* sphere indices per cell */
	uint32_t *texture;
	size_t texture_words;  /* a power of two */
	int width, height, threads, single_fill, local_bands, samples;
	size_t band_words;     /* -L: words of texture per band (a power of two) */
	uint64_t texture_salt; /* -S: 0 for the reference texture */
	pthread_barrier_t filled;
	unsigned char *image;
	long next_row;         /* the shared task counter */
} scene;

/* Where this thread's texture samples fall: the whole texture, or with -L the band being rendered. */
static __thread size_t texture_base, texture_mask;

static int clamp_cell(double v)
{
	int c = (int)floor(v * scene.grid);
	return c < 0 ? 0 : c >= scene.grid ? scene.grid - 1 : c;
}

static void build_scene(long count, uint64_t seed)
{
	scene.count = count;
	scene.spheres = mb_alloc((size_t)count * sizeof(sphere), "the spheres");
	/* The integer cube root (libm's cbrt may round differently elsewhere): about one sphere per cell. */
	int grid = 1;
	while ((long)(grid + 1) * (grid + 1) * (grid + 1) <= count)
		grid++;
	scene.grid = grid;
	double cell = 1.0 / scene.grid;
	for (long i = 0; i < count; i++) {
		double r = cell * (0.15 + 0.35 * (double)(mb_random(&seed) % 1024) / 1024.0);
		vec c;
		c.x = r + (1.0 - 2 * r) * (double)(mb_random(&seed) % 65536) / 65536.0;
		c.y = r + (1.0 - 2 * r) * (double)(mb_random(&seed) % 65536) / 65536.0;
		c.z = r + (1.0 - 2 * r) * (double)(mb_random(&seed) % 65536) / 65536.0;
		scene.spheres[i] = (sphere){ c, r, (uint32_t)mb_random(&seed) | 0x404040u };
	}
	/* Bucket every sphere into each cell its bounding box overlaps: count, prefix-sum, fill. */
	size_t cells = (size_t)scene.grid * scene.grid * scene.grid;
	scene.cell_start = mb_alloc((cells + 1) * sizeof(uint32_t), "the grid");
	memset(scene.cell_start, 0, (cells + 1) * sizeof(uint32_t));
	for (int pass = 0; pass < 2; pass++) {
		uint32_t *fill = NULL;
		if (pass == 1) {
			for (size_t c = 0; c < cells; c++)
				scene.cell_start[c + 1] += scene.cell_start[c];
			scene.cell_items = mb_alloc(scene.cell_start[cells] * sizeof(uint32_t), "the grid items");
			fill = mb_alloc(cells * sizeof(uint32_t), "the grid fill");
			memcpy(fill, scene.cell_start, cells * sizeof(uint32_t));
		}
		for (long i = 0; i < count; i++) {
			sphere *s = &scene.spheres[i];
			int x0 = clamp_cell(s->center.x - s->radius), x1 = clamp_cell(s->center.x + s->radius);
			int y0 = clamp_cell(s->center.y - s->radius), y1 = clamp_cell(s->center.y + s->radius);
			int z0 = clamp_cell(s->center.z - s->radius), z1 = clamp_cell(s->center.z + s->radius);
			for (int z = z0; z <= z1; z++)
				for (int y = y0; y <= y1; y++)
					for (int x = x0; x <= x1; x++) {
						size_t c = ((size_t)z * scene.grid + y) * scene.grid + x;
						if (pass == 0)
							scene.cell_start[c + 1]++;
						else
							scene.cell_items[fill[c]++] = (uint32_t)i;
					}
		}
		free(fill);
	}
}

/* Nearest hit of the ray origin + t * dir (dir a unit vector) with t in (EPSILON, limit); -1 if none. */
static long trace(vec origin, vec dir, double limit, double *hit_t)
{
	/* Clip the ray to the unit cube (slab test). */
	double o[3] = { origin.x, origin.y, origin.z }, d[3] = { dir.x, dir.y, dir.z };
	double t0 = 0.0, t1 = limit;
	for (int a = 0; a < 3; a++) {
		if (d[a] == 0.0) {
			if (o[a] < 0.0 || o[a] > 1.0)
				return -1;
			continue;
		}
		double ta = (0.0 - o[a]) / d[a], tb = (1.0 - o[a]) / d[a];
		if (ta > tb) { double t = ta; ta = tb; tb = t; }
		if (ta > t0) t0 = ta;
		if (tb < t1) t1 = tb;
	}
	if (t0 > t1)
		return -1;
	int cell[3], step[3];
	double next[3], delta[3];
	for (int a = 0; a < 3; a++) {
		cell[a] = clamp_cell(o[a] + d[a] * t0);
		step[a] = d[a] > 0 ? 1 : -1;
		if (d[a] == 0.0) {
			next[a] = delta[a] = INFINITY;
		} else {
			double boundary = (double)(cell[a] + (d[a] > 0)) / scene.grid;
			next[a] = (boundary - o[a]) / d[a];
			delta[a] = fabs(1.0 / (d[a] * scene.grid));
		}
	}
	for (;;) {
		size_t c = ((size_t)cell[2] * scene.grid + cell[1]) * scene.grid + cell[0];
		double exit_t = fmin(next[0], fmin(next[1], next[2]));
		double best = fmin(exit_t, t1);
		long best_index = -1;
		for (uint32_t k = scene.cell_start[c]; k < scene.cell_start[c + 1]; k++) {
			const sphere *s = &scene.spheres[scene.cell_items[k]];
			vec oc = sub(origin, s->center);
			double b = dot(oc, dir), disc = b * b - (dot(oc, oc) - s->radius * s->radius);
			if (disc < 0)
				continue;
			double root = sqrt(disc), t = -b - root;
			if (t <= EPSILON)
				t = -b + root;
			if (t > EPSILON && t <= best) {
				best = t;
				best_index = scene.cell_items[k];
			}
		}
		if (best_index >= 0) {
			*hit_t = best;
			return best_index;
		}
		if (exit_t > t1)
			return -1;
		int a = next[0] <= next[1] ? (next[0] <= next[2] ? 0 : 2) : (next[1] <= next[2] ? 1 : 2);
		cell[a] += step[a];
		if (cell[a] < 0 || cell[a] >= scene.grid)
			return -1;
		next[a] += delta[a];
	}
}

static const vec light = { 2.0, 3.0, -2.0 };

static vec shade(vec origin, vec dir, int depth)
{
	double t;
	long index = trace(origin, dir, INFINITY, &t);
	if (index < 0) {
		double sky = 0.5 * (dir.y + 1.0);
		return (vec){ 0.2 + 0.3 * sky, 0.3 + 0.4 * sky, 0.6 + 0.4 * sky };
	}
	const sphere *s = &scene.spheres[index];
	vec p = add(origin, scale(dir, t));
	vec n = scale(sub(p, s->center), 1.0 / s->radius);
	vec to_light = sub(light, p);
	double distance = sqrt(dot(to_light, to_light));
	vec l = scale(to_light, 1.0 / distance);
	double diffuse = dot(n, l);
	double shadow_t;
	if (diffuse > 0 && trace(add(p, scale(n, 1e-6)), l, distance, &shadow_t) >= 0)
		diffuse = 0;
	if (diffuse < 0)
		diffuse = 0;
	/* A texture sample at a place that depends on the hit: a likely cache miss in a large texture. */
	uint64_t key = mb_mix((uint64_t)index, (uint64_t)(int64_t)floor(p.x * 4096) ^ ((uint64_t)(int64_t)floor(p.y * 4096) << 21) ^
						       ((uint64_t)(int64_t)floor(p.z * 4096) << 42));
	/* Filtered over `samples` texels at independent places (an LCG from the key): `samples` likely misses. */
	uint64_t sum = 0;
	for (int k = 0; k < scene.samples; k++) {
		key = key * 6364136223846793005ULL + 1442695040888963407ULL;
		sum += scene.texture[texture_base + ((key >> 24) & texture_mask)] & 0xff;
	}
	double grain = 0.75 + 0.25 * (double)sum / (255.0 * scene.samples);
	double light_level = (0.15 + 0.85 * diffuse) * grain;
	vec color = { (double)(s->color & 0xff) / 255.0 * light_level, (double)((s->color >> 8) & 0xff) / 255.0 * light_level,
		      (double)((s->color >> 16) & 0xff) / 255.0 * light_level };
	if ((index & 3) == 0 && depth < MAX_DEPTH) {
		vec reflected = sub(dir, scale(n, 2 * dot(dir, n)));
		vec mirror = shade(add(p, scale(n, 1e-6)), reflected, depth + 1);
		color = add(scale(color, 0.6), scale(mirror, 0.4));
	}
	return color;
}

static unsigned char quantize(double v)
{
	return v <= 0 ? 0 : v >= 1 ? 255 : (unsigned char)(v * 255.0);
}

static void render_row(int y)
{
	if (scene.local_bands) {
		size_t band = (size_t)y * (size_t)scene.threads / (size_t)scene.height;
		texture_base = band * scene.band_words;
		texture_mask = scene.band_words - 1;
	} else {
		texture_base = 0;
		texture_mask = scene.texture_words - 1;
	}
	const vec eye = { 0.5, 0.5, -1.2 };
	for (int x = 0; x < scene.width; x++) {
		vec target = { ((double)x + 0.5) / scene.width * 1.2 - 0.1, 1.1 - ((double)y + 0.5) / scene.height * 1.2, 0.0 };
		vec c = shade(eye, unit(sub(target, eye)), 0);
		unsigned char *px = scene.image + ((size_t)y * scene.width + x) * 3;
		px[0] = quantize(c.x);
		px[1] = quantize(c.y);
		px[2] = quantize(c.z);
	}
}

/* Cheap to compute (a multiplicative hash), so that filling is mostly the stores. */
static void fill_texture(size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		scene.texture[i] = (uint32_t)(((i + scene.texture_salt) * 0x9e3779b97f4a7c15ULL) >> 32);
}

static void *worker(void *arg)
{
	long id = (long)arg;
	if (!scene.single_fill) {
		size_t slice = scene.texture_words / (size_t)scene.threads;
		size_t from = slice * (size_t)id, to = id == scene.threads - 1 ? scene.texture_words : from + slice;
		fill_texture(from, to);
	}
	return NULL;
}

static void *renderer(void *arg)
{
	(void)arg;
	for (;;) {
		long row = __atomic_fetch_add(&scene.next_row, ROWS_PER_TASK, __ATOMIC_RELAXED);
		if (row >= scene.height)
			return NULL;
		for (long y = row; y < row + ROWS_PER_TASK && y < scene.height; y++)
			render_row((int)y);
	}
}

/* -L: pinned to CPU `id`, fill slice `id` of the texture, wait for the others, render band `id`. */
static void *band_worker(void *arg)
{
	long id = (long)arg;
	cpu_set_t cpus;
	CPU_ZERO(&cpus);
	CPU_SET((int)(id % mb_cpus()), &cpus);
	pthread_setaffinity_np(pthread_self(), sizeof(cpus), &cpus); /* best effort: placement, not results */
	size_t from = scene.band_words * (size_t)id;
	fill_texture(from, from + scene.band_words);
	pthread_barrier_wait(&scene.filled);
	long first = id * scene.height / scene.threads, last = (id + 1) * scene.height / scene.threads;
	for (long y = first; y < last; y++)
		render_row((int)y);
	return NULL;
}

/* set_mempolicy(2) for the whole process from here on; the threads created later inherit it. */
static void set_policy(const char *policy)
{
	enum { MPOL_BIND_ = 2, MPOL_INTERLEAVE_ = 3 };
	unsigned long nodes = 0;
	int mode;
	if (strcmp(policy, "first-touch") == 0) {
		return; /* the default already: no system call, which a container's seccomp filter may refuse */
	} else if (strcmp(policy, "node0") == 0) {
		mode = MPOL_BIND_;
		nodes = 1;
	} else if (strcmp(policy, "interleave") == 0) {
		mode = MPOL_INTERLEAVE_;
		char path[64];
		for (int n = 0; n < 64; n++) {
			snprintf(path, sizeof path, "/sys/devices/system/node/node%d", n);
			if (access(path, F_OK) == 0)
				nodes |= 1UL << n;
		}
		if (nodes == 0)
			nodes = 1;
	} else {
		fprintf(stderr, "raytrace: the policy must be first-touch, node0 or interleave, not '%s'\n", policy);
		exit(2);
	}
	if (syscall(SYS_set_mempolicy, mode, &nodes, 65) != 0) {
		perror("raytrace: set_mempolicy");
		exit(1);
	}
}

static void run_threads(void *(*body)(void *))
{
	pthread_t *ids = mb_alloc((size_t)scene.threads * sizeof(pthread_t), "the threads");
	for (long i = 0; i < scene.threads; i++) {
		if (pthread_create(&ids[i], NULL, body, (void *)i) != 0) {
			fprintf(stderr, "raytrace: cannot create thread %ld\n", i);
			exit(1);
		}
	}
	for (long i = 0; i < scene.threads; i++)
		pthread_join(ids[i], NULL);
	free(ids);
}

int raytrace_main(int argc, char **argv)
{
	long spheres = 20000;
	uint64_t texture_bytes = 64ULL << 20;
	scene.threads = mb_cpus();
	scene.width = 640;
	scene.height = 0;
	int opt;
	const char *policy = "first-touch";
	uint64_t input = 0;
	scene.samples = 16;
	while ((opt = getopt(argc, argv, "t:w:H:s:m:k:1LP:S:h")) != -1) {
		switch (opt) {
		case 't': scene.threads = (int)mb_parse_long(optarg, "thread count", 1, 1024); break;
		case 'w': scene.width = (int)mb_parse_long(optarg, "width", 1, 16384); break;
		case 'H': scene.height = (int)mb_parse_long(optarg, "height", 1, 16384); break;
		case 's': spheres = mb_parse_long(optarg, "sphere count", 1, 10000000); break;
		case 'm': texture_bytes = mb_parse_size(optarg, "texture size"); break;
		case 'k': scene.samples = (int)mb_parse_long(optarg, "sample count", 1, 4096); break;
		case '1': scene.single_fill = 1; break;
		case 'L': scene.local_bands = 1; break;
		case 'P': policy = optarg; break;
		case 'S': input = mb_parse_seed(optarg); break;
		default: mb_usage(usage);
		}
	}
	if (optind != argc)
		mb_usage(usage);
	if (scene.height == 0)
		scene.height = scene.width;
	/* The texture is a power-of-two number of words, at most the size asked for. */
	scene.texture_words = 1;
	while (scene.texture_words * 2 * sizeof(uint32_t) <= texture_bytes)
		scene.texture_words *= 2;

	if (scene.local_bands && scene.single_fill) {
		fprintf(stderr, "raytrace: -L and -1 exclude each other\n");
		return 2;
	}
	set_policy(policy);
	scene.band_words = 1;
	while (scene.band_words * 2 * (size_t)scene.threads <= scene.texture_words)
		scene.band_words *= 2;

	double start = mb_now();
	build_scene(spheres, mb_seeded(0x5eedULL + (uint64_t)spheres, input));
	scene.texture_salt = input == 0 ? 0 : mb_mix(0x7e47ULL, input);
	scene.texture = mb_alloc(scene.texture_words * sizeof(uint32_t), "the texture");
	scene.image = mb_alloc((size_t)scene.width * scene.height * 3, "the image");
	double render_start;
	if (scene.local_bands) {
		/* Fill and render in the same pinned threads; render_s then covers both. */
		pthread_barrier_init(&scene.filled, NULL, (unsigned)scene.threads);
		render_start = mb_now();
		run_threads(band_worker);
	} else {
		if (scene.single_fill)
			fill_texture(0, scene.texture_words);
		else
			run_threads(worker);
		render_start = mb_now();
		run_threads(renderer);
	}
	double end = mb_now();

	uint64_t checksum = mb_mix_bytes(MB_CHECKSUM_SEED, scene.image, (size_t)scene.width * scene.height * 3);
	mb_result("raytrace", end - start, checksum,
		  "threads=%d width=%d height=%d spheres=%ld texture=%zu samples=%d bands=%d policy=%s render_s=%.6f",
		  scene.threads, scene.width, scene.height, spheres, scene.texture_words * sizeof(uint32_t), scene.samples, scene.local_bands, policy,
		  end - render_start);
	return 0;
}
