// A machine run as a simulation: its statistics registry, the timing model when it has one, and the
// answers to the guest's requests (control device and SBI vendor extension: region of interest, statistics
// dumps and resets), so that `run`, the experiments and the control socket share one behaviour.

import {
  CONTROL_INVALID_PARAM, CONTROL_NOT_SUPPORTED, CONTROL_QUERY_MODE, CONTROL_ROI_BEGIN, CONTROL_ROI_END, CONTROL_STATS_DUMP,
  CONTROL_STATS_RESET,
} from '../devices/control.js';
import { TIMEBASE_HZ } from '../timing/clock.js';
import { StatsRegistry, type StatSample } from '../timing/stats.js';
import type { TimingModel } from '../timing/timing-model.js';
import type { Machine } from './machine.js';
import { executionMode, registerMachineStats, setExecutionMode, type StatsBaseline } from './timing-mode.js';

/** A snapshot the guest asked for (`mbctl stats dump TAG`), in the order asked. */
export interface StatsDump {
  tag: number;
  samples: StatSample[];
}

/** At most this many dumps are kept: a guest dumping in a loop must not exhaust the host's memory. */
export const MAX_DUMPS = 10_000;

export class Simulation {
  readonly stats = new StatsRegistry();
  readonly dumps: StatsDump[] = [];
  /** Requests refused because MAX_DUMPS was reached. */
  droppedDumps = 0;

  /**
   * Registers the machine's statistics (and the model's, when given) and, with a model, answers the
   * guest's requests on `machine.control`. Without a model the guest's requests stay "not supported".
   */
  /** Where the machine's statistics count from (moved by every reset; saved in snapshots). */
  readonly baseline: StatsBaseline;

  constructor(readonly machine: Machine, readonly model: TimingModel | undefined) {
    this.baseline = registerMachineStats(this.stats, machine, model);
    this.stats.scalar('system.guestTicks', `Guest time, in ticks of the ${TIMEBASE_HZ} Hz timebase`, 'Tick', () => machine.clock.now());
    if (model !== undefined) machine.control = (request, argument) => this.request(request, argument);
  }

  /** One guest request (devices/control.ts numbering): 0 or the mode, or a negative SBI error. */
  request(request: number, argument: number): number {
    if (this.model === undefined) return CONTROL_NOT_SUPPORTED;
    switch (request) {
      case CONTROL_ROI_BEGIN: setExecutionMode(this.machine, 'timing'); return 0;
      case CONTROL_ROI_END: setExecutionMode(this.machine, 'fast'); return 0;
      case CONTROL_STATS_DUMP: return this.dump(argument);
      case CONTROL_STATS_RESET: this.stats.reset(); return 0;
      case CONTROL_QUERY_MODE: return executionMode(this.machine) === 'timing' ? 1 : 0;
      default: return CONTROL_INVALID_PARAM;
    }
  }

  /** Records a snapshot of every statistic under `tag`. */
  dump(tag: number): number {
    if (this.dumps.length >= MAX_DUMPS) {
      this.droppedDumps++;
      return CONTROL_NOT_SUPPORTED;
    }
    this.dumps.push({ tag, samples: this.stats.snapshot() });
    return 0;
  }
}
