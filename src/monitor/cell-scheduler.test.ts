// Run queues per cell (cell-scheduler.ts): with one cell exactly the plain scheduler; with several, each cell
// picks for its own CPUs only, a spanning VM's vCPUs are dealt over its cells, a failed cell's run queues are
// never touched again, and the whole state saved and restored picks on as if nothing happened.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { CellBus, DEFAULT_HANDLER_CYCLES, DEFAULT_LATENCY } from './cell-bus.js';
import { CellScheduler, cellMigrationCycles } from './cell-scheduler.js';
import { CellObjects, DeadCellError } from './revocable.js';
import { Scheduler, type SchedVcpu } from './scheduler.js';

class FakeVcpu implements SchedVcpu {
  constructor(readonly vm: number, readonly index: number, public awake = true) {}
  runnable(): boolean {
    return this.awake;
  }
}

const NODES = [0, 0, 1, 1, 2, 2, 3, 3];
const CELLS = [[0, 1], [2, 3], [4, 5], [6, 7]];

interface Vm { id: number; vcpus: FakeVcpu[]; cells: number[]; home: number }

function machine(objects?: CellObjects): { scheduler: CellScheduler; vms: Vm[] } {
  const scheduler = new CellScheduler({ pcpuNodes: NODES, quantumRounds: 3, cells: CELLS, objects });
  // Two confined to cell 0, one to cell 2, one spanning all four cells with 6 vCPUs.
  const vms: Vm[] = [
    { id: 0, vcpus: [0, 1, 2].map((i) => new FakeVcpu(0, i)), cells: [0], home: 0 },
    { id: 1, vcpus: [0, 1].map((i) => new FakeVcpu(1, i)), cells: [0], home: 0 },
    { id: 2, vcpus: [0, 1, 2].map((i) => new FakeVcpu(2, i)), cells: [2], home: 2 },
    { id: 3, vcpus: [0, 1, 2, 3, 4, 5].map((i) => new FakeVcpu(3, i)), cells: [0, 1, 2, 3], home: 1 },
  ];
  for (const vm of vms) scheduler.addVm(vm.id, vm.vcpus, { homeNode: vm.home, cells: vm.cells });
  return { scheduler, vms };
}

/** A fixed pattern of sleep, varied enough to move vCPUs about. */
function sleep(vms: readonly Vm[], round: number): void {
  for (const vm of vms) vm.vcpus.forEach((v, i) => { v.awake = (round * 7 + i * 3 + vm.id) % 11 !== 0; });
}

const cellOf = (pcpu: number): number => CELLS.findIndex((c) => c.includes(pcpu));

/**
 * Runs `before` rounds of a scheduler `make` gives (vCPU `i` of VM `vm` awake as `awake` says, charged a
 * varying amount), saves its whole state, restores it into another `make` gives, and checks that the copy's
 * state is the same and that it picks the same as the first for `after` more rounds. Returns the first.
 */
function seam(make: () => { scheduler: CellScheduler; vms: Vm[] }, before: number, after: number, awake: (vm: number, i: number, round: number) => boolean, salt: number): CellScheduler {
  const step = (s: CellScheduler, vms: readonly Vm[], round: number): string[] => {
    for (const vm of vms) vm.vcpus.forEach((v, i) => { v.awake = awake(vm.id, i, round); });
    const picks = s.pick();
    picks.forEach((v, p) => { if (v !== undefined) s.charge(v, 1000 + ((round * 13 + p * 7 + salt) % 500)); });
    return picks.map((v) => (v === undefined ? '-' : `${v.vm}.${v.index}`));
  };
  const straight = make();
  for (let round = 0; round < before; round++) step(straight.scheduler, straight.vms, round);
  const saved = straight.scheduler.saveState();
  const copy = make();
  copy.scheduler.restoreState(saved, (vm, index) => copy.vms[vm]!.vcpus[index]!);
  assert.deepEqual(copy.scheduler.saveState(), saved);
  for (let round = before; round < before + after; round++) {
    assert.deepEqual(step(copy.scheduler, copy.vms, round), step(straight.scheduler, straight.vms, round), `round ${round}`);
  }
  return straight.scheduler;
}

