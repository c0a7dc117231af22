// Issue 17, item 6: the monitor stays invisible. A random S-mode program under Sv39 runs on the bare machine
// and, in chunks, as a VM while the test, playing the monitor, takes pages' permissions away, holds pages,
// moves them between nodes, shares them (within the VM and with a donor VM), replicates them (a page alone,
// or its whole 2 MiB group) and moves the vCPU between nodes (so it reads another node's copies) between
// chunks. Both runs
// must end with the same registers, pc and memory (code, data and page tables); the donor's pages must be
// what they were when shared, or a store went through a read-only shared machine page.
//
// The VM runs until its pc reaches the program's final jump-to-self, not for the bare run's instruction
// count: a shootdown drops the vCPU's LR reservation (as the ISA allows), so the VM may retry an SC the bare
// machine did not, and the program retries until its SC succeeds.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { RAM_BASE } from '../board/address-map.js';
import { Machine } from '../board/machine.js';
import type { Hart } from '../cpu/hart.js';
import { PRIV_S } from '../isa/opcodes.js';
import { ACCESS_READ, ACCESS_WRITE, PERM_NONE, PERM_R, PERM_RWX, PERM_RX } from '../memory/bus.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { BLOCK_PAGES, FREE, PAGE } from './machine-memory.js';
import { Monitor } from './monitor.js';
import type { VirtualMachine } from './vm.js';
import { enterSv39, GuestPageTables, PTE_R, PTE_W, PTE_X } from '../../test/helpers/vm-program.js';
import {
  add, addi, AMO_ADD, AMO_DOUBLE, AMO_LR, AMO_SC, AMO_SWAP, AMO_WORD, amoType, beq, bne, load, mul, or, slli, srli,
  store, sub, xor,
} from '../../test/helpers/rv-encode.js';

const MiB = 2 ** 20;
const VM_BYTES = 16 * MiB;
const NODES = 2;
const quiet = (): void => {};

// ---- the guest's layout ----

const CODE_VA = 0x4000_0000;
/** In another 2 MiB than the code, so the walk goes through four table pages (root, one middle, two leaf tables). */
const DATA_VA = 0x4020_0000;
const DATA_PAGES = 12;
/** Guest-physical pages, counted from RAM_BASE. Data pages are placed in a random order among theirs. */
const CODE_GPPN = 1;
const TABLES_GPPN = 16;
const DATA_GPPN = 32;
const pageAddress = (gppn: number): number => RAM_BASE + gppn * PAGE;

/** Leaves start without A and D: the walker must set them, also on table pages the monitor took away. */
const CODE_LEAF = PTE_R | PTE_X;
const DATA_LEAF = PTE_R | PTE_W;

// ---- registers: random instructions write only scratch ones ----

const SCRATCH_FIRST = 5;
const SCRATCH_LAST = 15;
const SCRATCH_COUNT = SCRATCH_LAST - SCRATCH_FIRST + 1;
const SCRATCH_REGISTERS = Array.from({ length: SCRATCH_COUNT }, (_, k) => SCRATCH_FIRST + k);
/** x20..x27, each the middle of a different data page: offsets of ±2047 reach the whole page. */
const BASE_FIRST = 20;
const BASE_COUNT = 8;
const COUNTER = 28;
const PAGE_MIDDLE = PAGE / 2;
const IMMEDIATE_MIN = -2048;
const IMMEDIATE_MAX = 2047;
const WIDEST_ACCESS = 8;
const INSTRUCTION_BYTES = 4;
const SHIFT_MAX = 63;

const scratch = fc.integer({ min: SCRATCH_FIRST, max: SCRATCH_LAST });
const baseRegister = fc.integer({ min: BASE_FIRST, max: BASE_FIRST + BASE_COUNT - 1 });
const immediate = fc.integer({ min: IMMEDIATE_MIN, max: IMMEDIATE_MAX });
const accessSize = fc.constantFrom(1, 2, 4, 8);

/** An offset from a page's middle: anywhere, or near either edge (near the top, wide accesses cross into the next page). */
const offset = fc.oneof(
  immediate,
  fc.integer({ min: IMMEDIATE_MAX - 2 * WIDEST_ACCESS, max: IMMEDIATE_MAX }),
  fc.integer({ min: IMMEDIATE_MIN, max: IMMEDIATE_MIN + 2 * WIDEST_ACCESS }),
);
/** Rounded down to a multiple of `size` (the page's middle is aligned, so the address is too). */
const alignDown = (value: number, size: number): number => value - (((value % size) + size) % size);

