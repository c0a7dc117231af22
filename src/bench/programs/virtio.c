/* A virtio-blk driver on hart 1, bare metal (docs/giantvm.md, "DMA"): run over two hosts, hart 1 is on
   host 1 and the device on host 0, so every ring and buffer below is memory the device reaches through
   the DSM. Hart 1 reads sector 0 (the test wrote a pattern there), writes sector 1 with a pattern of its
   own, then gives the device a chain whose buffer lies outside RAM and waits for DEVICE_NEEDS_RESET.
   Hart 0 waits for hart 1's verdict and returns it: 0, or the number of the step that failed. */
#include <stdint.h>

#ifndef HARTS
#define HARTS 2
#endif
#ifndef ITERATIONS
#define ITERATIONS 1
#endif

#define MMIO 0x10001000ul
#define REG(off) (*(volatile uint32_t *)(MMIO + (off)))
#define QSIZE 8
#define SPIN 20000000

struct desc { uint64_t addr; uint32_t len; uint16_t flags, next; };

static struct desc descs[QSIZE] __attribute__((aligned(4096)));
static struct { uint16_t flags, idx, ring[QSIZE], event; } avail __attribute__((aligned(4096)));
static struct { uint16_t flags, idx; struct { uint32_t id, len; } ring[QSIZE]; uint16_t event; } used __attribute__((aligned(4096)));
static struct { uint32_t type, reserved; uint64_t sector; } header __attribute__((aligned(4096)));
static uint8_t data[512] __attribute__((aligned(4096)));
static volatile uint8_t status;
static volatile long verdict = -1;

static void chain(uint64_t buffer, uint32_t length, uint16_t flags, uint16_t head) {
    descs[0] = (struct desc){ (uint64_t)(uintptr_t)&header, 16, 1, 1 };
    descs[1] = (struct desc){ buffer, length, (uint16_t)(flags | 1), 2 };
    descs[2] = (struct desc){ (uint64_t)(uintptr_t)&status, 1, 2, 0 };
    avail.ring[avail.idx % QSIZE] = head;
    __sync_synchronize();
    avail.idx++;
    __sync_synchronize();
    REG(0x50) = 0;
}

/* Waits for the used index to reach `n`; 0 on time out. */
static int await_used(uint16_t n) {
    for (long i = 0; i < SPIN; i++) if (*(volatile uint16_t *)&used.idx == n) return 1;
    return 0;
}

static long driver(void) {
    if (REG(0x00) != 0x74726976 || REG(0x08) != 2) return 2;
    REG(0x70) = 0;
    REG(0x70) = 1;
    REG(0x70) = 3;
    REG(0x24) = 1;
    REG(0x20) = 1; /* VIRTIO_F_VERSION_1 */
    REG(0x70) = 11;
    if ((REG(0x70) & 8) == 0) return 3;
    REG(0x30) = 0;
    REG(0x38) = QSIZE;
    REG(0x80) = (uint32_t)(uintptr_t)descs; REG(0x84) = 0;
    REG(0x90) = (uint32_t)(uintptr_t)&avail; REG(0x94) = 0;
    REG(0xa0) = (uint32_t)(uintptr_t)&used; REG(0xa4) = 0;
    REG(0x44) = 1;
    REG(0x70) = 15;

    /* Read sector 0. */
    header.type = 0; header.sector = 0; status = 0xff;
    chain((uint64_t)(uintptr_t)data, 512, 2, 0);
    if (!await_used(1)) return 4;
    if (status != 0) return 5;
    for (int i = 0; i < 512; i++) if (data[i] != (uint8_t)(i * 7 + 3)) return 6;

    /* Write sector 1. */
    for (int i = 0; i < 512; i++) data[i] = (uint8_t)(i * 5 + 1);
    header.type = 1; header.sector = 1; status = 0xff;
    chain((uint64_t)(uintptr_t)data, 512, 0, 0);
    if (!await_used(2)) return 7;
    if (status != 0) return 8;

    /* A hostile chain: its data buffer outside RAM. The device must need a reset, the hosts go on. */
    header.type = 0; header.sector = 0;
    chain(0x1000, 512, 2, 0);
    for (long i = 0; i < SPIN; i++) if (REG(0x70) & 0x40) return 0;
    return 9;
}

long hart_main(long hart) {
    if (hart == 1) {
        verdict = driver();
        return 0;
    }
    if (hart != 0) return 0;
    while (verdict < 0) { }
    return verdict;
}
