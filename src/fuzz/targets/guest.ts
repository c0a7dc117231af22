// Fuzz targets where the hostile party is a vCPU under the monitor: SBI calls with random arguments, and random
// code under random guest page tables while the monitor's pmap operations run at random between rounds.
// Each case gets a fresh guarded monitor (guarded.ts), so a shrunk case replays alone.

import fc from 'fast-check';
import { SATP_MODE_SV39, SATP_MODE_SV48 } from '../../cpu/hart-state.js';
import type { Hart } from '../../cpu/hart.js';
import { PRIV_S } from '../../isa/opcodes.js';
import { PERM_NONE, PERM_R, PERM_RX } from '../../memory/bus.js';
import { EXT_BASE, EXT_DBCN, EXT_HSM, EXT_IPI, EXT_MIRRORBALL, EXT_PMU, EXT_RFENCE, EXT_SRST, EXT_TIME } from '../../board/sbi.js';
import { FREE, PAGE } from '../../monitor/machine-memory.js';
import type { VirtualMachine } from '../../monitor/vm.js';
import type { FuzzSession, FuzzTarget } from '../harness.js';
import { GUARDED_VM_BYTES, GuardedMonitor } from '../guarded.js';

const U64 = 2n ** 64n;
const ECALL = 0x0000_0073;
const WFI = 0x1050_0073;
/** jal x0, -4 */
const JUMP_BACK = 0xffdf_f06f;
const VM_PAGES = GUARDED_VM_BYTES / PAGE;

/** Puts vCPU `h` in S-mode at `pc` with translation off and its TLBs empty. */
function enterS(h: Hart, pc: number): void {
  h.reset(pc);
  h.parked = false;
  h.priv = PRIV_S;
  h.updateTranslation();
}

/** A 64-bit argument: small, a hart id or mask, an address in the VM or just past it, anything. */
const arg = (base: number): fc.Arbitrary<bigint> => fc.oneof(
  { weight: 3, arbitrary: fc.bigInt({ min: -2n, max: 8n }) },
  { weight: 2, arbitrary: fc.integer({ min: -16, max: VM_PAGES + 16 }).map((p) => BigInt(base + p * PAGE)) },
  { weight: 1, arbitrary: fc.integer({ min: -64, max: 64 }).map((d) => BigInt(base + GUARDED_VM_BYTES + d)) },
  { weight: 1, arbitrary: fc.constantFrom(2n ** 63n, 2n ** 63n - 1n, 2n ** 32n, 2n ** 32n - 1n, 2n ** 53n + 1n, -(2n ** 63n)) },
  { weight: 2, arbitrary: fc.bigInt({ min: 0n, max: U64 - 1n }) },
);

const EXTENSIONS = [EXT_BASE, EXT_TIME, EXT_IPI, EXT_RFENCE, EXT_HSM, EXT_SRST, EXT_DBCN, EXT_PMU, EXT_MIRRORBALL, 0, 1, 2, 3, 4, 5, 6, 7, 8];

interface SbiCall { eid: number; fid: number; args: bigint[]; rounds: number }
export interface SbiCase { calls: SbiCall[] }

function sbiCases(base: number): fc.Arbitrary<SbiCase> {
  return fc.record({
    calls: fc.array(fc.record({
      eid: fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...EXTENSIONS) }, { weight: 1, arbitrary: fc.nat({ max: 2 ** 32 - 1 }) }),
      fid: fc.oneof({ weight: 8, arbitrary: fc.nat({ max: 8 }) }, { weight: 1, arbitrary: fc.nat({ max: 2 ** 32 - 1 }) }),
      args: fc.array(arg(base), { minLength: 6, maxLength: 6 }),
      rounds: fc.integer({ min: 1, max: 3 }),
    }), { minLength: 1, maxLength: 12 }),
  });
}

