// Tests of the overhead experiment's variants and exit tables: what each exit cause costs, the monitor's
// cycles by kind, and the VMs `--mmu` and `--cost-scales` ask for.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { overheadVariants, pickWorkloads } from '../cli/experiment.js';
import { UsageError } from '../cli/options.js';
import { causeCost, DEFAULT_COSTS, type MonitorCosts } from '../monitor/costs.js';
import { exitsTable, figure5Svg, monitorCyclesByKind, variantName, variantsTable } from './overhead-exits.js';
import type { OverheadResult, RunMeasure } from './overhead.js';

/** Every cost a distinct prime, so that a cause priced under the wrong heading shows. */
const PRIMES: MonitorCosts = {
  secondLevelHit: 3, walk: 7, monitorCall: 11, pageFill: 13, pageCopy: 19, protectionFault: 23, worldSwitch: 17,
  timer: 29, ipi: 31, remoteFence: 37, mmio: 41, wfi: 43, interrupt: 47,
};

test('every exit cause the monitor counts has its cost from the table; a DMA fault is charged to no vCPU', () => {
  const expected: [string, number][] = [
    ['guest-page-fault.fill', 13], ['guest-page-fault.copy-on-write', 19], ['guest-page-fault.protection', 23],
    ['guest-page-fault.wait', 23], ['guest-page-fault.dma.fill', 0], ['sbi.time', 29], ['sbi.ipi', 31], ['sbi.rfence', 37],
    ['sbi.base', 11], ['sbi.srst', 11], ['sbi.legacy', 11], ['mmio.ns16550a', 41], ['mmio.virtio-blk', 41], ['wfi', 43],
    ['interrupt.timer', 47], ['interrupt.external', 47], ['world-switch', 17], ['tlb-refill.l2', 3], ['tlb-refill.walk', 7],
  ];
  for (const [cause, cycles] of expected) assert.equal(causeCost(PRIMES, cause), cycles, cause);
  assert.throws(() => causeCost(PRIMES, 'teleport'), /no cost/);
});

function run(exits: Record<string, number>, guestSeconds = 0.5): RunMeasure {
  return {
    guestSeconds, hostSeconds: 1, checksum: '0', breakdown: { user: 600, kernel: 300, monitor: 100, idle: 0 },
    tlbMisses: 0, secondLevelHits: 0, monitorCalls: 0, memoryCycles: 0, exits,
  };
}

test('the monitor cycles of a run by kind follow the scaled table; the tables show every variant', () => {
  const vm = run({ 'tlb-refill.l2': 10, 'tlb-refill.walk': 2, 'sbi.time': 3, 'mmio.ns16550a': 4, 'guest-page-fault.dma.fill': 5 });
  const nominal = monitorCyclesByKind(vm, { mmu: 'software', costScale: 1 });
  const d = DEFAULT_COSTS;
  assert.deepEqual(Object.fromEntries(nominal), {
    'tlb-refill': 10 * d.secondLevelHit + 2 * d.walk, sbi: 3 * d.timer, mmio: 4 * d.mmio, 'guest-page-fault': 0,
  });
  const doubled = monitorCyclesByKind(vm, { mmu: 'software', costScale: 2 });
  for (const [kind, cycles] of nominal) assert.equal(doubled.get(kind), 2 * cycles, kind);

  const result: OverheadResult = {
    workload: 'w', kind: 'cpu-bound', command: 'w', bare: run({}), vm, bareRuns: [0.5], checksums: ['0'], vmRuns: [0.5], ratios: [1.2], simulatedRatio: 1.2,
    hostRatio: 1, withinTarget: false,
    variants: [
      { mmu: 'software', costScale: 1, vm, vmRuns: [0.6, 0.55], ratios: [1.2, 1.1], simulatedRatio: 1.1 },
      { mmu: 'nested', costScale: 0.5, vm, vmRuns: [0.52], ratios: [1.04], simulatedRatio: 1.04 },
    ],
  };
  const variants = variantsTable([result]);
  assert.match(variants, /VM \/ bare, software .*VM \/ bare, nested ×0\.5/);
  assert.match(variants, /\| w +\| 1\.100 \(1\.100–1\.200\) +\| 1\.040 \(1\.040–1\.040\) +\|/);
  const exits = exitsTable([result]);
  // 12 refills in 0.5 s; mmio 4 × its cost of bare's 1000 busy cycles (user, kernel and monitor).
  assert.match(exits, /\| w +\| software +\| +24 +\|/);
  assert.ok(exits.includes(((100 * 4 * d.mmio) / 1000).toFixed(2)), exits);
  assert.equal(variantName({ mmu: 'nested', costScale: 1 }), 'nested');

  // The figure: bare and the nominal-table variants only, the monitor split by kind, a reference line at 1.0,
  // and a width that holds the title.
  const svg = figure5Svg([result], 'timing');
  assert.match(svg, /^<\?xml/);
  assert.ok(svg.includes('>w bare<') && svg.includes('>w software<') && !svg.includes('nested'), svg);
  assert.ok(svg.includes('monitor: mmio') && svg.includes('stroke-dasharray'));
  const width = Number(/<svg [^>]*width="(\d+)"/.exec(svg)![1]);
  const title = /font-weight="bold">([^<]*)</.exec(svg)![1]!;
  assert.ok(width >= title.length * 15 * 0.6, `a ${width} px wide figure clips its ${title.length}-character title`);
});

test('--mmu and --cost-scales ask for every mode with every factor, the nominal table first; bad ones are refused', () => {
  assert.deepEqual(overheadVariants('software', '1'), [{ mmu: 'software', costScale: 1 }]);
  assert.deepEqual(overheadVariants('both', '2,1,0.5'), [
    { mmu: 'software', costScale: 1 }, { mmu: 'software', costScale: 0.5 }, { mmu: 'software', costScale: 2 },
    { mmu: 'nested', costScale: 1 }, { mmu: 'nested', costScale: 0.5 }, { mmu: 'nested', costScale: 2 },
  ]);
  for (const [mmu, scales] of [['shadow', '1'], ['both', '1,,2'], ['nested', 'x'], ['software', '-1'], ['software', '']]) {
    assert.throws(() => overheadVariants(mmu!, scales!), UsageError, `${mmu} ${scales}`);
  }
});

test('--workloads picks by name in the experiment\'s order; an unknown name is refused', () => {
  const all = [{ name: 'cpubench' }, { name: 'raytrace' }, { name: 'pmake' }];
  assert.equal(pickWorkloads(all, undefined), all);
  assert.deepEqual(pickWorkloads(all, 'pmake, cpubench').map((w) => w.name), ['cpubench', 'pmake']);
  for (const names of ['ray', '', 'raytrace,,pmake']) assert.throws(() => pickWorkloads(all, names), UsageError, names);
});