test('one cell: the same picks, charges and saved state as the plain scheduler, round for round', () => {
  const plain = new Scheduler({ pcpuNodes: NODES, quantumRounds: 3 });
  const cells = new CellScheduler({ pcpuNodes: NODES, quantumRounds: 3 });
  const make = (): FakeVcpu[][] => [4, 3, 5].map((n, vm) => Array.from({ length: n }, (_, i) => new FakeVcpu(vm, i)));
  const a = make();
  const b = make();
  a.forEach((vcpus, vm) => plain.addVm(vm, vcpus, { homeNode: vm, share: vm + 1 }));
  b.forEach((vcpus, vm) => cells.addVm(vm, vcpus, { homeNode: vm, share: vm + 1 }));
  for (let round = 0; round < 500; round++) {
    for (const list of [a, b]) list.forEach((vcpus, vm) => vcpus.forEach((v, i) => { v.awake = (round * 5 + i * 3 + vm) % 7 !== 0; }));
    const x = plain.pick();
    const y = cells.pick();
    assert.deepEqual(y.map((v) => v && `${v.vm}.${v.index}`), x.map((v) => v && `${v.vm}.${v.index}`), `round ${round}`);
    x.forEach((v, p) => { if (v !== undefined) plain.charge(v, 1000 + 37 * p); });
    y.forEach((v, p) => { if (v !== undefined) cells.charge(v, 1000 + 37 * p); });
  }
  assert.deepEqual(cells.saveState(), plain.saveState());
});

test('several cells: each picks for its own CPUs only, and a spanning VM\'s vCPUs are dealt over its cells from its home\'s', () => {
  const { scheduler, vms } = machine();
  const seen = new Set<string>();
  for (let round = 0; round < 1000; round++) {
    sleep(vms, round);
    const picks = scheduler.pick();
    picks.forEach((v, pcpu) => {
      if (v === undefined) return;
      const vm = vms[v.vm]!;
      // vCPU i of a VM over k cells is in its (h + i mod k)-th cell, h its home node's cell's place.
      const cell = vm.cells[(vm.cells.indexOf(vm.home) + v.index) % vm.cells.length]!;
      assert.equal(cell, scheduler.cellOfVcpu(vm.cells, vm.home, v.index));
      assert.equal(cellOf(pcpu), cell, `round ${round}: VM ${v.vm}'s vCPU ${v.index} on CPU ${pcpu}`);
      seen.add(`${v.vm}.${v.index}`);
      scheduler.charge(v, 4096);
    });
    // Within a cell no CPU idles while one of that cell's vCPUs waits.
    const running = new Set(picks.filter((v) => v !== undefined));
    picks.forEach((v, pcpu) => {
      if (v !== undefined) return;
      const waiting = vms.flatMap((vm) => vm.vcpus.filter((x) => scheduler.cellOfVcpu(vm.cells, vm.home, x.index) === cellOf(pcpu) && x.awake && !running.has(x)));
      assert.deepEqual(waiting.map((x) => `${x.vm}.${x.index}`), [], `round ${round}: CPU ${pcpu} idles while these wait`);
    });
  }
  assert.equal(seen.size, 14, 'every vCPU ran');
});

test('a failed cell\'s run queues are revoked: its CPUs run nothing, and the others go on without touching it', () => {
  const objects = new CellObjects(4);
  const { scheduler, vms } = machine(objects);
  for (let round = 0; round < 20; round++) {
    sleep(vms, round);
    for (const v of scheduler.pick()) if (v !== undefined) scheduler.charge(v, 4096);
  }
  assert.notEqual(scheduler.lastOn(0), undefined);
  objects.revoke(0);
  // The VMs that depended on cell 0 end; the spanning one's parts in the live cells go, its part in cell 0 is left.
  scheduler.removeVm(0);
  scheduler.removeVm(1);
  scheduler.removeVm(3);
  for (let round = 20; round < 60; round++) {
    sleep(vms, round);
    const picks = scheduler.pick();
    assert.deepEqual([picks[0], picks[1]], [undefined, undefined]);
    for (const v of picks) {
      if (v === undefined) continue;
      assert.equal(v.vm, 2, `round ${round}: only VM 2 is left`);
      scheduler.charge(v, 4096);
    }
  }
  assert.equal(scheduler.lastOn(0), undefined, 'nothing is known of a failed cell\'s CPU');
  assert.equal(scheduler.switches(1), 0);
  scheduler.retirePcpu(1);
  assert.equal(scheduler.pcpusInUse, 7);
  // The check has teeth: the failed cell's scheduler itself throws on any access.
  const inside = (scheduler as unknown as { schedulers: Scheduler[] }).schedulers[0]!;
  assert.throws(() => inside.pick(), (e: unknown) => e instanceof DeadCellError && e.cell === 0);
  assert.throws(() => scheduler.addVm(9, [new FakeVcpu(9, 0)], { cells: [0] }), (e: unknown) => e instanceof DeadCellError);
});

