// Physical memory protection (privileged spec §3.7): NAPOT, NA4 and TOR ranges, priority, partial matches,
// pages the rules split, the L bit, the page walker's own accesses, and PMP writes taking effect at once.
// Each program starts with entry 0 over every address, R W X (TRAP_RUNTIME), and sets up its own entries.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RAM_BASE } from '../helpers/bare-machine.js';
import { causes, PageTables, PTE_A, PTE_D, PTE_R, PTE_W, PTE_X, runPrivileged, type TrapRecord } from '../helpers/trap-runtime.js';

const DATA = RAM_BASE + 0x30_0000;
const LOAD_ACCESS = 5;
const STORE_ACCESS = 7;
const FETCH_ACCESS = 1;
const R = 1, W = 2, X = 4, L = 0x80;
const TOR = 0x08, NA4 = 0x10, NAPOT = 0x18;

/** pmpaddr of a naturally aligned power-of-two region (§3.7.1, table 3.9). */
const napot = (base: number, size: number): string => `0x${(base / 4 + size / 8 - 1).toString(16)}`;
/** pmpaddr of an address (NA4, or the top or bottom of a TOR range). */
const at = (address: number): string => `0x${(address / 4).toString(16)}`;
/** pmpcfg0 holding the configuration bytes of entries 0, 1, … */
const cfg = (...bytes: number[]): string => `0x${bytes.map((b) => b.toString(16).padStart(2, '0')).reverse().join('')}`;

/** The log as "cause@tval" relative to `base` (traps taken in M-mode). */
function faults(log: readonly TrapRecord[], base: number): string[] {
  return log.filter((r) => r.cause !== 8 && r.cause !== 9).map((r) => `${r.cause}@+0x${(Number(r.tval) - base).toString(16)}`);
}

test('with entries implemented and none matching, S and U accesses fail and M-mode ones succeed', (t) => {
  const r = runPrivileged(t, `
main:
  csrw pmpcfg0, zero
  li a1, ${DATA}
  li a2, 7
  sd a2, 0(a1)
  ld a3, 0(a1)
  as_mode 1, ld a4, 0(a1)
  as_mode 0, sd a2, 8(a1)
  pass
`);
  if (!r) return;
  assert.equal(r.machine.reg(13), 7n, 'M-mode loads and stores with no entry matching');
  assert.deepEqual(faults(r.log, DATA), [`${LOAD_ACCESS}@+0x0`, `${STORE_ACCESS}@+0x8`]);
});

test('NAPOT, NA4 and TOR: the lowest-numbered entry matching any byte decides, and fails an access it matches in part', (t) => {
  // 0: NA4 at +0x10, nothing allowed; 1: the page at +0x1000, R; 2: bottom of 3; 3: TOR [+0x2000, +0x2100), R;
  // 4: NA4 at +0x20, R W; 5: NAPOT [DATA, DATA + 0x4000), R W. Beyond +0x4000 nothing matches.
  const r = runPrivileged(t, `
main:
  li t0, ${at(DATA + 0x10)}
  csrw pmpaddr0, t0
  li t0, ${napot(DATA + 0x1000, 0x1000)}
  csrw pmpaddr1, t0
  li t0, ${at(DATA + 0x2000)}
  csrw pmpaddr2, t0
  li t0, ${at(DATA + 0x2100)}
  csrw pmpaddr3, t0
  li t0, ${at(DATA + 0x20)}
  csrw pmpaddr4, t0
  li t0, ${napot(DATA, 0x4000)}
  csrw pmpaddr5, t0
  li t0, ${cfg(NA4, NAPOT | R, 0, TOR | R, NA4 | R | W, NAPOT | R | W)}
  csrw pmpcfg0, t0
  li a1, ${DATA}
  as_mode 1, lw a2, 0x14(a1)
  as_mode 1, lw a2, 0x10(a1)
  as_mode 1, sw a2, 0x14(a1)
  as_mode 1, sh a2, 0x12(a1)
  as_mode 1, ld a2, 0x8(a1)
  as_mode 1, ld a2, 0x10(a1)
  as_mode 1, lw a2, 0xc(a1)
  as_mode 1, lw a2, 0x20(a1)
  as_mode 1, ld a2, 0x20(a1)
  as_mode 1, sw a2, 0x24(a1)
  li a1, ${DATA + 0x1000}
  as_mode 1, lw a2, 0(a1)
  li a1, ${DATA + 0x1ffc}
  as_mode 1, sw a2, 0(a1)
  li a1, ${DATA + 0x2000}
  as_mode 1, lw a2, 0(a1)
  as_mode 1, sw a2, 0(a1)
  as_mode 1, sw a2, 0xfc(a1)
  as_mode 1, sw a2, 0x100(a1)
  li a1, ${DATA + 0x4000}
  as_mode 1, lw a2, -4(a1)
  as_mode 1, lw a2, 0(a1)
  pass
`);
  if (!r) return;
  assert.deepEqual(faults(r.log, DATA), [
    // The page at DATA is split (entries 0, 4 and 5): each access is checked, the ones before it allowed.
    `${LOAD_ACCESS}@+0x10`, `${STORE_ACCESS}@+0x12`, `${LOAD_ACCESS}@+0x10`,
    // Entry 4 allows R but matches only half of the doubleword.
    `${LOAD_ACCESS}@+0x20`,
    `${STORE_ACCESS}@+0x1ffc`,
    `${STORE_ACCESS}@+0x2000`, `${STORE_ACCESS}@+0x20fc`,
    `${LOAD_ACCESS}@+0x4000`,
  ]);
});

