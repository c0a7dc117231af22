// Sv39/Sv48 translation: page faults of each kind, hardware A/D, SUM, MXR, superpages, MPRV, SFENCE.VMA
// (privileged spec §3.1.6.3, §4.3–4.5). Page tables are poked into RAM by the test before the run.

import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { RAM_BASE, type BareMachine } from '../helpers/bare-machine.js';
import {
  causes, PageTables, PTE_A, PTE_D, PTE_R, PTE_U, PTE_V, PTE_W, PTE_X, runPrivileged,
} from '../helpers/trap-runtime.js';

const RWX = PTE_R | PTE_W | PTE_X;
/** Physical pages for test data, above the page-table pool. */
const DATA = RAM_BASE + 0x30_0000;
const page = (k: number): number => DATA + k * 4096;
const VA = 0x4000_0000n;
const va = (k: number): bigint => VA + BigInt(k) * 4096n;

/**
 * Runs `body` (M-mode code after satp is loaded from `satp_value` and SFENCE.VMA) with page tables
 * built by `map`. RAM is identity-mapped by a 1 GiB leaf so M, S (and U when `userCode`) code runs.
 */
function runMmu(
  t: TestContext, levels: 3 | 4, map: (pt: PageTables, m: BareMachine, symbol: (name: string) => number) => void,
  body: string, userCode = false,
) {
  let tables: PageTables | undefined;
  const r = runPrivileged(t, `
main:
  la t0, satp_value
  ld t0, 0(t0)
  csrw satp, t0
  sfence.vma
${body}
.data
.align 3
satp_value: .dword 0
`, {
    ramBytes: 16 << 20,
    setup: (m, p) => {
      tables = new PageTables(m, levels);
      tables.map(BigInt(RAM_BASE), RAM_BASE, RWX | PTE_A | PTE_D | (userCode ? PTE_U : 0n), 2);
      map(tables, m, (name) => p.symbols.get(name)!);
      m.write64(p.symbols.get('satp_value')!, tables.satp);
    },
  });
  return r && { ...r, tables: tables! };
}

test('Sv39 4 KiB pages: loads and stores through MPRV as S, values land in the mapped frames', (t) => {
  const r = runMmu(t, 3, (pt, m) => {
    pt.map(va(0), page(0), PTE_R | PTE_W | PTE_A | PTE_D);
    pt.map(va(1), page(5), PTE_R | PTE_W | PTE_A | PTE_D);
    m.write64(page(5) + 16, 0x1234n);
  }, `
  li a1, ${VA}
  li a2, 0x55
  as_mode 1, sd a2, 8(a1)
  li a4, ${va(1)}
  as_mode 1, ld a3, 16(a4)
  pass
`);
  if (!r) return;
  assert.deepEqual(causes(r.log), []);
  assert.equal(r.machine.read64(page(0) + 8), 0x55n);
  assert.equal(r.machine.reg(13), 0x1234n);
});

test('hardware sets A on access and D on write, in the leaf PTE only', (t) => {
  let pteRead = 0;
  let pteWrite = 0;
  let pteReadThenWrite = 0;
  const r = runMmu(t, 3, (pt) => {
    pteRead = pt.map(va(0), page(0), PTE_R | PTE_W);
    pteWrite = pt.map(va(1), page(1), PTE_R | PTE_W);
    pteReadThenWrite = pt.map(va(2), page(2), PTE_R | PTE_W);
  }, `
  li a1, ${VA}
  as_mode 1, ld a2, 0(a1)
  li t1, 4096
  add a1, a1, t1
  as_mode 1, sd a2, 0(a1)
  add a1, a1, t1
  as_mode 1, ld a2, 0(a1)
  as_mode 1, sd a2, 8(a1)
  pass
`);
  if (!r) return;
  const m = r.machine;
  assert.equal(m.read64(pteRead) & (PTE_A | PTE_D), PTE_A);
  assert.equal(m.read64(pteWrite) & (PTE_A | PTE_D), PTE_A | PTE_D);
  assert.equal(m.read64(pteReadThenWrite) & (PTE_A | PTE_D), PTE_A | PTE_D, 'a write after a cached read still sets D');
  const nonLeaf = m.read64(r.tables.pteAddress(va(0), 1));
  assert.equal(nonLeaf & (PTE_A | PTE_D), 0n);
});

