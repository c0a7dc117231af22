// Tests of the vCPU scheduler: its invariants under random workloads, fair shares, quanta, affinity, removal.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Scheduler, type SchedVcpu } from './scheduler.js';

class FakeVcpu implements SchedVcpu {
  awake = true;
  constructor(readonly vm: number, readonly index: number) {}
  runnable(): boolean {
    return this.awake;
  }
}

function vcpusOf(vm: number, count: number): FakeVcpu[] {
  return Array.from({ length: count }, (_, index) => new FakeVcpu(vm, index));
}

/** Runs `rounds` rounds, charging `cycles` to each vCPU that ran; returns the cycles each VM got. */
function run(scheduler: Scheduler, rounds: number, cycles = 4096): Map<number, number> {
  const perVm = new Map<number, number>();
  for (let round = 0; round < rounds; round++) {
    for (const vcpu of scheduler.pick()) {
      if (vcpu === undefined) continue;
      scheduler.charge(vcpu, cycles);
      perVm.set(vcpu.vm, (perVm.get(vcpu.vm) ?? 0) + cycles);
    }
  }
  return perVm;
}

/** VM 0's fraction of the pCPU time the two VMs 0 and 1 got. */
function fractionOfVm0(perVm: Map<number, number>): number {
  const first = perVm.get(0) ?? 0;
  return first / (first + (perVm.get(1) ?? 0));
}

test('property: a pick never repeats a vCPU, picks only runnable ones, and idles no pCPU while one waits', () => {
  const machine = fc.record({
    pcpus: fc.integer({ min: 1, max: 4 }),
    quantum: fc.integer({ min: 1, max: 4 }),
    vms: fc.array(
      fc.record({
        vcpus: fc.integer({ min: 1, max: 4 }),
        share: fc.integer({ min: 1, max: 5 }),
        homeNode: fc.integer({ min: 0, max: 1 }),
      }),
      { minLength: 1, maxLength: 3 },
    ),
  });
  const step = fc.record({
    awake: fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }),
    cycles: fc.nat(10_000),
    remove: fc.option(fc.nat(2), { freq: 10 }),
  });
  fc.assert(
    fc.property(machine, fc.array(step, { maxLength: 40 }), (config, steps) => {
      const pcpuNodes = Array.from({ length: config.pcpus }, (_, pcpu) => pcpu % 2);
      const scheduler = new Scheduler({ pcpuNodes, quantumRounds: config.quantum });
      const live = new Map<number, FakeVcpu[]>();
      config.vms.forEach((vm, id) => {
        live.set(id, vcpusOf(id, vm.vcpus));
        scheduler.addVm(id, live.get(id)!, { share: vm.share, homeNode: vm.homeNode });
      });
      for (const { awake, cycles, remove } of steps) {
        if (remove !== null && live.delete(remove)) scheduler.removeVm(remove);
        const all = [...live.values()].flat();
        all.forEach((vcpu, position) => (vcpu.awake = awake[position]!));
        const picked = scheduler.pick();
        assert.equal(picked.length, config.pcpus);
        const chosen = picked.filter((vcpu) => vcpu !== undefined);
        assert.equal(new Set(chosen).size, chosen.length, 'a vCPU on two pCPUs');
        for (const vcpu of chosen) {
          assert.ok(all.includes(vcpu as FakeVcpu) && vcpu.runnable(), 'picked a vCPU that cannot run');
        }
        const runnable = all.filter((vcpu) => vcpu.runnable()).length;
        assert.equal(chosen.length, Math.min(config.pcpus, runnable), 'a pCPU idles while a runnable vCPU waits');
        picked.forEach((vcpu, pcpu) => {
          if (vcpu !== undefined) assert.equal(scheduler.lastOn(pcpu), vcpu);
        });
        for (const vcpu of chosen) scheduler.charge(vcpu, cycles);
      }
    }),
  );
});

test('shares 1 and 3 get pCPU time 1:3, equal shares get equal time', () => {
  for (const [shares, expected] of [[[1, 3], 0.25], [[1, 1], 0.5], [[3, 1], 0.75]] as const) {
    const scheduler = new Scheduler({ pcpuNodes: [0, 0] });
    scheduler.addVm(0, vcpusOf(0, 4), { share: shares[0] });
    scheduler.addVm(1, vcpusOf(1, 4), { share: shares[1] });
    const fraction = fractionOfVm0(run(scheduler, 64 * 200));
    assert.ok(Math.abs(fraction - expected) < 0.02, `shares ${shares}: VM 0 got ${fraction}, expected ${expected}`);
  }
});

test('a vCPU keeps its pCPU for its quantum while another waits, then yields', () => {
  const scheduler = new Scheduler({ pcpuNodes: [0], quantumRounds: 4 });
  const [first, second] = vcpusOf(0, 2);
  scheduler.addVm(0, [first!, second!]);
  const order: (number | undefined)[] = [];
  for (let round = 0; round < 12; round++) {
    const [vcpu] = scheduler.pick();
    order.push(vcpu?.index);
    scheduler.charge(vcpu!, 100);
  }
  assert.deepEqual(order, [0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0]);
  assert.equal(scheduler.switches(0), 2);
  assert.equal(scheduler.lastOn(0), first);
});