test('property: the whole state saved after any rounds and restored into a fresh scheduler picks on the same, with several cells', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 80 }), fc.integer({ min: 1, max: 60 }), fc.integer({ min: 0, max: 1000 }), (before, after, salt) => {
      seam(machine, before, after, (vm, i, round) => (round * 7 + i * 3 + vm + salt) % 5 !== 0, salt);
    }),
    { numRuns: 60 },
  );
});

test('property: with the balancers moving vCPUs, the whole state saved and restored picks on the same, each vCPU back in its cell', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 0, max: 1000 }), (before, after, salt) => {
      const make = (): { scheduler: CellScheduler; vms: Vm[] } => {
        const scheduler = new CellScheduler({ pcpuNodes: NODES, quantumRounds: 3, cells: CELLS, idleBalance: true, balancePeriodRounds: 7 });
        const vms: Vm[] = [
          { id: 0, vcpus: [0, 1, 2, 3, 4].map((i) => new FakeVcpu(0, i)), cells: [0], home: 0 },
          { id: 1, vcpus: [0, 1, 2].map((i) => new FakeVcpu(1, i)), cells: [1], home: 1 },
          { id: 2, vcpus: [0].map((i) => new FakeVcpu(2, i)), cells: [1], home: 1 },
        ];
        for (const vm of vms) scheduler.addVm(vm.id, vm.vcpus, { homeNode: vm.home, cells: vm.cells });
        return { scheduler, vms };
      };
      const straight = seam(make, before, after, (vm, i, round) => (round * 5 + i * 3 + vm + salt) % 7 !== 0, salt);
      return straight.migrated > 0 || before < 3;
    }),
    { numRuns: 60 },
  );
});

test('property: with gangs across cells, their slots and both balancers, the whole state saved and restored picks on the same', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 200 }), fc.integer({ min: 0, max: 1000 }), (before, after, salt) => {
      // The slots follow the machine's clock, which a whole snapshot keeps (the monitor's cycles): here, the round.
      const clock = { round: 0 };
      const make = (): { scheduler: CellScheduler; vms: Vm[] } => {
        const scheduler = new CellScheduler({ pcpuNodes: NODES, quantumRounds: 3, cells: CELLS, gang: true, idleBalance: true, balancePeriodRounds: 7, now: () => clock.round * 4096, roundCycles: 4096 });
        const vms: Vm[] = [
          { id: 0, vcpus: [0, 1, 2, 3].map((i) => new FakeVcpu(0, i)), cells: [0, 1, 2, 3], home: 0 },
          { id: 1, vcpus: [0, 1, 2, 3, 4].map((i) => new FakeVcpu(1, i)), cells: [0, 1, 2, 3], home: 1 },
          { id: 2, vcpus: [0, 1].map((i) => new FakeVcpu(2, i)), cells: [1], home: 1 },
          { id: 3, vcpus: [0].map((i) => new FakeVcpu(3, i)), cells: [1], home: 1 },
        ];
        for (const vm of vms) scheduler.addVm(vm.id, vm.vcpus, { homeNode: vm.home, cells: vm.cells });
        return { scheduler, vms };
      };
      const awake = (vm: number, i: number, round: number): boolean => {
        clock.round = round;
        return (round * 5 + i * 3 + vm + salt) % 7 !== 0;
      };
      const straight = seam(make, before, after, awake, salt);
      assert.equal(straight.slots.length, 3, 'two rows of spanning gangs (VM 1 has two vCPUs in one cell: they do not fit beside VM 0\'s there), and the confined VMs\' row');
    }),
    { numRuns: 40 },
  );
});