/** One piece of the loop body: one instruction, or a few that belong together. */
const piece: fc.Arbitrary<number[]> = fc.oneof(
  fc.tuple(fc.constantFrom(add, sub, xor, or, mul), scratch, scratch, scratch).map(([op, rd, a, b]) => [op(rd, a, b)]),
  fc.tuple(scratch, scratch, immediate).map(([rd, rs, imm]) => [addi(rd, rs, imm)]),
  fc.tuple(fc.constantFrom(slli, srli), scratch, scratch, fc.integer({ min: 0, max: SHIFT_MAX })).map(([op, rd, rs, n]) => [op(rd, rs, n)]),
  fc.tuple(accessSize, fc.boolean(), fc.boolean(), scratch, baseRegister, offset).map(([size, aligned, unsigned, rd, base, at]) =>
    [load(size, unsigned && size < WIDEST_ACCESS, rd, base, aligned ? alignDown(at, size) : at)]),
  fc.tuple(accessSize, fc.boolean(), scratch, baseRegister, offset).map(([size, aligned, value, base, at]) =>
    [store(size, base, value, aligned ? alignDown(at, size) : at)]),
  // AMOs take no offset: the address goes to a scratch register first, naturally aligned.
  fc.tuple(fc.constantFrom(AMO_ADD, AMO_SWAP), fc.constantFrom(AMO_WORD, AMO_DOUBLE), scratch, scratch, scratch, baseRegister, offset)
    .map(([operation, width, rd, value, address, base, at]) =>
      [addi(address, base, alignDown(at, width === AMO_WORD ? 4 : 8)), amoType(operation, width, rd, address, value)]),
  // LR.D/SC.D, retried until the SC succeeds: an SC may fail whenever the reservation is lost, and the monitor
  // does lose it when it moves, shares or protects the page (a shootdown), so only the retried loop is
  // deterministic. A retry must store what the first try would have: the value is not the flag register (a
  // failed try set it), and the loaded value does not overwrite the address.
  fc.tuple(fc.shuffledSubarray(SCRATCH_REGISTERS, { minLength: 3, maxLength: 3 }), scratch, baseRegister, offset)
    .map(([[address, flag, value], loaded, base, at]) => [
      addi(address!, base, alignDown(at, 8)),
      amoType(AMO_LR, AMO_DOUBLE, loaded === address ? flag! : loaded, address!, 0),
      amoType(AMO_SC, AMO_DOUBLE, flag!, address!, value!),
      bne(flag!, 0, -2 * INSTRUCTION_BYTES),
    ]),
);

interface Program {
  words: number[];
  /** The jump-to-self the program ends in. */
  end: number;
  /** Instructions the bare machine retires to get there (every SC succeeds at once there). */
  instructions: number;
  iterations: number;
  scratchValues: bigint[];
  /** Per base register, the data page (index in the data area) whose middle it points to. */
  basePages: number[];
  /** Per data page (by virtual order), its guest page. */
  dataGppns: number[];
  /** Per data page, the seed of its initial contents, or null for zeros. */
  dataSeeds: (number | null)[];
}

const programArbitrary: fc.Arbitrary<Program> = fc.record({
  body: fc.array(piece, { minLength: 8, maxLength: 40 }),
  iterations: fc.integer({ min: 30, max: 150 }),
  scratchValues: fc.array(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), { minLength: SCRATCH_COUNT, maxLength: SCRATCH_COUNT }),
  // The last data page is never a base: it is the one the highest base page's crossing accesses reach.
  basePages: fc.shuffledSubarray(Array.from({ length: DATA_PAGES - 1 }, (_, k) => k), { minLength: BASE_COUNT, maxLength: BASE_COUNT }),
  dataGppns: fc.shuffledSubarray(Array.from({ length: DATA_PAGES }, (_, k) => DATA_GPPN + k), { minLength: DATA_PAGES, maxLength: DATA_PAGES }),
  dataSeeds: fc.array(fc.option(fc.nat()), { minLength: DATA_PAGES, maxLength: DATA_PAGES }),
}).map(({ body, iterations, ...rest }) => {
  const loop = body.flat();
  const retired = body.reduce((sum, p) => sum + p.length, 0);
  const words = [...loop, addi(COUNTER, COUNTER, -1), bne(COUNTER, 0, -(loop.length + 1) * INSTRUCTION_BYTES), beq(0, 0, 0)];
  const end = CODE_VA + (words.length - 1) * INSTRUCTION_BYTES;
  return { words, end, instructions: iterations * (retired + 2), iterations, ...rest };
});