test('an idle vCPU gives its pCPU away the next round, and a lone idle pCPU keeps its last vCPU', () => {
  const scheduler = new Scheduler({ pcpuNodes: [0] });
  const [first, second] = vcpusOf(0, 2);
  scheduler.addVm(0, [first!, second!]);
  assert.equal(scheduler.pick()[0], first);
  first!.awake = false;
  assert.equal(scheduler.pick()[0], second);
  second!.awake = false;
  assert.deepEqual(scheduler.pick(), [undefined]);
  assert.equal(scheduler.lastOn(0), second);
  assert.equal(scheduler.switches(0), 1);
});

test('with no more runnable vCPUs than pCPUs all run, and an expired quantum switches nothing', () => {
  const scheduler = new Scheduler({ pcpuNodes: [0, 0, 1, 1], quantumRounds: 2 });
  scheduler.addVm(0, vcpusOf(0, 2));
  scheduler.addVm(1, vcpusOf(1, 2), { share: 5 });
  const first = scheduler.pick();
  for (let round = 0; round < 20; round++) assert.deepEqual(scheduler.pick(), first);
  assert.equal(new Set(first).size, 4);
  for (let pcpu = 0; pcpu < 4; pcpu++) assert.equal(scheduler.switches(pcpu), 0);
});

test('affinity: a VM lands on its home node, and spills to other nodes rather than leave a pCPU idle', () => {
  const scheduler = new Scheduler({ pcpuNodes: [0, 0, 1, 1] });
  const [first, second] = vcpusOf(0, 2);
  scheduler.addVm(0, [first!, second!], { homeNode: 1 });
  assert.deepEqual(scheduler.pick(), [undefined, undefined, first, second]);
  const third = new FakeVcpu(1, 0);
  scheduler.addVm(1, [third], { homeNode: 1 });
  assert.deepEqual(scheduler.pick(), [third, undefined, first, second]);

  const crowded = new Scheduler({ pcpuNodes: [0, 0, 1, 1] });
  const four = vcpusOf(0, 4);
  crowded.addVm(0, four, { homeNode: 1 });
  assert.deepEqual(crowded.pick(), [four[2], four[3], four[0], four[1]]);
});

test('a vCPU that idled comes back to the pCPU it ran on last, not the lowest free one', () => {
  const scheduler = new Scheduler({ pcpuNodes: [0, 0, 0] });
  const [first, second, third] = vcpusOf(0, 3);
  scheduler.addVm(0, [first!, second!, third!]);
  assert.deepEqual(scheduler.pick(), [first, second, third]);
  first!.awake = false;
  second!.awake = false;
  assert.deepEqual(scheduler.pick(), [undefined, undefined, third]);
  second!.awake = true;
  assert.deepEqual(scheduler.pick(), [undefined, second, third]);
  for (let pcpu = 0; pcpu < 3; pcpu++) assert.equal(scheduler.switches(pcpu), 0);
});

test('a removed VM frees its pCPUs at once, and removing it twice throws', () => {
  const scheduler = new Scheduler({ pcpuNodes: [0, 0], quantumRounds: 1000 });
  const gone = vcpusOf(0, 2);
  const staying = vcpusOf(1, 2);
  scheduler.addVm(0, gone);
  scheduler.addVm(1, staying);
  assert.deepEqual(scheduler.pick(), gone);
  scheduler.removeVm(0);
  scheduler.charge(gone[0]!, 4096);
  assert.deepEqual(scheduler.pick(), staying);
  assert.throws(() => scheduler.removeVm(0), /no VM 0/);
});

test('addVm rejects a duplicate id, a share that is not positive, and a foreign vCPU', () => {
  const scheduler = new Scheduler({ pcpuNodes: [0] });
  scheduler.addVm(3, vcpusOf(3, 1));
  assert.throws(() => scheduler.addVm(3, vcpusOf(3, 1)), /VM 3 is already added/);
  for (const share of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.throws(() => scheduler.addVm(4, vcpusOf(4, 1), { share }), /share must be a positive number/);
  }
  assert.throws(() => scheduler.addVm(5, vcpusOf(6, 1)), /belongs to VM 6, not VM 5/);
  assert.throws(() => new Scheduler({ pcpuNodes: [0], quantumRounds: 0 }), /quantumRounds/);
});