test('a page the rules split is fetched one instruction at a time: execution stops at the first one denied X', (t) => {
  const r = runPrivileged(t, `
main:
  la t0, split
  addi t0, t0, 8
  srli t0, t0, 2
  csrw pmpaddr0, t0
  li t0, -1
  csrw pmpaddr1, t0
  li t0, ${cfg(NA4 | R, NAPOT | R | W | X)}
  csrw pmpcfg0, t0
  li a0, 0
  enter_mode 1
  jal ra, split
  jal ra, split
  to_m
  pass

.align 12
split:
  addi a0, a0, 1
  addi a0, a0, 1
  addi a0, a0, 1
  addi a0, a0, 1
  ret
`);
  if (!r) return;
  const split = r.program.symbols.get('split')!;
  assert.deepEqual(faults(r.log, split), [`${FETCH_ACCESS}@+0x8`, `${FETCH_ACCESS}@+0x8`]);
  assert.equal(r.machine.reg(10), 4n, 'two instructions each time');
});

test('the L bit: a locked entry binds M-mode and ignores writes, and a locked TOR entry locks the address below it', (t) => {
  // 0: bottom of 1; 1: TOR [DATA, DATA + 0x1000), R, locked; 2: everything, R W X.
  const r = runPrivileged(t, `
main:
  li a1, ${DATA}
  sw zero, 0(a1)
  li t0, ${at(DATA)}
  csrw pmpaddr0, t0
  li t0, ${at(DATA + 0x1000)}
  csrw pmpaddr1, t0
  li t0, -1
  csrw pmpaddr2, t0
  li t0, ${cfg(0, TOR | R | L, NAPOT | R | W | X)}
  csrw pmpcfg0, t0
  li a5, ${DATA + 0x1000}
  li a2, 5
  sw a2, 0(a1)
  lw a3, 0(a1)
  sw a2, 0(a5)
  csrw pmpaddr0, zero
  csrw pmpaddr1, zero
  csrw pmpcfg0, zero
  csrr s2, pmpaddr0
  csrr s3, pmpaddr1
  csrr s4, pmpcfg0
  sw a2, 0(a1)
  as_mode 1, lw a4, 0(a1)
  as_mode 1, sw a2, 0(a5)
  pass
`);
  if (!r) return;
  const m = r.machine;
  // M-mode's write TLB held the page from the first store: the locked entry still refuses the next.
  assert.deepEqual(faults(r.log, DATA), [`${STORE_ACCESS}@+0x0`, `${STORE_ACCESS}@+0x0`, `${STORE_ACCESS}@+0x1000`]);
  assert.equal(m.reg(13), 0n, 'M-mode reads the locked entry (R)');
  assert.equal(m.read32(DATA + 0x1000), 5, 'outside the locked entry M-mode stores');
  assert.deepEqual([m.reg(18), m.reg(19)], [BigInt(DATA / 4), BigInt((DATA + 0x1000) / 4)], 'pmpaddr0 and 1 kept');
  assert.equal(m.reg(20), BigInt(TOR | R | L) << 8n, 'the locked byte kept, the others cleared');
});