/** Bytes of a data page from `seed` (a multiply-xorshift stream; zeros for null). */
function pageContents(seed: number | null): Uint8Array {
  const bytes = new Uint8Array(PAGE);
  if (seed === null) return bytes;
  const words = new Int32Array(bytes.buffer);
  let state = seed | 1;
  for (let w = 0; w < words.length; w++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    words[w] = Math.imul(state, 0x9e37_79b1);
  }
  return bytes;
}

/** Loads `program` into guest-physical memory and starts `h` at its first instruction in S-mode under Sv39; returns the table pages. */
function start(h: Hart, memory: GuestMemory, program: Program, translate: boolean): number[] {
  const code = new Uint8Array(new Uint32Array(program.words).buffer);
  memory.write(pageAddress(CODE_GPPN), code);
  const tables = new GuestPageTables(memory, pageAddress(TABLES_GPPN));
  tables.map(CODE_VA, pageAddress(CODE_GPPN), BigInt(CODE_LEAF));
  program.dataGppns.forEach((gppn, k) => {
    tables.map(DATA_VA + k * PAGE, pageAddress(gppn), BigInt(DATA_LEAF));
    memory.write(pageAddress(gppn), pageContents(program.dataSeeds[k]!));
  });
  h.reset(CODE_VA);
  program.scratchValues.forEach((value, k) => { h.x64[SCRATCH_FIRST + k] = value; });
  program.basePages.forEach((page, k) => h.setReg(BASE_FIRST + k, DATA_VA + page * PAGE + PAGE_MIDDLE));
  h.setReg(COUNTER, program.iterations);
  enterSv39(h, tables.root);
  h.setTranslation(translate, 0);
  return tables.tables.map((address) => (address - RAM_BASE) / PAGE);
}

// ---- the monitor's moves between chunks ----

const OPERATIONS = ['none', 'protect', 'migrate', 'share', 'donate', 'hold', 'replicate', 'replicate-group', 'reader'] as const;
const PROTECTIONS = [PERM_NONE, PERM_R, PERM_RX];
/** Chunks of 1 to CHUNK_MAX instructions, often short ones (SHORT_CHUNK_MAX at most), so operations fall between close instructions. */
const CHUNK_MAX = 300;
const SHORT_CHUNK_MAX = 20;
/** Passes through the generated steps with the monitor active; then it leaves the VM alone to finish (a long run of holds could starve it). */
const ACTIVE_PASSES = 3;

/** A chunk, and the operation before it: `pick` chooses the page (modulo the candidates), `detail` the protection or node. */
const stepArbitrary = fc.record({
  chunk: fc.oneof(fc.integer({ min: 1, max: SHORT_CHUNK_MAX }), fc.integer({ min: 1, max: CHUNK_MAX })),
  operation: fc.constantFrom(...OPERATIONS),
  pick: fc.nat(),
  detail: fc.nat(),
});
type Step = typeof stepArbitrary extends fc.Arbitrary<infer T> ? T : never;

/** The test as the monitor: the VM, its donor, the pages it plays with, and what it promised to give back. */
class Meddler {
  /** Donor guest page → its bytes when shared. */
  readonly donated = new Map<number, Uint8Array>();
  held: number[] = [];
  /** Times the whole group of the program's pages got copies, and chunks run on a node with such copies. */
  groupsReplicated = 0;
  chunksOnGroupCopy = 0;
  private nextDonorPage = 0;

  constructor(readonly monitor: Monitor, readonly vm: VirtualMachine, readonly donor: VirtualMachine, readonly pages: readonly number[]) {}

  private machinePage(gppn: number): number {
    return this.vm.pmap.lookup(gppn);
  }

  private shared(gppn: number): boolean {
    return this.monitor.memory.users[this.machinePage(gppn)]! > 1;
  }

  /** The bytes of guest page `gppn`, from its machine page (a held page cannot be read through the bus). */
  private contents(gppn: number): Uint8Array {
    const memory = this.monitor.memory;
    const mpn = this.machinePage(gppn);
    const offset = memory.offsetOf(mpn);
    return memory.regionOf(mpn).u8.slice(offset, offset + PAGE);
  }