test('load and store page faults of each kind, with mtval = the virtual address', (t) => {
  const r = runMmu(t, 3, (pt) => {
    pt.setRaw(va(0), 0, 0n); // invalid
    pt.map(va(1), page(1), PTE_R | PTE_A | PTE_D); // read-only
    pt.map(va(2), page(2), PTE_X | PTE_A); // execute-only
    pt.map(va(3), page(3), PTE_W | PTE_A | PTE_D); // W without R: reserved
    pt.setRaw(va(4), 0, (BigInt(page(4) / 4096) << 10n) | PTE_V | PTE_R | (1n << 60n)); // reserved high bit
    pt.map(va(5), page(5), PTE_R | PTE_W | PTE_U | PTE_A | PTE_D); // user page
  }, `
  li a1, ${VA}
  li t1, 4096
  as_mode 1, ld a2, 0(a1)
  as_mode 1, sd a2, 0(a1)
  add a1, a1, t1
  as_mode 1, ld a2, 0(a1)
  as_mode 1, sd a2, 0(a1)
  add a1, a1, t1
  as_mode 1, ld a2, 0(a1)
  add a1, a1, t1
  as_mode 1, ld a2, 0(a1)
  add a1, a1, t1
  as_mode 1, ld a2, 0(a1)
  add a1, a1, t1
  as_mode 1, ld a2, 0(a1)
  as_mode 0, ld a2, 0(a1)
  li a1, 0x4000000000
  as_mode 1, ld a2, 0(a1)
  li a1, -0x8000000000
  as_mode 1, ld a2, 0(a1)
  pass
`);
  if (!r) return;
  assert.deepEqual(causes(r.log), [
    '13@3', '15@3', // invalid
    '15@3', // read-only: the load is fine, the store faults
    '13@3', // execute-only, MXR clear
    '13@3', // W without R
    '13@3', // reserved bit 60 (no Svpbmt)
    '13@3', // S touching a U page without SUM (U itself may)
    '13@3', // non-canonical: bit 38 set, bits 63..39 clear
    '13@3', // canonical upper half, but nothing mapped there
  ]);
  assert.deepEqual(r.log.map((e) => e.tval), [va(0), va(0), va(1), va(2), va(3), va(4), va(5), 0x4000000000n,
    BigInt.asUintN(64, -0x8000000000n)]);
});

test('SUM lets S read and write U pages; MXR lets loads read execute-only pages', (t) => {
  const r = runMmu(t, 3, (pt, m) => {
    pt.map(va(0), page(0), PTE_R | PTE_W | PTE_U | PTE_A | PTE_D);
    pt.map(va(1), page(1), PTE_X | PTE_A);
    pt.map(va(2), page(2), PTE_X | PTE_U | PTE_A);
    m.write64(page(1), 0x77n);
    m.write64(page(2), 0x88n);
  }, `
  li a1, ${va(0)}
  li t0, MSTATUS_SUM
  csrs mstatus, t0
  li a2, 9
  as_mode 1, sd a2, 0(a1)
  as_mode 1, ld a3, 0(a1)
  li a1, ${va(1)}
  li t0, MSTATUS_MXR
  csrs mstatus, t0
  as_mode 1, ld a4, 0(a1)
  as_mode 1, sd a4, 8(a1)
  li a1, ${va(2)}
  as_mode 0, ld a5, 0(a1)
  li t0, MSTATUS_MXR
  csrc mstatus, t0
  as_mode 0, ld a5, 8(a1)
  pass
`);
  if (!r) return;
  assert.deepEqual(causes(r.log), ['15@3', '13@3'], 'MXR does not make X pages writable; without MXR U cannot read X');
  assert.equal(r.machine.reg(13), 9n);
  assert.equal(r.machine.reg(14), 0x77n);
  assert.equal(r.machine.reg(15), 0x88n);
});