test('the page walker reads PTEs and writes A/D as S-mode: PMP refusing them is an access fault, not a page fault', (t) => {
  const VA0 = 0x4000_0000n;
  const VA1 = VA0 + 4096n;
  let leafTable = 0;
  let pte0 = 0;
  const r = runPrivileged(t, `
main:
  la t0, satp_value
  ld t0, 0(t0)
  csrw satp, t0
  sfence.vma
  la t0, table_napot
  ld t0, 0(t0)
  csrw pmpaddr0, t0
  li t0, -1
  csrw pmpaddr1, t0
  li t0, ${cfg(NAPOT, NAPOT | R | W | X)}
  csrw pmpcfg0, t0
  li a1, ${VA1}
  as_mode 1, ld a2, 0(a1)
  li t0, ${cfg(NAPOT | R, NAPOT | R | W | X)}
  csrw pmpcfg0, t0
  as_mode 1, ld a3, 0(a1)
  as_mode 1, sd a3, 8(a1)
  li a4, ${VA0}
  as_mode 1, ld a5, 0(a4)
  pass
.data
.align 3
satp_value: .dword 0
table_napot: .dword 0
`, {
    ramBytes: 16 << 20,
    setup: (m, p) => {
      const tables = new PageTables(m, 3);
      tables.map(BigInt(RAM_BASE), RAM_BASE, PTE_R | PTE_W | PTE_X | PTE_A | PTE_D, 2);
      pte0 = tables.map(VA0, DATA, PTE_R | PTE_W);
      tables.map(VA1, DATA + 0x1000, PTE_R | PTE_W | PTE_A | PTE_D);
      leafTable = pte0 - (pte0 % 4096);
      m.write64(DATA + 0x1000, 0x77n);
      m.write64(p.symbols.get('satp_value')!, tables.satp);
      m.write64(p.symbols.get('table_napot')!, BigInt(leafTable / 4 + 4096 / 8 - 1));
    },
  });
  if (!r) return;
  const log = r.log.filter((e) => e.cause !== 8 && e.cause !== 9);
  assert.deepEqual(causes(log), ['5@3', '5@3'], 'load access faults, not load page faults (13)');
  assert.deepEqual(log.map((e) => e.tval), [VA1, VA0], 'mtval is the virtual address that walked');
  assert.equal(r.machine.reg(13), 0x77n, 'the table readable: a walk needing no A/D write goes through');
  assert.equal(r.machine.read64(pte0) & PTE_A, 0n, 'the refused A write did not happen');
});

test('a write to pmpcfg or pmpaddr takes effect at once, though the TLBs held the page', (t) => {
  const r = runPrivileged(t, `
main:
  li a1, ${DATA}
  as_mode 1, lw a2, 0(a1)
  li t0, ${cfg(NAPOT | X)}
  csrw pmpcfg0, t0
  as_mode 1, lw a2, 0(a1)
  li t0, ${cfg(NAPOT | R | W | X)}
  csrw pmpcfg0, t0
  as_mode 1, lw a2, 0(a1)
  li t0, ${napot(RAM_BASE, 0x10_0000)}
  csrw pmpaddr0, t0
  as_mode 1, lw a2, 0(a1)
  li t0, -1
  csrw pmpaddr0, t0
  li a0, 0
  enter_mode 1
  jal ra, code
  to_m
  la t0, code
  srli t0, t0, 2
  ori t0, t0, 0x1ff
  csrw pmpaddr0, t0
  li t0, -1
  csrw pmpaddr1, t0
  li t0, ${cfg(NAPOT | R, NAPOT | R | W | X)}
  csrw pmpcfg0, t0
  enter_mode 1
  jal ra, code
  to_m
  pass

.align 12
code:
  addi a0, a0, 1
  ret
`);
  if (!r) return;
  const code = r.program.symbols.get('code')!;
  const log = r.log.filter((e) => e.cause !== 8 && e.cause !== 9);
  assert.deepEqual(log.map((e) => `${e.cause}@0x${e.tval.toString(16)}`), [
    `${LOAD_ACCESS}@0x${DATA.toString(16)}`, `${LOAD_ACCESS}@0x${DATA.toString(16)}`, `${FETCH_ACCESS}@0x${code.toString(16)}`,
  ]);
  assert.equal(r.machine.reg(10), 1n, 'the code ran once, before X was taken away');
});

test('pmpcfg is WARL: the reserved bits read as zero, R=0 W=1 is not kept, and RV64 has no odd pmpcfg', (t) => {
  const r = runPrivileged(t, `
main:
  li t0, 0x6267
  csrw pmpcfg2, t0
  csrr a1, pmpcfg2
  li t0, -1
  csrw pmpaddr9, t0
  csrr a2, pmpaddr9
  csrr a3, pmpcfg1
  pass
`);
  if (!r) return;
  assert.equal(r.machine.reg(11), 0x0007n);
  assert.equal(r.machine.reg(12), (1n << 54n) - 1n, 'pmpaddr holds bits 55..2');
  assert.deepEqual(causes(r.log), ['2@3'], 'pmpcfg1 is an illegal instruction');
});