test('a VM that slept long does not starve the others when it wakes', () => {
  const scheduler = new Scheduler({ pcpuNodes: [0, 0] });
  const sleeper = vcpusOf(0, 4);
  for (const vcpu of sleeper) vcpu.awake = false;
  scheduler.addVm(0, sleeper);
  scheduler.addVm(1, vcpusOf(1, 4));
  run(scheduler, 10_000);
  for (const vcpu of sleeper) vcpu.awake = true;
  // Within three quanta the VM that kept running has a pCPU again, and over time it gets its half.
  assert.ok((run(scheduler, 3 * 64).get(1) ?? 0) > 0, 'the woken VM kept both pCPUs');
  const fraction = fractionOfVm0(run(scheduler, 64 * 40));
  assert.ok(Math.abs(fraction - 0.5) < 0.05, `after waking, VM 0 got ${fraction} of the time`);
});

test('property: gang scheduling runs each VM\'s runnable vCPUs together or not at all, never idles every pCPU while a gang that fits waits, and starves none', () => {
  const machine = fc.record({
    pcpus: fc.integer({ min: 1, max: 6 }),
    quantum: fc.integer({ min: 1, max: 4 }),
    vms: fc.array(fc.record({ vcpus: fc.integer({ min: 1, max: 4 }), share: fc.integer({ min: 1, max: 3 }) }), { minLength: 1, maxLength: 4 }),
  });
  const step = fc.record({ awake: fc.array(fc.boolean(), { minLength: 16, maxLength: 16 }), cycles: fc.integer({ min: 1, max: 10_000 }) });
  fc.assert(
    fc.property(machine, fc.array(step, { maxLength: 40 }), (config, steps) => {
      const scheduler = new Scheduler({ pcpuNodes: Array.from({ length: config.pcpus }, (_, p) => p % 2), quantumRounds: config.quantum, gang: true });
      const vms = config.vms.map((vm, id) => vcpusOf(id, vm.vcpus));
      vms.forEach((vcpus, id) => scheduler.addVm(id, vcpus, { share: config.vms[id]!.share }));
      const all = vms.flat();
      for (const { awake, cycles } of steps) {
        all.forEach((vcpu, i) => (vcpu.awake = awake[i]!));
        const picked = scheduler.pick();
        const chosen = new Set(picked.filter((v) => v !== undefined));
        assert.equal(chosen.size, picked.filter((v) => v !== undefined).length, 'a vCPU on two pCPUs');
        for (const [id, vcpus] of vms.entries()) {
          const runnable = vcpus.filter((v) => v.runnable());
          const running = runnable.filter((v) => chosen.has(v));
          // A gang that could never run whole (more runnable vCPUs than pCPUs) runs on what is free.
          if (runnable.length <= config.pcpus) assert.ok(running.length === 0 || running.length === runnable.length, `VM ${id} runs ${running.length} of its ${runnable.length} runnable vCPUs`);
        }
        for (const v of chosen) assert.ok(v.runnable(), 'picked a vCPU that cannot run');
        if (chosen.size === 0) assert.ok(all.every((v) => !v.runnable()), 'every pCPU idles while a gang waits');
        for (const v of chosen) scheduler.charge(v, cycles);
      }
      // Liveness: with every vCPU runnable from here on, every VM runs (no gang waits behind smaller ones forever).
      for (const v of all) v.awake = true;
      const ran = new Set<number>();
      // (A VM that ran much may wait, fairly, while the others catch up: the bound is their debt at 1000 a round.)
      for (let round = 0; round < 20_000 && ran.size < vms.length; round++) {
        for (const v of scheduler.pick()) {
          if (v === undefined) continue;
          ran.add(v.vm);
          scheduler.charge(v, 1000);
        }
      }
      assert.equal(ran.size, vms.length, 'a VM starved');
    }),
  );
});

test('gang scheduling: a VM of 3 vCPUs on 4 pCPUs beside a VM of 2 runs whole, in turns, with fair shares of time', () => {
  const scheduler = new Scheduler({ pcpuNodes: [0, 0, 1, 1], quantumRounds: 4, gang: true });
  const big = vcpusOf(0, 3);
  const small = vcpusOf(1, 2);
  scheduler.addVm(0, big);
  scheduler.addVm(1, small);
  const runs: string[] = [];
  for (let round = 0; round < 16; round++) {
    const picked = scheduler.pick().filter((v) => v !== undefined);
    runs.push([...new Set(picked.map((v) => v.vm))].join('+'));
    for (const v of picked) scheduler.charge(v, 1000);
  }
  // They cannot run together (5 vCPUs, 4 pCPUs): each runs whole for its quantum, then the one further behind.
  // A gang of 3 spends its VM's time half as fast again as one of 2, so the smaller runs two quanta to catch up.
  assert.deepEqual(runs, ['0', '0', '0', '0', '1', '1', '1', '1', '1', '1', '1', '1', '0', '0', '0', '0']);
  // Equal shares get equal time in all, whatever the gang's size.
  const fraction = fractionOfVm0(run(scheduler, 64 * 100, 1000));
  assert.ok(Math.abs(fraction - 0.5) < 0.03, `VM 0 got ${fraction}`);
});