/** jalr x0, 0(ra): a one-instruction function the tests place in executable pages. */
const RET = 0x00008067n;

test('fetch page faults: invalid, not executable, U page from S, S page from U; mepc = mtval = target', (t) => {
  const r = runMmu(t, 3, (pt, m) => {
    pt.setRaw(va(0), 0, 0n);
    pt.map(va(1), page(1), PTE_R | PTE_W | PTE_A | PTE_D);
    pt.map(va(2), page(2), PTE_X | PTE_A);
    pt.map(va(3), page(3), PTE_X | PTE_U | PTE_A);
    m.write64(page(2), RET);
    m.write64(page(3), RET);
  }, `
  enter_mode 1
  li a1, ${va(0)}
  jalr ra, 0(a1)
  li a1, ${va(1)}
  jalr ra, 0(a1)
  li a1, ${va(2)}
  jalr ra, 0(a1)
  li a1, ${va(3)}
  li t0, MSTATUS_SUM
  csrs sstatus, t0
  jalr ra, 0(a1)
  to_m
  pass
`);
  if (!r) return;
  assert.deepEqual(causes(r.log), ['12@3', '12@3', '12@3', '9@3'], 'S ran the X page; U pages never execute in S, SUM or not');
  assert.deepEqual(r.log.slice(0, 3).map((e) => e.tval), [va(0), va(1), va(3)]);
  assert.deepEqual(r.log.slice(0, 3).map((e) => e.epc), [va(0), va(1), va(3)]);
});

test('U-mode: runs U code, faults on S pages for fetch, load and store', (t) => {
  const r = runMmu(t, 3, (pt, m) => {
    pt.map(va(0), page(0), RWX | PTE_A | PTE_D);
    pt.map(va(1), page(1), RWX | PTE_U | PTE_A | PTE_D);
    m.write64(page(0), RET);
    m.write64(page(1), RET);
  }, `
  enter_mode 0
  li a1, ${va(1)}
  jalr ra, 0(a1)
  ld a2, 0(a1)
  li a1, ${va(0)}
  ld a2, 0(a1)
  sd a2, 0(a1)
  jalr ra, 0(a1)
  to_m
  pass
`, true);
  if (!r) return;
  assert.deepEqual(causes(r.log), ['13@3', '15@3', '12@3', '8@3']);
  assert.equal(r.machine.reg(12), RET);
});

test('superpages: 2 MiB and 1 GiB leaves translate the offset; a misaligned superpage faults', (t) => {
  const mega = 0x4020_0000n;
  const giga = 0x1_0000_0000n;
  const misaligned = 0x4040_0000n;
  const r = runMmu(t, 3, (pt, m) => {
    pt.map(mega, RAM_BASE + 0x40_0000, PTE_R | PTE_W | PTE_A | PTE_D, 1);
    pt.map(giga, RAM_BASE, PTE_R | PTE_A, 2);
    pt.map(misaligned, RAM_BASE + 0x40_1000, PTE_R | PTE_A, 1);
    m.write64(RAM_BASE + 0x40_0000 + 0x12_3458, 0xabcn);
  }, `
  li a1, ${mega + 0x12_3458n}
  as_mode 1, ld a2, 0(a1)
  li a1, ${giga + 0x40_0000n + 0x12_3458n}
  as_mode 1, ld a3, 0(a1)
  li a1, ${misaligned + 8n}
  as_mode 1, ld a4, 0(a1)
  pass
`);
  if (!r) return;
  assert.equal(r.machine.reg(12), 0xabcn);
  assert.equal(r.machine.reg(13), 0xabcn, 'the gigapage maps RAM_BASE + offset');
  assert.deepEqual(causes(r.log), ['13@3']);
  assert.equal(r.log[0].tval, misaligned + 8n);
});