test('one VM saved and put back keeps its vCPUs\' cycles and places, over its cells', () => {
  const { scheduler, vms } = machine();
  for (let round = 0; round < 30; round++) {
    sleep(vms, round);
    for (const v of scheduler.pick()) if (v !== undefined) scheduler.charge(v, 1000 + round);
  }
  const saved = scheduler.saveVm(3);
  assert.equal(saved.cycles.length, 6);
  assert.ok(saved.cycles.every((c) => c > 0));
  // Its home is node 1, cell 1's: vCPU 0 there, vCPU 1 in cell 2, and so on round the cells.
  saved.lastPcpu.forEach((p, i) => assert.equal(cellOf(p), (1 + i) % 4, `vCPU ${i} last ran on CPU ${p}`));
  const copy = machine();
  copy.scheduler.restoreVm(3, saved);
  const back = copy.scheduler.saveVm(3);
  assert.deepEqual({ ...back, holding: [], lastOn: [] }, { ...saved, holding: [], lastOn: [] });
});

test('the idle balancer: vCPUs waiting in a cell go to the nearest cell with idle CPUs, once; off, they wait', () => {
  for (const idleBalance of [false, true]) {
    const scheduler = new CellScheduler({ pcpuNodes: NODES, quantumRounds: 3, cells: CELLS, idleBalance, nodeDistance: (a, b) => 10 + 10 * Math.abs(a - b) });
    const vcpus = [0, 1, 2, 3].map((i) => new FakeVcpu(0, i));
    scheduler.addVm(0, vcpus, { cells: [2] });
    const first = scheduler.pick();
    assert.equal(first.filter((v) => v !== undefined).length, 2, 'cell 2 runs two of the four');
    const moved = scheduler.takeMigrations();
    if (!idleBalance) {
      assert.deepEqual(moved, []);
      for (let round = 0; round < 10; round++) assert.equal(scheduler.pick().filter((v) => v !== undefined).length, 2);
      continue;
    }
    // Cells 1 and 3 are equally near cell 2 (nodes 1 and 3 against node 2): the lower takes both waiting vCPUs.
    assert.deepEqual(moved.map((m) => [m.index, m.from, m.to]), [[2, 2, 1], [3, 2, 1]]);
    assert.deepEqual(scheduler.takeMigrations(), [], 'taken once');
    assert.deepEqual([0, 1, 2, 3].map((i) => scheduler.cellOf(0, i)), [2, 2, 1, 1]);
    for (let round = 0; round < 10; round++) {
      const picks = scheduler.pick();
      assert.deepEqual(picks.map((v) => v?.index ?? '-'), ['-', '-', 2, 3, 0, 1, '-', '-'], `round ${round}: all four run, each in its cell`);
      for (const v of picks) if (v !== undefined) scheduler.charge(v, 1000);
    }
    assert.deepEqual(scheduler.takeMigrations(), [], 'nothing waits: nothing moves again');
    assert.equal(scheduler.migrated, 2);
  }
});

test('a vCPU the idle balancer moves is held by its new cell as the monitor\'s own, not as the proxy read out of the cell it left', () => {
  // The bug: the balancer took the vCPU out of the giving cell's `waiting` list, which hands out that cell's
  // proxies, and the taking cell stored the proxy. Each move nested one more proxy (the experiment's balanced case
  // spent 93 % of its host time in their traps after a few thousand moves), and the new cell's run queue held a
  // reference into the old cell's state, so the old cell's failure broke the new cell's picks.
  const objects = new CellObjects(4);
  const scheduler = new CellScheduler({ pcpuNodes: NODES, quantumRounds: 3, cells: CELLS, objects, idleBalance: true });
  const vcpus = [0, 1, 2].map((i) => new FakeVcpu(0, i));
  scheduler.addVm(0, vcpus, { cells: [2] });
  scheduler.pick();
  assert.deepEqual(scheduler.takeMigrations().map((m) => [m.index, m.from, m.to]), [[2, 2, 1]]);
  objects.revoke(2);
  for (let round = 0; round < 5; round++) {
    const picks = scheduler.pick();
    assert.equal(picks[2], vcpus[2], `round ${round}: cell 1 runs the vCPU it took, the monitor's own object`);
  }
});
test('the idle balancer with gangs moves a VM confined to a cell whole, all its vCPUs, to the nearest cell with idle CPUs for every one', () => {
  const scheduler = new CellScheduler({ pcpuNodes: NODES, quantumRounds: 3, cells: CELLS, idleBalance: true, gang: true });
  scheduler.addVm(0, [0, 1].map((i) => new FakeVcpu(0, i)), { cells: [0] });
  scheduler.addVm(1, [0, 1].map((i) => new FakeVcpu(1, i)), { cells: [0] });
  scheduler.addVm(2, [new FakeVcpu(2, 0)], { cells: [0] });
  // Cell 0 runs VM 0; VM 1 (two vCPUs) goes to cell 1, the nearest with two idle CPUs; VM 2 then to cell 2.
  scheduler.pick();
  const moved = scheduler.takeMigrations();
  assert.deepEqual(moved.map((m) => [m.vm, m.index, m.from, m.to]), [[1, 0, 0, 1], [1, 1, 0, 1], [2, 0, 0, 2]]);
  for (let round = 0; round < 10; round++) {
    const picks = scheduler.pick();
    assert.deepEqual(picks.map((v) => (v === undefined ? '-' : `${v.vm}.${v.index}`)), ['0.0', '0.1', '1.0', '1.1', '2.0', '-', '-', '-'], `round ${round}`);
    for (const v of picks) if (v !== undefined) scheduler.charge(v, 1000);
  }
  assert.deepEqual(scheduler.takeMigrations(), [], 'nothing waits: nothing moves again');
});

