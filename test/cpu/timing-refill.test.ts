// Timing mode charges a TLB refill for the page-table levels the walk actually read: a superpage leaf ends
// the walk early (Sv39: 1 level for a 1 GiB page, 2 for a 2 MiB page, 3 for a 4 KiB page).

import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { RAM_BASE, runAsm } from '../helpers/bare-machine.js';
import { PageTables, PTE_A, PTE_D, PTE_R, PTE_W, PTE_X, TRAP_RUNTIME, TRAP_RUNTIME_DATA } from '../helpers/trap-runtime.js';
import { StatsRegistry } from '../../src/timing/stats.js';
import { TimingModel } from '../../src/timing/timing-model.js';

const RAM_BYTES = 16 << 20;
const LEVEL_CYCLES = 5;
const LATENCIES = { hitCycles: 1, missCycles: [[30]], uncachedCycles: 20, tlbLevelCycles: LEVEL_CYCLES };
/** Virtual addresses of the data page, each mapped by a leaf at a different level. */
const GIGA_VA = RAM_BASE + (6 << 20); // inside the 1 GiB identity page that also maps the code
const MEGA_VA = 0x1_0000_0000; // a 2 MiB page onto RAM + 8 MiB
const SMALL_VA = 0x1_4000_0000; // a 4 KiB page onto RAM + 12 MiB

/** Loads once from `va` in S-mode under Sv39 and returns the refill statistics of hart 0. */
function refills(t: TestContext, va: number): { refills: number; cycles: number; accesses: number; misses: number } | undefined {
  let model: TimingModel | undefined;
  const run = runAsm(t, `${TRAP_RUNTIME}
main:
  la t0, satp_value
  ld t0, 0(t0)
  csrw satp, t0
  sfence.vma
  enter_mode 1
  li a0, ${va}
  ld a1, 0(a0)
  to_m
  pass
${TRAP_RUNTIME_DATA}
.data
.align 3
satp_value: .dword 0
`, {
    ramBytes: RAM_BYTES, maxInstructions: 100_000,
    setup: (m, p) => {
      const tables = new PageTables(m, 3);
      tables.map(BigInt(RAM_BASE), RAM_BASE, PTE_R | PTE_W | PTE_X | PTE_A | PTE_D, 2);
      tables.map(BigInt(MEGA_VA), RAM_BASE + (8 << 20), PTE_R | PTE_W | PTE_A | PTE_D, 1);
      tables.map(BigInt(SMALL_VA), RAM_BASE + (12 << 20), PTE_R | PTE_W | PTE_A | PTE_D, 0);
      m.write64(p.symbols.get('satp_value')!, tables.satp);
      model = new TimingModel({ cpuNode: [0], nodes: [{ base: RAM_BASE, size: RAM_BYTES }], latencies: LATENCIES });
      m.harts[0]!.setMemoryTiming(model);
    },
  });
  if (run === undefined) return undefined;
  assert.equal(run.exitCode, 0);
  const stats = new StatsRegistry();
  model!.registerStats(stats);
  return { refills: stats.read('system.cpu0.tlb.refills'), cycles: stats.read('system.cpu0.tlb.refillCycles'), accesses: model!.accesses(0), misses: model!.missesLocal[0]! };
}

test('a refill costs the levels its walk read: fewer for a superpage leaf', (t) => {
  const giga = refills(t, GIGA_VA);
  const mega = refills(t, MEGA_VA);
  const small = refills(t, SMALL_VA);
  if (giga === undefined || mega === undefined || small === undefined) return;
  // The same walks apart from the data page's: one more level for each smaller leaf.
  assert.equal(mega.refills, giga.refills);
  assert.equal(small.refills, giga.refills);
  assert.equal(mega.cycles - giga.cycles, LEVEL_CYCLES);
  assert.equal(small.cycles - mega.cycles, LEVEL_CYCLES);
  // Everything else ran from the 1 GiB page: every refill of the giga run read one level.
  assert.equal(giga.cycles, giga.refills * LEVEL_CYCLES);
});

test('a walk reads its page-table entries through the cache: each level one access, a table line never read a miss', (t) => {
  const giga = refills(t, GIGA_VA);
  const small = refills(t, SMALL_VA);
  if (giga === undefined || small === undefined) return;
  // The data page's walk reads the root entry only for the 1 GiB page, and two more levels for the 4 KiB one,
  // whose tables were written by the host (not through the cache): their lines miss.
  assert.equal(small.accesses - giga.accesses, 2);
  assert.equal(small.misses - giga.misses, 2);
});