test('Sv48: four levels, canonical upper-half addresses, a 512 GiB leaf, bit 47 sign extension', (t) => {
  const high = BigInt.asIntN(64, 0xffff_8000_0000_0000n);
  const tera = 0x80_0000_0000n; // 512 GiB
  const r = runMmu(t, 4, (pt, m) => {
    pt.map(BigInt.asUintN(64, high) + 0x5000n, page(0), PTE_R | PTE_W | PTE_A | PTE_D);
    pt.map(tera, 0, PTE_R | PTE_A, 3);
    m.write64(page(0) + 8, 0x4848n);
  }, `
  li a1, ${high + 0x5000n}
  as_mode 1, ld a2, 8(a1)
  li a1, ${tera + BigInt(RAM_BASE)}
  as_mode 1, ld a3, 0(a1)
  li a1, 0x0000800000000000
  as_mode 1, ld a4, 0(a1)
  pass
`);
  if (!r) return;
  assert.equal(r.machine.reg(12), 0x4848n);
  assert.equal(BigInt.asUintN(64, r.machine.reg(13)), r.machine.read64(RAM_BASE), 'the terapage maps physical 0 upward');
  assert.deepEqual(causes(r.log), ['13@3'], 'bit 47 set without sign extension is not canonical');
});

test('SFENCE.VMA makes a changed PTE take effect; a satp write switches tables', (t) => {
  const r = runMmu(t, 3, (pt, m, symbol) => {
    const pte = pt.map(va(0), page(0), PTE_R | PTE_A);
    m.write64(page(0), 1n);
    m.write64(page(1), 2n);
    m.write64(page(2), 3n);
    const other = new PageTables(m, 3, RAM_BASE + 0x28_0000);
    other.map(BigInt(RAM_BASE), RAM_BASE, RWX | PTE_A | PTE_D, 2);
    other.map(va(0), page(2), PTE_R | PTE_A);
    m.write64(symbol('pte_address'), BigInt(pte));
    m.write64(symbol('other_satp'), other.satp);
  }, `
  li a1, ${va(0)}
  as_mode 1, ld a2, 0(a1)
  la t0, pte_address
  ld t0, 0(t0)
  li t1, ${(BigInt(page(1) / 4096) << 10n) | PTE_V | PTE_R | PTE_A}
  sd t1, 0(t0)
  sfence.vma a1, zero
  as_mode 1, ld a3, 0(a1)
  la t0, other_satp
  ld t0, 0(t0)
  csrw satp, t0
  sfence.vma
  as_mode 1, ld a4, 0(a1)
  pass
.data
.align 3
pte_address: .dword 0
other_satp: .dword 0
`);
  if (!r) return;
  assert.deepEqual([r.machine.reg(12), r.machine.reg(13), r.machine.reg(14)], [1n, 2n, 3n]);
});