test('with gangs the balancers move a gang only to a cell with room for it beside the VMs confined there, even when that cell\'s CPUs idle now', () => {
  for (const [idleBalance, period] of [[true, 0], [false, 4]] as const) {
    const scheduler = new CellScheduler({ pcpuNodes: NODES, quantumRounds: 3, cells: CELLS, idleBalance, balancePeriodRounds: period, gang: true });
    scheduler.addVm(0, [0, 1].map((i) => new FakeVcpu(0, i)), { cells: [0] });
    scheduler.addVm(1, [0, 1].map((i) => new FakeVcpu(1, i)), { cells: [0] });
    // Cell 1's own VM sleeps: its CPUs idle now, but it will want both again.
    scheduler.addVm(2, [0, 1].map((i) => new FakeVcpu(2, i, false)), { cells: [1] });
    for (let round = 0; round < 8; round++) for (const v of scheduler.pick()) if (v !== undefined) scheduler.charge(v, 1000);
    const moved = scheduler.takeMigrations();
    // One of cell 0's two gangs (the one that waited last), whole, to cell 2: not to the nearer cell 1.
    assert.equal(moved.length, 2, `${idleBalance ? 'idle' : 'periodic'}: ${JSON.stringify(moved)}`);
    assert.ok(moved.every((m) => m.vm === moved[0]!.vm && m.from === 0 && m.to === 2), `${idleBalance ? 'idle' : 'periodic'}: ${JSON.stringify(moved)}`);
  }
});

test('with gangs a spanning VM that fits in its home cell is scheduled there whole, and runs together; one larger than a cell is dealt', () => {
  const scheduler = new CellScheduler({ pcpuNodes: NODES, quantumRounds: 3, cells: CELLS, gang: true });
  const wide = [0, 1].map((i) => new FakeVcpu(0, i));
  const huge = [0, 1, 2].map((i) => new FakeVcpu(1, i));
  scheduler.addVm(0, wide, { cells: [0, 1, 2, 3], homeNode: 2 });
  scheduler.addVm(1, huge, { cells: [0, 1, 2, 3], homeNode: 0 });
  assert.deepEqual([0, 1].map((i) => scheduler.cellOf(0, i)), [2, 2]);
  assert.deepEqual([0, 1].map((i) => scheduler.cellOfVcpu([0, 1, 2, 3], 2, i, 2)), [2, 2]);
  assert.deepEqual([0, 1, 2].map((i) => scheduler.cellOf(1, i)), [0, 1, 2], 'three vCPUs fit in no cell of two CPUs');
  for (let round = 0; round < 50; round++) {
    const picks = scheduler.pick();
    const running = wide.filter((v) => picks.includes(v)).length;
    assert.ok(running === 0 || running === 2, `round ${round}: ${running} of the gang's two vCPUs run`);
    for (const v of picks) if (v !== undefined) scheduler.charge(v, 1000);
  }
});

