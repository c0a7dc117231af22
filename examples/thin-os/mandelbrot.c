/* The parallel program the thin OS runs: the Mandelbrot set on a WIDTH x HEIGHT grid, rows handed out to
   every hart as they finish one. Each row's escape counts are hashed into rows[row]; the checksum folds the
   rows in order, so it depends on neither the number of harts nor which hart computed which row. */
#include "libos.h"

#ifndef WIDTH
#define WIDTH 192
#endif
#ifndef HEIGHT
#define HEIGHT 128
#endif
#ifndef MAX_ITERATIONS
#define MAX_ITERATIONS 256
#endif

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t rows[HEIGHT];
static uint64_t pixels_inside[MAX_HARTS];

static void row(unsigned y) {
  uint64_t hash = FNV_OFFSET;
  double ci = -1.25 + 2.5 * (double)y / HEIGHT;
  for (unsigned x = 0; x < WIDTH; x++) {
    double cr = -2.25 + 3.0 * (double)x / WIDTH;
    double zr = 0, zi = 0;
    unsigned n = 0;
    while (n < MAX_ITERATIONS && zr * zr + zi * zi <= 4.0) {
      double t = zr * zr - zi * zi + cr;
      zi = 2.0 * zr * zi + ci;
      zr = t;
      n++;
    }
    if (n == MAX_ITERATIONS) pixels_inside[libos_self()]++;
    hash = (hash ^ n) * FNV_PRIME;
  }
  rows[y] = hash;
}

int program_main(void) {
  unsigned self = libos_self();
  if (self == 0) {
    libos_puts("thin-os: ");
    libos_put_dec(libos_harts());
    libos_puts(" harts, mandelbrot ");
    libos_put_dec(WIDTH);
    libos_puts("x");
    libos_put_dec(HEIGHT);
    libos_puts("\n");
  }
  libos_parallel_for(HEIGHT, row);
  libos_puts("thin-os: hart ");
  libos_put_dec(self);
  libos_puts(" computed ");
  libos_put_dec(libos_taken());
  libos_puts(" rows\n");
  libos_barrier();
  if (self != 0) return 0;
  uint64_t checksum = FNV_OFFSET, inside = 0;
  for (unsigned y = 0; y < HEIGHT; y++) checksum = (checksum ^ rows[y]) * FNV_PRIME;
  for (unsigned h = 0; h < libos_harts(); h++) inside += pixels_inside[h];
  libos_puts("thin-os: ");
  libos_put_dec(inside);
  libos_puts(" points inside; checksum ");
  libos_put_hex(checksum);
  libos_puts("\n");
  return 0;
}