test('SFENCE.VMA of one address drops just its entry, and every 4 KiB entry of a superpage it lies in', (t) => {
  const SP = 0x4020_0000n; // a 2 MiB superpage, beside the 4 KiB pages at VA
  const BIG = RAM_BASE + 0x40_0000; // 2 MiB aligned physical frames for it, old and new
  const r = runMmu(t, 3, (pt, m, symbol) => {
    const pte0 = pt.map(va(0), page(0), PTE_R | PTE_A);
    const pte1 = pt.map(va(1), page(1), PTE_R | PTE_A);
    const big = pt.map(SP, BIG, PTE_R | PTE_A, 1);
    for (const [k, v] of [[0, 1n], [1, 2n], [2, 3n], [3, 4n]] as const) m.write64(page(k), v);
    m.write64(BIG + 3 * 4096, 5n);
    m.write64(BIG + 0x20_0000 + 3 * 4096, 6n);
    m.write64(symbol('ptes'), BigInt(pte0));
    m.write64(symbol('ptes') + 8, BigInt(pte1));
    m.write64(symbol('ptes') + 16, BigInt(big));
    m.write64(symbol('ptes') + 24, (BigInt(page(2) / 4096) << 10n) | PTE_V | PTE_R | PTE_A);
    m.write64(symbol('ptes') + 32, (BigInt(page(3) / 4096) << 10n) | PTE_V | PTE_R | PTE_A);
    m.write64(symbol('ptes') + 40, (BigInt((BIG + 0x20_0000) / 4096) << 10n) | PTE_V | PTE_R | PTE_A);
  }, `
  li a1, ${va(0)}
  li a2, ${va(1)}
  li a3, ${SP + 3n * 4096n}
  as_mode 1, ld t1, 0(a1)
  as_mode 1, ld t1, 0(a2)
  as_mode 1, ld t1, 0(a3)
  la t0, ptes
  ld t1, 0(t0)
  ld t2, 24(t0)
  sd t2, 0(t1)
  ld t1, 8(t0)
  ld t2, 32(t0)
  sd t2, 0(t1)
  ld t1, 16(t0)
  ld t2, 40(t0)
  sd t2, 0(t1)
  sfence.vma a1, zero
  as_mode 1, ld s2, 0(a1)
  as_mode 1, ld s3, 0(a2)
  li a4, ${SP}
  sfence.vma a4, zero
  as_mode 1, ld s4, 0(a3)
  pass
.data
.align 3
ptes: .dword 0, 0, 0, 0, 0, 0
`);
  if (!r) return;
  // va(0) was fenced: its new frame. va(1) was not: the TLB may still (and here does) use the old entry.
  // The superpage was fenced at its first page: its entry for the fourth page had to go as well.
  // (The three virtual pages use different slots of the direct-mapped TLB.)
  assert.deepEqual([r.machine.reg(18), r.machine.reg(19), r.machine.reg(20)], [3n, 2n, 6n]);
});

test('clearing SUM or MXR, or changing privilege, is honoured even right after a cached translation', (t) => {
  const r = runMmu(t, 3, (pt) => {
    pt.map(va(0), page(0), PTE_R | PTE_W | PTE_U | PTE_A | PTE_D);
    pt.map(va(1), page(1), PTE_X | PTE_A);
    pt.map(va(2), page(2), PTE_R | PTE_W | PTE_A | PTE_D);
  }, `
  li a1, ${va(0)}
  li t0, MSTATUS_SUM
  csrs mstatus, t0
  as_mode 1, ld a2, 0(a1)
  li t0, MSTATUS_SUM
  csrc mstatus, t0
  as_mode 1, ld a2, 0(a1)
  li a1, ${va(1)}
  li t0, MSTATUS_MXR
  csrs mstatus, t0
  as_mode 1, ld a2, 0(a1)
  li t0, MSTATUS_MXR
  csrc mstatus, t0
  as_mode 1, ld a2, 0(a1)
  li a1, ${va(2)}
  as_mode 1, sd a2, 0(a1)
  as_mode 0, sd a2, 0(a1)
  as_mode 0, ld a2, 0(a1)
  pass
`);
  if (!r) return;
  assert.deepEqual(causes(r.log), ['13@3', '13@3', '15@3', '13@3']);
});