test('property: with gangs, in any number of cells and with both balancers, no VM ever runs with part of its runnable vCPUs, machine-wide, unless a part of it is larger than its cell; none starves', () => {
  const machineShape = fc.record({
    cells: fc.constantFrom(1, 2, 4),
    quantum: fc.integer({ min: 1, max: 4 }),
    idleBalance: fc.boolean(),
    period: fc.constantFrom(0, 3, 10),
    vms: fc.array(fc.record({ vcpus: fc.integer({ min: 1, max: 10 }), cell: fc.integer({ min: 0, max: 3 }), spans: fc.boolean(), home: fc.integer({ min: 0, max: 3 }) }), { minLength: 1, maxLength: 6 }),
  });
  const step = fc.record({ awake: fc.array(fc.boolean(), { minLength: 60, maxLength: 60 }), cycles: fc.integer({ min: 1, max: 10_000 }) });
  fc.assert(
    fc.property(machineShape, fc.array(step, { maxLength: 60 }), (shape, steps) => {
      const perCell = 8 / shape.cells;
      const cells = Array.from({ length: shape.cells }, (_, c) => NODES.map((_, p) => p).filter((p) => Math.floor(p / perCell) === c));
      const scheduler = new CellScheduler({ pcpuNodes: NODES, quantumRounds: shape.quantum, cells, gang: true, idleBalance: shape.idleBalance, balancePeriodRounds: shape.period });
      const vms = shape.vms.map((spec, id) => {
        const vcpus = Array.from({ length: spec.vcpus }, (_, i) => new FakeVcpu(id, i));
        // A VM of more vCPUs than a cell's CPUs spans cells, as the monitor places it; others span on request.
        const spans = spec.spans || spec.vcpus > perCell;
        scheduler.addVm(id, vcpus, { cells: spans ? cells.map((_, c) => c) : [spec.cell % shape.cells], homeNode: spec.home });
        return vcpus;
      });
      const all = vms.flat();
      // A part larger than its cell's CPUs can never run whole (it runs on what there is): that VM is exempt.
      const partFits = vms.map((vcpus, id) => [...new Set(vcpus.map((v) => scheduler.cellOf(id, v.index)))].every((cell) => vcpus.filter((v) => scheduler.cellOf(id, v.index) === cell).length <= perCell));
      const check = (round: number): (SchedVcpu | undefined)[] => {
        const picks = scheduler.pick();
        const chosen = new Set(picks.filter((v) => v !== undefined));
        assert.equal(chosen.size, picks.filter((v) => v !== undefined).length, 'a vCPU on two CPUs');
        for (const [id, vcpus] of vms.entries()) {
          const where = new Set(vcpus.map((v) => scheduler.cellOf(id, v.index)));
          if (vcpus.length <= perCell) assert.ok(where.size === 1, `round ${round}: VM ${id}, which fits in a cell, is split over cells ${[...where].join(', ')}`);
          // The gang invariant, over the whole machine: its runnable vCPUs (one in WFI is idle, and need not run)
          // run all together or not at all, in whatever cells they are.
          const runnable = vcpus.filter((v) => v.runnable());
          const running = runnable.filter((v) => chosen.has(v));
          if (partFits[id]) assert.ok(running.length === 0 || running.length === runnable.length, `round ${round}: VM ${id} runs ${running.length} of its ${runnable.length} runnable vCPUs, in cells ${[...where].join(', ')}`);
        }
        return picks;
      };
      steps.forEach(({ awake, cycles }, round) => {
        all.forEach((v, i) => (v.awake = awake[i]!));
        for (const v of check(round)) if (v !== undefined) scheduler.charge(v, cycles);
      });
      // Liveness: with every vCPU runnable from here on, every VM runs, whole.
      for (const v of all) v.awake = true;
      const ran = new Set<number>();
      for (let round = 0; round < 20_000 && ran.size < vms.length; round++) {
        for (const v of check(steps.length + round)) {
          if (v === undefined) continue;
          ran.add(v.vm);
          scheduler.charge(v, 1000);
        }
      }
      assert.equal(ran.size, vms.length, 'a VM starved');
    }),
  );
});