/** Every call made by vCPU 0 from an ECALL, then rounds of the monitor; vCPU 1 may be started, stopped, interrupted. */
export function runSbiCase(c: SbiCase): GuardedMonitor {
  const guarded = new GuardedMonitor({ vcpus: 2 });
  const vm = guarded.target;
  const base = vm.pmap.base;
  const memory = vm.machine.bus.guestMemory();
  memory.write(base, new Uint8Array(Uint32Array.of(ECALL, WFI, JUMP_BACK).buffer));
  const h = vm.vcpus[0]!;
  for (const call of c.calls) {
    if (vm.state !== 'running') break;
    enterS(h, base);
    h.x64[17] = BigInt.asIntN(64, BigInt(call.eid));
    h.x64[16] = BigInt.asIntN(64, BigInt(call.fid));
    call.args.forEach((a, k) => { h.x64[10 + k] = BigInt.asIntN(64, a); });
    for (let r = 0; r < call.rounds; r++) guarded.monitor.runRound();
    guarded.checkTarget();
  }
  return guarded;
}

// ---- random code under random page tables ----

/** Guest-physical page offsets: code, the trap handler's page, page-table pages, data. */
const CODE_PAGE = 0;
const TABLE_PAGE = 16;
const TABLE_PAGES = 8;

interface Pte { table: number; index: number; value: bigint }
type PmapOp =
  | { kind: 'protect'; page: number; allows: number }
  | { kind: 'hold'; page: number; rounds: number }
  | { kind: 'migrate'; page: number; node: number }
  | { kind: 'replicate'; page: number }
  | { kind: 'unmap'; page: number }
  | { kind: 'share' };

export interface MonitorCase {
  code: number[];
  ptes: Pte[];
  satp: { mode: number; asid: number; root: number };
  /** Start with translation on (satp as given) or off. */
  translated: boolean;
  registers: bigint[];
  /** One list of pmap operations per round. */
  rounds: PmapOp[][];
}

/** Instruction words: anything, or the kinds that reach the monitor (memory, CSRs, fences, traps, WFI). */
const instruction = fc.oneof(
  { weight: 3, arbitrary: fc.nat({ max: 2 ** 32 - 1 }) },
  // Loads and stores (any width) off a register, AMOs, LR/SC.
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom(0x03, 0x23, 0x2f), fc.nat({ max: 7 }), fc.nat({ max: 31 }), fc.nat({ max: 31 }), fc.nat({ max: 0xfff })).map(([op, f3, rd, rs, imm]) =>
    (op === 0x23 ? ((imm >> 5) << 25) | (rd << 20) | (rs << 15) | (f3 << 12) | ((imm & 31) << 7) | op : (imm << 20) | (rs << 15) | (f3 << 12) | (rd << 7) | op) >>> 0) },
  // CSR instructions on S-mode CSRs (satp, sstatus, stvec, sie, sip, sepc, ...) and any other.
  { weight: 3, arbitrary: fc.tuple(fc.constantFrom(0x180, 0x100, 0x105, 0x104, 0x144, 0x141, 0x142, 0x143, 0x106, 0x10a, 0xc01, 0x300, 0x3a0, 0x7c0), fc.integer({ min: 1, max: 7 }), fc.nat({ max: 31 }), fc.nat({ max: 31 }))
    .map(([csr, f3, rd, rs]) => ((csr << 20) | (rs << 15) | ((f3 === 4 ? 1 : f3) << 12) | (rd << 7) | 0x73) >>> 0) },
  // SFENCE.VMA, SRET, MRET, WFI, ECALL, EBREAK, FENCE.I, a jump back.
  { weight: 2, arbitrary: fc.constantFrom(0x1200_0073, 0x1020_0073, 0x3020_0073, WFI, ECALL, 0x0010_0073, 0x0000_100f, JUMP_BACK) },
  // lui/addi to make addresses.
  { weight: 2, arbitrary: fc.tuple(fc.nat({ max: 31 }), fc.nat({ max: 0xfffff })).map(([rd, imm]) => ((imm << 12) | (rd << 7) | 0x37) >>> 0) },
);