test('MPRV: only data accesses are translated, MPP = M means none, MRET to S/U clears MPRV', (t) => {
  const r = runMmu(t, 3, (pt, m) => {
    pt.map(va(0), page(3), PTE_R | PTE_U | PTE_A);
    m.write64(page(3), 0x33n);
  }, `
  li a1, ${va(0)}
  as_mode 0, ld a2, 0(a1)
  li t0, MSTATUS_MPP | MSTATUS_MPRV
  csrs mstatus, t0
  li a1, ${page(3)}
  ld a3, 0(a1)
  li t0, MSTATUS_MPP
  csrc mstatus, t0
  li t0, MSTATUS_MPP_S
  csrs mstatus, t0
  la t0, 1f
  csrw mepc, t0
  mret
1:
  to_m
  csrr a4, mstatus
  pass
`);
  if (!r) return;
  assert.equal(r.machine.reg(12), 0x33n, 'MPRV with MPP = U reads the U page, code still fetched physically');
  assert.equal(r.machine.reg(13), 0x33n, 'MPRV with MPP = M: physical');
  assert.equal(r.machine.reg(14) & 0x20000n, 0n, 'MRET to S cleared MPRV');
  assert.deepEqual(causes(r.log), ['9@3']);
});

test('a page-crossing store that faults on its second page writes nothing; loads leave rd alone', (t) => {
  const r = runMmu(t, 3, (pt) => {
    pt.map(va(0), page(0), PTE_R | PTE_W | PTE_A | PTE_D);
    pt.map(va(1), page(1), PTE_R | PTE_A | PTE_D);
  }, `
  li a1, ${va(1) - 4n}
  li a2, -1
  as_mode 1, sd a2, 0(a1)
  as_mode 1, sw a2, 2(a1)
  li a1, ${va(2) - 2n}
  li a3, 0x1234
  as_mode 1, lw a3, 0(a1)
  pass
`);
  if (!r) return;
  assert.deepEqual(causes(r.log), ['15@3', '15@3', '13@3']);
  assert.equal(r.machine.read64(page(0) + 4088), 0n, 'no byte of the first page was written');
  assert.equal(r.machine.reg(13), 0x1234n);
  for (const e of r.log.slice(0, 2)) assert.ok(e.tval >= va(1) - 4n && e.tval < va(1) + 4n, 'mtval within the access');
});

test('atomics through translation: AMO and SC need write permission, LR read', (t) => {
  const r = runMmu(t, 3, (pt) => {
    pt.map(va(0), page(0), PTE_R | PTE_A | PTE_D);
    pt.setRaw(va(1), 0, 0n);
  }, `
  li a1, ${va(0)}
  as_mode 1, lr.d a2, (a1)
  as_mode 1, sc.d a3, a2, (a1)
  as_mode 1, amoadd.d a3, a2, (a1)
  li a1, ${va(1)}
  as_mode 1, lr.w a2, (a1)
  pass
`);
  if (!r) return;
  assert.deepEqual(causes(r.log), ['15@3', '15@3', '13@3']);
});

test('a page-table walk that leaves RAM is an access fault of the access type', (t) => {
  const r = runMmu(t, 3, (pt) => {
    pt.setRaw(va(0), 1, (0x1000n << 10n) | PTE_V); // next level at physical 0x400_0000, not RAM
  }, `
  li a1, ${va(0)}
  as_mode 1, ld a2, 0(a1)
  as_mode 1, sd a2, 0(a1)
  pass
`);
  if (!r) return;
  assert.deepEqual(causes(r.log), ['5@3', '7@3']);
});

test('a fetch that straddles into an unmapped page: mepc = start of the instruction, mtval = the faulting half', (t) => {
  // page(0) holds, at offset 4094, the first half of `addi a0, a0, 1` (0x00150513); its second half
  // would be on the next page, which is not mapped.
  const start = va(1) - 2n;
  const r = runMmu(t, 3, (pt, m) => {
    pt.map(va(0), page(0), PTE_X | PTE_A);
    m.ram.view.setUint16(page(0) + 4094 - RAM_BASE, 0x0513, true);
  }, `
  enter_mode 1
  li a1, ${start}
  jalr ra, 0(a1)
  to_m
  pass
`);
  if (!r) return;
  assert.deepEqual(causes(r.log), ['12@3', '9@3']);
  assert.equal(r.log[0].epc, start);
  assert.equal(r.log[0].tval, va(1));
});
