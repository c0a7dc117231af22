// Timing mode with the block translator on and off: bare programs must give identical statistics (every
// counter of the cache model, the TLB refills, the per-page miss counters and each hart's cycles), on one
// hart under Sv39 paging and on two harts sharing lines (upgrades, invalidations, AMOs).

import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import type { Program } from '../helpers/asm.js';
import { RAM_BASE, runAsm, type BareMachine } from '../helpers/bare-machine.js';
import { PageTables, PTE_A, PTE_D, PTE_R, PTE_W, PTE_X, TRAP_RUNTIME, TRAP_RUNTIME_DATA } from '../helpers/trap-runtime.js';
import type { CacheGeometry } from '../../src/timing/cache.js';
import { StatsRegistry } from '../../src/timing/stats.js';
import { TimingModel } from '../../src/timing/timing-model.js';

const RAM_BYTES = 16 << 20;
/** Small enough that the programs' working sets miss and evict code lines. */
const CACHE: Partial<CacheGeometry> = { sizeBytes: 8192, ways: 2, lineBytes: 64 };
const LATENCIES = { hitCycles: 1, missCycles: [[30]], uncachedCycles: 20, tlbLevelCycles: 5 };

interface Outcome {
  exitCode: number;
  state: unknown;
}

/** Runs `source` with every hart in timing mode, its blocks compiled at once or interpreted throughout. */
function runTimed(
  t: TestContext, source: string, translate: boolean, harts: number, setup?: (m: BareMachine, p: Program) => void,
): Outcome | undefined {
  let model: TimingModel | undefined;
  const run = runAsm(t, source, {
    harts, ramBytes: RAM_BYTES, maxInstructions: 5_000_000,
    setup: (m, p) => {
      model = new TimingModel({
        cpuNode: m.harts.map(() => 0), nodes: [{ base: RAM_BASE, size: RAM_BYTES }], latencies: LATENCIES, cache: CACHE,
      });
      for (const h of m.harts) {
        h.setTranslation(translate, 0);
        h.setMemoryTiming(model);
      }
      setup?.(m, p);
    },
  });
  if (run === undefined) return undefined;
  assert.equal(run.machine.harts.every((h) => h.translating === translate), true);
  const stats = new StatsRegistry();
  model!.registerStats(stats);
  return {
    exitCode: run.exitCode,
    state: {
      stats: stats.snapshot(),
      pages: model!.counters.hottest(1 << 20),
      harts: run.machine.harts.map((h) => ({ instret: h.instret, stalls: h.stallCycles, pc: h.pc })),
    },
  };
}

function assertSameStats(t: TestContext, source: string, harts: number, setup?: (m: BareMachine, p: Program) => void): Outcome | undefined {
  const interpreted = runTimed(t, source, false, harts, setup);
  const translated = runTimed(t, source, true, harts, setup);
  if (interpreted === undefined || translated === undefined) return undefined;
  assert.equal(interpreted.exitCode, 0, 'the program passes');
  assert.deepEqual(translated, interpreted);
  return translated;
}

/** Reads one statistic from an outcome. */
function stat(outcome: Outcome, name: string): number {
  const sample = (outcome.state as { stats: { name: string; value?: number }[] }).stats.find((s) => s.name === name);
  assert.ok(sample?.value !== undefined, name);
  return sample.value;
}

test('one hart under Sv39: array walks, stores beside code, page-crossing and atomic accesses', (t) => {
  const outcome = assertSameStats(t, `${TRAP_RUNTIME}
main:
  la t0, satp_value
  ld t0, 0(t0)
  csrw satp, t0
  sfence.vma
  enter_mode 1
.option rvc
  # S-mode: every new page is a TLB refill. Stream over 64 KiB (8x the cache), stride 16.
  la a0, big
  li a1, 0
  li a2, 4096
1:
  ld a3, 0(a0)
  add a1, a1, a3
  sd a1, 8(a0)
  addi a0, a0, 16
  addi a2, a2, -1
  bnez a2, 1b
  # A counter in the code's own page: the translator hides the write TLB entry to watch the page.
  li a2, 200
2:
  la a4, beside
  ld a5, 0(a4)
  addi a5, a5, 1
  sd a5, 0(a4)
  c.addi a2, -1
  bnez a2, 2b
  # Pointer chase over 256 nodes, 128 bytes apart, visited in a scattered order.
  la a0, big
  li a2, 2000
  li a3, 0
3:
  slli a4, a3, 7
  add a4, a4, a0
  ld a5, 0(a4)
  add a3, a3, a5
  addi a3, a3, 97
  andi a3, a3, 255
  addi a2, a2, -1
  bnez a2, 3b
  # A misaligned doubleword across a page boundary, and AMOs.
  la a0, big
  li a4, 4093
  add a4, a4, a0
  sd a1, 0(a4)
  ld a5, 0(a4)
  la a4, beside
  li a5, 3
  amoadd.d a5, a5, (a4)
  lr.d a5, (a4)
  sc.d a6, a5, (a4)
.option norvc
  to_m
  pass
.align 3
beside: .dword 0
${TRAP_RUNTIME_DATA}
.data
.align 3
satp_value: .dword 0
.align 12
big: .space 65536
`, 1, (m, p) => {
    // The program's first 2 MiB in 4 KiB pages (each a TLB entry of its own), the rest in 2 MiB pages.
    const tables = new PageTables(m, 3);
    const flags = PTE_R | PTE_W | PTE_X | PTE_A | PTE_D;
    for (let k = 0; k < 512; k++) tables.map(BigInt(RAM_BASE + k * 4096), RAM_BASE + k * 4096, flags);
    for (let a = RAM_BASE + (2 << 20); a < RAM_BASE + RAM_BYTES; a += 2 << 20) tables.map(BigInt(a), a, flags, 1);
    m.write64(p.symbols.get('satp_value')!, tables.satp);
  });
  if (outcome === undefined) return;
  assert.ok(stat(outcome, 'system.cpu0.tlb.refills') > 16, 'the walks refilled the TLB');
  assert.ok(stat(outcome, 'system.cpu0.cache.missesLocal') > 4096 / 4, 'the stream missed');
});

test('two harts sharing lines: upgrades, invalidations and AMOs come out the same', (t) => {
  const outcome = assertSameStats(t, `
  # a0 = hart id. Each hart bumps its own word of shared lines (false sharing) and a shared AMO counter,
  # and reads the other hart's word, for 600 rounds; then hart 0 waits for hart 1 and passes.
  la s0, shared
  la s1, done
  addi s4, s0, 128
  slli t0, a0, 3
  add s2, s0, t0
  xori t1, a0, 1
  slli t1, t1, 3
  add s3, s0, t1
  li t2, 600
1:
  ld t3, 0(s2)
  addi t3, t3, 1
  sd t3, 0(s2)
  sd t3, 64(s2)
  ld t4, 0(s3)
  ld t4, 64(s3)
  li t5, 1
  amoadd.d zero, t5, (s4)
  addi t2, t2, -1
  bnez t2, 1b
  li t5, 1
  amoadd.d zero, t5, (s1)
  bnez a0, 3f
2:
  ld t5, 0(s1)
  li t6, 2
  bne t5, t6, 2b
  pass
3:
  j 3b
.data
.align 7
shared: .space 256
done: .dword 0
`, 2);
  if (outcome === undefined) return;
  assert.ok(stat(outcome, 'system.cpu0.cache.invalidations') > 100, 'hart 1 invalidated hart 0\'s lines');
  assert.ok(stat(outcome, 'system.cpu1.cache.upgrades') > 100, 'hart 1 upgraded shared lines');
});
