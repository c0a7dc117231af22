// query-cpus (the dashboard's per-CPU time and NUMA map): each physical CPU's busy cycles add up to what the
// vCPUs' accounts say they did, no CPU is much busier than the machine's time, each CPU names the vCPU it ran, and
// timing mode's misses per CPU and per node are there.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { latenciesFromDistances } from '../../src/board/topology.js';
import { cpusReport } from '../../src/control/cpu-commands.js';
import { accountVm } from '../../src/monitor/accounting.js';
import { Monitor } from '../../src/monitor/monitor.js';
import { SEAM_MACHINE, startSeamProgram } from '../helpers/monitor-program.js';

const MiB = 2 ** 20;
const quiet = (): void => {};

for (const mode of ['fast', 'timing'] as const) {
  test(`query-cpus in ${mode} mode: the CPUs' busy cycles are the vCPUs', about the machine's time at most`, () => {
    const monitor = new Monitor({ config: SEAM_MACHINE, log: quiet, timing: { latencies: latenciesFromDistances(SEAM_MACHINE.distances!) } });
    if (mode === 'timing') monitor.setExecutionMode('timing');
    // Three vCPUs on two CPUs: they take turns, so a CPU's time is several vCPUs'.
    const a = monitor.createVm({ name: 'a', vcpus: 2, memoryBytes: 16 * MiB, console: quiet });
    const b = monitor.createVm({ name: 'b', vcpus: 1, memoryBytes: 16 * MiB, console: quiet });
    startSeamProgram(a, 1);
    startSeamProgram(b, 2);
    const start = cpusReport(monitor);
    for (let i = 0; i < 200; i++) monitor.runRound();
    const report = cpusReport(monitor);
    const elapsed = report.cycles - start.cycles;
    assert.ok(elapsed > 0);
    assert.deepEqual(report.cpus.map((c) => [c.cpu, c.node, c.cell, c.failed]), [[0, 0, 0, false], [1, 1, 0, false]]);
    for (const c of report.cpus) {
      const busy = c.userCycles + c.kernelCycles + c.monitorCycles;
      // A little over the machine's time is possible: the monitor's charges before a slice (a world switch)
      // come on top of it, and a slice ends at the instruction that crosses its deadline (in timing mode, at the
      // end of a chunk of instructions with their stalls: about 10 % over here). Not much over.
      assert.ok(busy > 0 && busy <= 1.25 * report.cycles, `cpu ${c.cpu}: ${busy} busy of ${report.cycles}`);
      assert.ok(c.monitorCycles > 0, 'world switches and exits are the monitor\'s');
      assert.ok(c.vm === 'a' || c.vm === 'b', `cpu ${c.cpu} ran ${c.vm}`);
      assert.ok(c.vcpu !== null && c.vcpu < (c.vm === 'a' ? 2 : 1));
    }
    // Every busy cycle of every vCPU was on some CPU, and nothing else was.
    const sum = (f: (c: (typeof report.cpus)[number]) => number): number => report.cpus.reduce((s, c) => s + f(c), 0);
    const accounts = [accountVm(monitor, a), accountVm(monitor, b)];
    const vcpus = (key: 'guestUserCycles' | 'guestKernelCycles' | 'monitorCycles'): number => accounts.reduce((s, x) => s + x.total[key], 0);
    assert.equal(sum((c) => c.userCycles), vcpus('guestUserCycles'));
    assert.equal(sum((c) => c.kernelCycles), vcpus('guestKernelCycles'));
    assert.equal(sum((c) => c.monitorCycles), vcpus('monitorCycles'));
    // The monitor's cycles by kind: each CPU's add up to its monitor cycles, and each kind over the CPUs is that
    // kind over the vCPUs.
    const perKind = (records: Record<string, number>[]): Map<string, number> => {
      const m = new Map<string, number>();
      for (const r of records) for (const [k, n] of Object.entries(r)) m.set(k, (m.get(k) ?? 0) + n);
      return m;
    };
    for (const c of report.cpus) {
      assert.equal(Object.values(c.monitorByKind).reduce((x, y) => x + y, 0), c.monitorCycles, `cpu ${c.cpu}: kinds add up`);
      assert.ok((c.monitorByKind['world-switch'] ?? 0) > 0, `cpu ${c.cpu}: ${JSON.stringify(c.monitorByKind)}`);
    }
    assert.deepEqual([...perKind(report.cpus.map((c) => c.monitorByKind))].sort(), [...perKind(accounts.map((x) => x.total.monitorByKind))].sort());
    for (const x of accounts) {
      for (const v of x.perVcpu) assert.equal(Object.values(v.monitorByKind).reduce((p, q) => p + q, 0), v.monitorCycles, `${x.name} vCPU ${v.index}: kinds add up`);
    }
    if (mode === 'timing') {
      for (const c of report.cpus) assert.ok(c.missesLocal! + c.missesRemote! > 0, `cpu ${c.cpu}'s misses`);
      assert.ok(report.nodes.every((n) => n.linesRead !== null) && report.nodes.some((n) => n.linesRead! > 0), JSON.stringify(report.nodes));
    } else {
      // The machine has a cache model, but fast mode does not use it.
      assert.ok(report.cpus.every((c) => c.missesLocal === 0 && c.missesRemote === 0), JSON.stringify(report.cpus));
    }
    assert.equal(report.policy, null, 'no NUMA policy asked for');
  });
}