  apply(step: Step): void {
    const pmap = this.vm.pmap;
    const pick = <T>(candidates: readonly T[]): T | undefined => candidates[step.pick % Math.max(1, candidates.length)];
    switch (step.operation) {
      case 'none':
        return;
      case 'protect':
        pmap.protect(pick(this.pages)!, PROTECTIONS[step.detail % PROTECTIONS.length]!);
        return;
      case 'migrate': {
        // A shared page does not move alone.
        const gppn = pick(this.pages.filter((g) => !this.shared(g)));
        if (gppn !== undefined) pmap.migrate(gppn, step.detail % NODES);
        return;
      }
      case 'share': {
        // Two of the VM's pages with the same bytes, not yet one machine page.
        const memory = this.monitor.memory;
        const pairs: [number, number][] = [];
        for (const a of this.pages) {
          for (const b of this.pages) {
            if (a < b && this.machinePage(a) !== this.machinePage(b) && memory.samePage(this.machinePage(a), this.machinePage(b))) pairs.push([a, b]);
          }
        }
        const pair = pick(pairs);
        if (pair !== undefined) pmap.shareFrom(pair[0], pmap, pair[1]);
        return;
      }
      case 'donate': {
        const gppn = pick(this.pages)!;
        const donorPage = this.nextDonorPage++;
        const bytes = this.contents(gppn);
        this.donor.machine.bus.guestMemory().write(pageAddress(donorPage), bytes);
        this.donated.set(donorPage, bytes);
        pmap.shareFrom(gppn, this.donor.pmap, donorPage);
        return;
      }
      case 'hold': {
        const gppn = pick(this.pages)!;
        pmap.hold(gppn);
        this.held.push(gppn);
        return;
      }
      case 'replicate':
        pmap.replicate(pick(this.pages)!, [0, 1]);
        return;
      case 'replicate-group': {
        // The program's pages all lie in group 0: every page of it gets its machine page and its permission back
        // (as the guest's first use would), then, if it is one large page, a copy on the other node.
        for (let gppn = 0; gppn < BLOCK_PAGES; gppn++) {
          if (pmap.lookup(gppn) === FREE) pmap.resolveFault(gppn, ACCESS_READ);
          else if (pmap.permission(gppn) !== PERM_RWX) pmap.resolveFault(gppn, ACCESS_WRITE);
        }
        if (pmap.replicateGroup(0, [0, 1]).length > 0) {
          this.groupsReplicated++;
          // Read from the copy at once, also where the vCPU was on node 1 before (it mapped the master there).
          this.readOn(1);
        }
        return;
      }
      case 'reader':
        this.readOn(step.detail % NODES);
        return;
    }
  }

  /**
   * The vCPU comes to a CPU on node `node`, as the monitor moves it: it reads that node's copies, and its TLBs
   * hold nothing of the old CPU's (monitor.ts does the same).
   */
  private readOn(node: number): void {
    const pmap = this.vm.pmap;
    pmap.readerNode = node;
    const h = this.vm.vcpus[0]!;
    h.flushFirstLevel();
    if (pmap.replicatedPages > 0) h.secondLevel?.flush();
  }

  /** Gives back every held page and lets a vCPU waiting on one go on. */
  release(): void {
    for (const gppn of this.held) {
      this.vm.pmap.unhold(gppn);
      this.vm.wakeWaiters(gppn);
    }
    this.held = [];
  }
}

// ---- the property ----

/** The pages hold the same bytes; else names the first byte that differs (a page-sized diff says nothing). */
function assertSamePage(actual: Uint8Array, expected: Uint8Array, what: string): void {
  const at = actual.findIndex((byte, k) => byte !== expected[k]);
  assert.equal(at, -1, `${what} differs at byte 0x${at.toString(16)}: ${actual[at]} instead of ${expected[at]}`);
}

/**
 * Runs `program` on the bare machine, then as a VM in `steps`' chunks with their operations between them,
 * after `initialProtections` (indices into PROTECTIONS, one per page in turn; past its end: left alone).
 */