/** A PTE: invalid, a leaf or a pointer, at a page of the VM (often a table page), past it, or anywhere. */
function pte(base: number): fc.Arbitrary<bigint> {
  const basePage = base / PAGE;
  const ppn = fc.oneof(
    { weight: 3, arbitrary: fc.integer({ min: 0, max: TABLE_PAGE + TABLE_PAGES + 8 }).map((p) => BigInt(basePage + p)) },
    { weight: 2, arbitrary: fc.integer({ min: -8, max: VM_PAGES + 8 }).map((p) => BigInt(basePage + p)) },
    { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: 2n ** 44n - 1n }) },
  );
  return fc.oneof(
    { weight: 6, arbitrary: fc.tuple(ppn, fc.nat({ max: 0xff })).map(([p, flags]) => (p << 10n) | BigInt(flags)) },
    { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: U64 - 1n }) },
  );
}

export function monitorCases(base: number): fc.Arbitrary<MonitorCase> {
  const page = fc.oneof({ weight: 4, arbitrary: fc.nat({ max: TABLE_PAGE + TABLE_PAGES + 8 }) }, { weight: 1, arbitrary: fc.nat({ max: VM_PAGES - 1 }) });
  const pmapOp: fc.Arbitrary<PmapOp> = fc.oneof(
    fc.record({ kind: fc.constant('protect' as const), page, allows: fc.constantFrom(PERM_NONE, PERM_R, PERM_RX) }),
    fc.record({ kind: fc.constant('hold' as const), page, rounds: fc.integer({ min: 1, max: 3 }) }),
    fc.record({ kind: fc.constant('migrate' as const), page, node: fc.nat({ max: 1 }) }),
    fc.record({ kind: fc.constant('replicate' as const), page }),
    fc.record({ kind: fc.constant('unmap' as const), page }),
    fc.record({ kind: fc.constant('share' as const) }),
  );
  return fc.record({
    code: fc.array(instruction, { minLength: 1, maxLength: 64 }),
    ptes: fc.array(fc.record({
      table: fc.nat({ max: TABLE_PAGES - 1 }),
      index: fc.oneof(fc.nat({ max: 3 }), fc.nat({ max: 511 }), fc.constant(2)),
      value: pte(base),
    }), { maxLength: 24 }),
    satp: fc.record({
      mode: fc.oneof({ weight: 6, arbitrary: fc.constantFrom(SATP_MODE_SV39, SATP_MODE_SV48) }, { weight: 1, arbitrary: fc.nat({ max: 15 }) }),
      asid: fc.nat({ max: 0xffff }),
      root: fc.oneof({ weight: 6, arbitrary: fc.nat({ max: TABLE_PAGES - 1 }).map((t) => base / PAGE + TABLE_PAGE + t) }, { weight: 1, arbitrary: fc.nat({ max: 2 ** 44 - 1 }) }),
    }),
    translated: fc.boolean(),
    registers: fc.array(arg(base), { minLength: 31, maxLength: 31 }),
    rounds: fc.array(fc.array(pmapOp, { maxLength: 3 }), { minLength: 1, maxLength: 8 }),
  });
}

/** Writes the case's code and PTEs into `vm` and starts every vCPU on them in S-mode (the hostile-VM test reuses it). */
export function startMonitorCase(vm: VirtualMachine, c: MonitorCase): void {
  const base = vm.pmap.base;
  const memory = vm.machine.bus.guestMemory();
  memory.write(base + CODE_PAGE * PAGE, new Uint8Array(Uint32Array.from(c.code).buffer));
  // The identity map of RAM by one 1 GiB leaf in table 0 (RWX, A, D), so code runs; the case's PTEs go on top.
  memory.writeU32(base + TABLE_PAGE * PAGE + 8 * ((base / 2 ** 30) % 512), ((base / PAGE) << 10 | 0xcf) >>> 0);
  memory.writeU32(base + TABLE_PAGE * PAGE + 8 * ((base / 2 ** 30) % 512) + 4, 0);
  for (const p of c.ptes) {
    const at = base + (TABLE_PAGE + p.table) * PAGE + 8 * p.index;
    memory.writeU32(at, Number(p.value & 0xffff_ffffn));
    memory.writeU32(at + 4, Number(p.value >> 32n));
  }
  for (const h of vm.vcpus) {
    // Written behind the harts' back, as a loader writes: blocks translated from the code before are rechecked.
    h.codeWritten();
    enterS(h, base + CODE_PAGE * PAGE);
    h.stvec = base + CODE_PAGE * PAGE;
    c.registers.forEach((r, k) => { h.x64[k + 1] = BigInt.asIntN(64, r); });
    if (c.translated) {
      h.satpMode = c.satp.mode;
      h.satpAsid = c.satp.asid;
      h.satpPpn = c.satp.root;
      h.updateTranslation();
    }
  }
}

