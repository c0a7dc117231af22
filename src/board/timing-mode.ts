// Timing mode on a machine: the ccNUMA memory model attached to every hart, and the per-hart statistics.

import type { CacheGeometry } from '../timing/cache.js';
import type { StatsRegistry } from '../timing/stats.js';
import type { TimingLatencies, TimingModel } from '../timing/timing-model.js';
import type { Machine } from './machine.js';
import { timingModelFor } from './topology.js';

/**
 * Builds the timing model for `machine` and makes every hart charge it for each fetch, load, store and
 * TLB refill; translated blocks charge exactly what the interpreter would (docs/translator.md).
 */
export function enableTiming(machine: Machine, latencies: TimingLatencies, cache?: Partial<CacheGeometry>): TimingModel {
  const model = timingModelFor(machine.layout, latencies, cache);
  // DMA is coherent (FLASH's controller invalidated cached copies): a device's write drops every CPU's copy.
  machine.bus.observeDmaWrites((address, length) => model.caches.invalidateRange(address, length));
  for (const hart of machine.harts) {
    hart.setMemoryTiming(model);
  }
  return model;
}

/**
 * Registers per hart `<prefix>.cpuN.instructions` (retired, from instret) and `<prefix>.cpuN.cycles`
 * (simulated: one per instruction plus what timing mode charged), and, when given, the timing model's
 * cache, TLB and per-node memory statistics. A reset starts both hart counts from zero again.
 */
export function registerMachineStats(stats: StatsRegistry, machine: Machine, model?: TimingModel, prefix = 'system'): void {
  const instructionsBase = new Float64Array(machine.harts.length);
  const cyclesBase = new Float64Array(machine.harts.length);
  for (const hart of machine.harts) {
    const n = hart.id;
    stats.scalar(`${prefix}.cpu${n}.instructions`, 'Instructions retired', 'Count', () => hart.instret - instructionsBase[n]!);
    stats.scalar(`${prefix}.cpu${n}.cycles`, 'Simulated cycles: one per instruction plus memory stalls charged in timing mode', 'Cycle',
      () => hart.simulatedCycles - cyclesBase[n]!);
  }
  stats.onReset(() => {
    for (const hart of machine.harts) {
      instructionsBase[hart.id] = hart.instret;
      cyclesBase[hart.id] = hart.simulatedCycles;
    }
  });
  model?.registerStats(stats, prefix);
}