test('the periodic balancer walks the cells\' tree each period, moving one vCPU where it narrows a gap, and never splits a VM', () => {
  const scheduler = new CellScheduler({ pcpuNodes: NODES, quantumRounds: 3, cells: CELLS, balancePeriodRounds: 10 });
  for (let vm = 0; vm < 4; vm++) scheduler.addVm(vm, [new FakeVcpu(vm, 0)], { cells: [0] });
  const wide = [0, 1].map((i) => new FakeVcpu(4, i));
  scheduler.addVm(4, wide, { cells: [1] });
  const where = (): number[] => [0, 1, 2, 3].map((vm) => scheduler.cellOf(vm, 0));
  const rounds = (n: number): void => {
    for (let r = 0; r < n; r++) for (const v of scheduler.pick()) if (v !== undefined) scheduler.charge(v, 1000);
  };
  rounds(9);
  assert.deepEqual(where(), [0, 0, 0, 0], 'nothing moves within a period');
  rounds(1);
  // Cells 0 and 1 (4 + 2 runnable on 4 CPUs) against 2 and 3 (none): one to cell 2; then within each side,
  // cell 0 (4 on 2 CPUs) against cell 1 (2 on 2): none, as a move would only swap the gap.
  assert.deepEqual(scheduler.takeMigrations().map((m) => [m.vm, m.from, m.to]), [[0, 0, 2]]);
  // Next period: 5 on 4 CPUs against 1: cell 0 (3 on 2) gives one to cell 3. The one after: 4 against 2, one
  // more from cell 0 (ties: the lower) to cell 2. Then each side has 3: nothing moves again.
  rounds(30);
  assert.deepEqual(scheduler.takeMigrations().map((m) => [m.vm, m.from, m.to]), [[1, 0, 3], [2, 0, 2]]);
  assert.deepEqual(where(), [2, 3, 2, 0]);
  const picks = scheduler.pick();
  assert.equal(picks.filter((v) => v !== undefined).length, 6, 'every vCPU runs');
  assert.deepEqual([0, 1].map((i) => scheduler.cellOf(4, i)), [1, 1], 'the VM of two vCPUs was never split');
  assert.throws(() => new CellScheduler({ pcpuNodes: NODES, cells: CELLS, balancePeriodRounds: 1.5 }), /whole number of rounds/);
});

test('with the cells\' bus, a balancer\'s move is a request the giving cell answers: paid as its round trip, and nothing moves from a cell that does not answer', () => {
  const down = new Set<number>();
  const bus = new CellBus({ cells: 4, reachable: (from, to) => !down.has(from) && !down.has(to) });
  const scheduler = new CellScheduler({ pcpuNodes: NODES, quantumRounds: 3, cells: CELLS, idleBalance: true, bus });
  scheduler.addVm(0, [0, 1, 2, 3].map((i) => new FakeVcpu(0, i)), { cells: [2] });
  scheduler.addVm(1, [0, 1, 2].map((i) => new FakeVcpu(1, i)), { cells: [3] });
  down.add(3);
  scheduler.pick();
  const moved = scheduler.takeMigrations();
  // Cell 2's two waiting vCPUs go (each a request from the taker, answered); cell 3 answers nothing: its waiting vCPU stays.
  assert.deepEqual(moved.map((m) => [m.vm, m.from, m.handoff]), [[0, 2, 2 * DEFAULT_LATENCY + DEFAULT_HANDLER_CYCLES], [0, 2, 2 * DEFAULT_LATENCY + DEFAULT_HANDLER_CYCLES]]);
  assert.deepEqual([0, 1, 2].map((i) => scheduler.cellOf(1, i)), [3, 3, 3]);
  assert.equal(bus.counters.timedOut, 1, 'one request to cell 3, which timed out; no more asked of it that round');
  assert.equal(cellMigrationCycles(2048, moved[0]!.handoff), 700 + 256 * 33);
});

test('with revocable run queues a CPU\'s pick is the very vCPU it holds after the pick, as with one cell', () => {
  // The monitor makes a world switch when a CPU's pick is not `lastOn` of it before the pick: a proxy of the
  // cell's state on one side and the vCPU on the other made every round a world switch under several cells.
  for (const objects of [undefined, new CellObjects(4)]) {
    const { scheduler, vms } = machine(objects);
    const byVcpu = new Set(vms.flatMap((vm) => vm.vcpus));
    for (let round = 0; round < 50; round++) {
      sleep(vms, round);
      const before = NODES.map((_, p) => scheduler.lastOn(p));
      const picks = scheduler.pick();
      picks.forEach((v, p) => {
        if (v === undefined) return;
        assert.ok(byVcpu.has(v as FakeVcpu), `round ${round}, CPU ${p}: the pick is not a vCPU the scheduler was given`);
        assert.equal(scheduler.lastOn(p), v, `round ${round}, CPU ${p}: lastOn is not the pick`);
        if (before[p] !== undefined) assert.ok(byVcpu.has(before[p] as FakeVcpu), `round ${round}, CPU ${p}: lastOn is not a vCPU the scheduler was given`);
        scheduler.charge(v, 4096);
      });
    }
  }
});