/** Writes the case's code and PTEs, starts both vCPUs on it, and runs its rounds with its pmap operations between them. */
export function runMonitorCase(c: MonitorCase): GuardedMonitor {
  const guarded = new GuardedMonitor({ vcpus: 2 });
  const { monitor, target: vm } = guarded;
  startMonitorCase(vm, c);
  const held: Array<{ page: number; until: number }> = [];
  c.rounds.forEach((ops, round) => {
    for (const o of ops) if (vm.state === 'running') pmapOperation(guarded, o, round, held);
    monitor.runRound();
    for (const h of held.filter((x) => x.until === round)) {
      if (vm.state === 'running' && vm.pmap.held(h.page)) {
        vm.pmap.unhold(h.page);
        vm.wakeWaiters(h.page);
      }
    }
    guarded.checkTarget();
  });
  // Whatever is still held is given back, as the monitor would, and the VM runs on a little.
  for (const h of held) if (vm.state === 'running' && vm.pmap.held(h.page)) { vm.pmap.unhold(h.page); vm.wakeWaiters(h.page); }
  monitor.runRound();
  guarded.checkTarget();
  return guarded;
}

/** One of the monitor's own operations on the attacked VM's pmap, with its preconditions met as the monitor meets them. */
function pmapOperation(guarded: GuardedMonitor, o: PmapOp, round: number, held: Array<{ page: number; until: number }>): void {
  const { monitor, target: vm } = guarded;
  const pmap = vm.pmap;
  if (o.kind === 'share') {
    monitor.sharePages();
    return;
  }
  const mapped = pmap.lookup(o.page) !== FREE;
  if (!mapped || pmap.held(o.page)) return;
  switch (o.kind) {
    case 'protect': pmap.protect(o.page, o.allows); break;
    case 'hold': pmap.hold(o.page); held.push({ page: o.page, until: round + o.rounds }); break;
    case 'migrate': if (pmap.replicasOf(o.page) === undefined) pmap.migrate(o.page, o.node); break;
    case 'replicate': if (monitor.memory.usersOf(pmap.lookup(o.page)).length === 1) pmap.replicate(o.page, [0, 1]); break;
    case 'unmap': pmap.unmap(o.page); break;
  }
}

function guestTarget<C>(name: string, surface: string, cases: (base: number) => fc.Arbitrary<C>, run: (c: C) => GuardedMonitor): FuzzTarget<C> {
  // Every guarded monitor puts the attacked VM's RAM at the same guest-physical base.
  const base = new GuardedMonitor().target.pmap.base;
  return {
    name,
    surface,
    cases: cases(base),
    open(): FuzzSession<C> {
      return { run: (c) => run(c).checkCanary() };
    },
  };
}

export const guestTargets: FuzzTarget<unknown>[] = [
  guestTarget('sbi', 'SBI calls with random extensions, functions and arguments from a vCPU, the monitor answering', sbiCases, runSbiCase),
  guestTarget('monitor', 'random code under random guest page tables (satp, PTEs) on two vCPUs, random pmap operations between rounds', monitorCases, runMonitorCase),
] as FuzzTarget<unknown>[];