function assertInvisible(program: Program, steps: readonly Step[], initialProtections: readonly number[], translate: boolean): Meddler {
  // The bare machine: the program to its end in one go.
  const bare = new Machine({ config: { harts: 1, nodes: [{ memoryBytes: VM_BYTES, harts: [0] }] }, builtinSbi: true, translate });
  const bareHart = bare.harts[0]!;
  const bareMemory = bare.bus.guestMemory();
  start(bareHart, bareMemory, program, translate);
  assert.equal(bareHart.run(program.instructions), program.instructions);
  assert.equal(bareHart.pc, program.end, 'the bare run did not reach the end (a trap?)');
  assert.equal(bareHart.priv, PRIV_S);

  // The same program as a VM, in chunks, with the monitor at work between them.
  const monitor = new Monitor({ config: { harts: NODES, nodes: [{ memoryBytes: VM_BYTES, harts: [0] }, { memoryBytes: VM_BYTES, harts: [1] }] } });
  const vm = monitor.createVm({ name: 'guest', vcpus: 1, memoryBytes: VM_BYTES, console: quiet });
  const donor = monitor.createVm({ name: 'donor', vcpus: 1, memoryBytes: VM_BYTES, console: quiet });
  const h = vm.vcpus[0]!;
  const tables = start(h, vm.machine.bus.guestMemory(), program, translate);
  const pages = [CODE_GPPN, ...tables, ...program.dataGppns];
  const meddler = new Meddler(monitor, vm, donor, pages);
  // Only a guard against a VM that never gets there (a trap loop): past the active passes every chunk retires
  // at least one instruction, and the retried SCs add few beyond the bare run's.
  const maxSteps = 2 * program.instructions + ACTIVE_PASSES * steps.length;

  // Before the first instruction no leaf has A or D yet: the walker's writes of them meet these permissions.
  pages.forEach((gppn, k) => {
    const protection = PROTECTIONS[initialProtections[k % initialProtections.length]!];
    if (protection !== undefined) vm.pmap.protect(gppn, protection);
  });
  for (let n = 0; h.pc !== program.end; n++) {
    assert.ok(n < maxSteps, `the VM did not reach the end in ${maxSteps} chunks (pc 0x${h.pc.toString(16)}, priv ${h.priv})`);
    const step = steps[n % steps.length]!;
    if (n < ACTIVE_PASSES * steps.length) meddler.apply(step);
    if (vm.pmap.groupCopiesOf(0)?.[vm.pmap.readerNode] !== undefined && vm.pmap.groupCopiesOf(0)?.[vm.pmap.readerNode] !== FREE) meddler.chunksOnGroupCopy++;
    h.run(step.chunk);
    if (h.suspended) {
      const exit = h.exited;
      assert.ok(exit?.kind === 'guest-page-fault', `the vCPU waits at a ${exit?.kind} exit`);
      const gppn = Math.floor((exit.gpa - RAM_BASE) / PAGE);
      assert.ok(meddler.held.includes(gppn), `the vCPU waits on guest page ${gppn}, which is not held`);
    }
    meddler.release();
    assert.ok(!h.suspended, 'the vCPU still waits after every page was given back');
  }

  assert.equal(h.priv, PRIV_S);
  assert.equal(h.pc, bareHart.pc);
  for (let r = 1; r < 32; r++) assert.equal(h.x64[r], bareHart.x64[r], `x${r}`);
  const vmMemory = vm.machine.bus.guestMemory();
  for (const gppn of pages) {
    assertSamePage(vmMemory.read(pageAddress(gppn), PAGE), bareMemory.read(pageAddress(gppn), PAGE), `guest page ${gppn}`);
  }
  const donorMemory = donor.machine.bus.guestMemory();
  for (const [page, bytes] of meddler.donated) assertSamePage(donorMemory.read(pageAddress(page), PAGE), bytes, `donor page ${page}`);
  return meddler;
}

const RUNS_EACH = 75;

for (const translate of [true, false]) {
  test(`property: a program run as a VM (${translate ? 'translated blocks' : 'interpreter'}), its pages protected, held, moved, shared and replicated between chunks, ends as on the bare machine`, () => {
    let groupsReplicated = 0;
    let chunksOnGroupCopy = 0;
    fc.assert(
      fc.property(
        programArbitrary,
        fc.array(stepArbitrary, { minLength: 1, maxLength: 40 }),
        fc.array(fc.nat(PROTECTIONS.length), { minLength: 1, maxLength: 20 }),
        (program, steps, initialProtections) => {
          const meddler = assertInvisible(program, steps, initialProtections, translate);
          groupsReplicated += meddler.groupsReplicated;
          chunksOnGroupCopy += meddler.chunksOnGroupCopy;
        },
      ),
      { numRuns: RUNS_EACH },
    );
    // The runs must have tried the whole-group copies: replicated, and read from another node's copy.
    assert.ok(groupsReplicated > 0 && chunksOnGroupCopy > 0, `group copies made ${groupsReplicated} times, run on ${chunksOnGroupCopy} times`);
  });
}
