// Timing mode on a machine: the ccNUMA memory model attached to every hart, and the per-hart statistics.

import type { Hart } from '../cpu/hart.js';
import { PRIV_M, PRIV_S, PRIV_U } from '../isa/opcodes.js';
import type { CacheGeometry } from '../timing/cache.js';
import type { StatsRegistry } from '../timing/stats.js';
import type { TimingLatencies, TimingModel } from '../timing/timing-model.js';
import type { Machine } from './machine.js';
import { timingModelFor } from './topology.js';

export type ExecutionMode = 'fast' | 'timing';

/** The timing model each configured machine has, and whether its harts charge it now. */
const configured = new WeakMap<Machine, { model: TimingModel; mode: ExecutionMode }>();

/**
 * Builds the timing model for `machine` (once: a second call returns the same model) without charging it
 * yet: the machine stays in fast mode until `setExecutionMode(machine, 'timing')`. DMA is coherent, as on
 * FLASH whose controller invalidated cached copies: in timing mode a device's write drops every CPU's copy.
 */
export function configureTiming(machine: Machine, latencies: TimingLatencies, cache?: Partial<CacheGeometry>): TimingModel {
  const existing = configured.get(machine);
  if (existing !== undefined) return existing.model;
  return attachTimingModel(machine, timingModelFor(machine.layout, latencies, cache));
}

/**
 * As configureTiming, with a model made elsewhere: under the monitor every VM's machine shares the physical
 * machine's model (its harts charge it as the CPU in their `timingCpu`). Throws if the machine has one.
 */
export function attachTimingModel(machine: Machine, model: TimingModel): TimingModel {
  if (configured.has(machine)) throw new Error('the machine already has a timing configuration');
  const state = { model, mode: 'fast' as ExecutionMode };
  configured.set(machine, state);
  machine.bus.observeDmaWrites((address, length) => {
    if (state.mode === 'timing') model.caches.invalidateRange(address, length);
  });
  return model;
}

/**
 * Switches `machine` between fast mode (instructions only) and timing mode (every fetch, load, store and
 * TLB refill charged to the model; translated blocks are recompiled to charge exactly what the interpreter
 * would, docs/translator.md). Call it between rounds. The caches keep their contents across a fast period
 * (what the harts did meanwhile is not in them), as a sampled simulation warms them again. Throws when
 * the machine has no timing configuration.
 */
export function setExecutionMode(machine: Machine, mode: ExecutionMode): void {
  const state = configured.get(machine);
  if (state === undefined) throw new Error('timing mode needs a timing configuration (configureTiming)');
  if (state.mode === mode) return;
  state.mode = mode;
  for (const hart of machine.harts) hart.setMemoryTiming(mode === 'timing' ? state.model : undefined);
}

/** The machine's current mode: fast unless timing is configured and on. */
export function executionMode(machine: Machine): ExecutionMode {
  return configured.get(machine)?.mode ?? 'fast';
}

/** The machine's timing model, if it has a timing configuration. */
export function timingModelOf(machine: Machine): TimingModel | undefined {
  return configured.get(machine)?.model;
}

/** configureTiming, then timing mode from now on: what `run --timing` does. */
export function enableTiming(machine: Machine, latencies: TimingLatencies, cache?: Partial<CacheGeometry>): TimingModel {
  const model = configureTiming(machine, latencies, cache);
  setExecutionMode(machine, 'timing');
  return model;
}

/**
 * Registers per hart `<prefix>.cpuN.instructions` (retired, from instret), `<prefix>.cpuN.cycles`
 * (busy: one per instruction plus what timing mode charged) split into `userCycles` and `kernelCycles`
 * (S and M mode), and `idleCycles` (waiting in WFI or stopped); `<prefix>.cycles`, the machine's
 * simulated time; and, when given, the timing model's cache, TLB and per-node memory statistics. A reset
 * starts them all from zero again.
 */
export function registerMachineStats(stats: StatsRegistry, machine: Machine, model?: TimingModel, prefix = 'system'): StatsBaseline {
  const readings: [string, string, (hart: Hart) => number][] = [
    ['instructions', 'Instructions retired', (h) => h.instret],
    ['cycles', 'Busy simulated cycles: one per instruction plus memory stalls charged in timing mode', (h) => h.simulatedCycles],
    ['userCycles', 'Busy cycles in user mode', (h) => h.cyclesAt(PRIV_U)],
    ['kernelCycles', 'Busy cycles in supervisor and machine mode', (h) => h.cyclesAt(PRIV_S) + h.cyclesAt(PRIV_M)],
    ['idleCycles', 'Cycles waiting for an interrupt (WFI) or stopped', (h) => h.idleCycles],
  ];
  const baseline: StatsBaseline = { bases: readings.map(() => new Float64Array(machine.harts.length)), cycles: 0 };
  const bases = baseline.bases;
  for (const hart of machine.harts) {
    readings.forEach(([name, description, read], k) => {
      stats.scalar(`${prefix}.cpu${hart.id}.${name}`, description, name === 'instructions' ? 'Count' : 'Cycle',
        () => read(hart) - bases[k]![hart.id]!);
    });
  }
  stats.scalar(`${prefix}.cycles`, 'Simulated time of the machine, in cycles', 'Cycle', () => machine.cycles - baseline.cycles);
  stats.onReset(() => {
    for (const hart of machine.harts) readings.forEach(([, , read], k) => { bases[k]![hart.id] = read(hart); });
    baseline.cycles = machine.cycles;
  });
  model?.registerStats(stats, prefix);
  return baseline;
}

/**
 * What the machine's statistics count from since the last reset: per reading (instructions, cycles,
 * userCycles, kernelCycles, idleCycles) each hart's value then, and the machine's cycles then.
 */
export interface StatsBaseline {
  readonly bases: Float64Array[];
  cycles: number;
}
