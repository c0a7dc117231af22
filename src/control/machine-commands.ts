// The control commands of one running machine (`mirrorball run --control`): run state, fast/timing mode, statistics.

import type { Machine } from '../board/machine.js';
import { MAX_DUMPS, type Simulation } from '../board/simulation.js';
import { SnapshotError } from '../board/snapshot.js';
import { executionMode, setExecutionMode } from '../board/timing-mode.js';
import { PRIV_M, PRIV_S, PRIV_U } from '../isa/opcodes.js';
import type { CpusReport } from './cpu-commands.js';
import type { RunGate } from '../host/runner.js';
import { enumArgument, integerArgument, QmpError, stringArgument, type QmpCommands } from './qmp.js';
import { faultCommands } from './fault-commands.js';

export interface MachineControl {
  machine: Machine;
  simulation: Simulation;
  gate: RunGate;
  /** Tells every client something happened (STOP, RESUME). */
  event: (name: string, data?: object) => void;
  /** Saves the machine to a file (host/run-snapshot.ts); absent where the machine cannot be saved. */
  saveSnapshot?: (file: string) => object;
}

/** The largest tag a dump may have (the guest's are 32-bit too). */
const MAX_TAG = 2 ** 32 - 1;

export function machineCommands(c: MachineControl): QmpCommands {
  const status = (): string => (c.machine.exit !== undefined ? 'shutdown' : c.gate.paused ? 'paused' : 'running');
  const hardware = c.machine.hardware;
  return {
    // A machine built with its hardware (`run` builds one) takes faults: its guest meets them as hardware errors.
    ...(hardware === undefined ? {} : faultCommands(hardware, () => c.machine.cycles)),
    'query-status': {
      help: 'whether the machine runs: {"running": bool, "status": "running" | "paused" | "shutdown"}',
      run: () => ({ running: status() === 'running', status: status() }),
    },
    stop: {
      help: 'pause the machine (guest time stands still); event STOP',
      run: () => {
        if (c.gate.paused) return {};
        c.gate.pause();
        c.event('STOP');
        return {};
      },
    },
    cont: {
      help: 'resume a paused machine; event RESUME',
      run: () => {
        if (!c.gate.paused) return {};
        c.gate.resume();
        c.event('RESUME');
        return {};
      },
    },
    quit: {
      help: 'stop the machine and end the run (as Ctrl-A x does); event SHUTDOWN',
      run: () => {
        c.machine.stopWith({ kind: 'quit' });
        c.gate.resume();
        return {};
      },
    },
    'snapshot-save': {
      help: 'save the machine to a file between two rounds, to continue it later with `run --restore FILE`: {"file": F} → {"file", "bytes", "pages", "milliseconds"}',
      args: ['file'],
      run: (args) => {
        const file = stringArgument(args, 'file');
        if (file === undefined || file === '') throw new QmpError('GenericError', "Parameter 'file' is missing");
        if (c.saveSnapshot === undefined) throw new QmpError('GenericError', 'this machine cannot be saved');
        if (c.machine.exit !== undefined) throw new QmpError('GenericError', 'the machine has stopped');
        if ((hardware?.report.count ?? 0) > 0) throw new QmpError('GenericError', 'this machine has had hardware faults, which snapshots do not save yet');
        try {
          return c.saveSnapshot(file);
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code;
          const why = error instanceof SnapshotError ? error.message : code !== undefined ? `cannot write '${file}': ${code}` : String(error);
          throw new QmpError('GenericError', why);
        }
      },
    },
    'query-cpus': {
      help: 'the harts as the dashboard draws physical CPUs, in query-cpus\' shape under `up` (no monitor: its cycles 0, no VM): {"cycles", "mode", ' +
        '"cpus": [{"cpu", "node", "userCycles", "kernelCycles" (S and M), "missesLocal", "missesRemote" (timing mode\'s, else null), …}], "nodes", "policy": null}',
      run: () => hartsReport(c.machine, c.simulation),
    },
    'query-machine': {
      help: 'harts, nodes, memory, and how far the machine has run: {"harts", "nodes", "memoryBytes", "instructions", "cycles", "guestTicks"}',
      run: () => ({
        harts: c.machine.harts.length,
        nodes: c.machine.layout.nodes.length,
        memoryBytes: c.machine.layout.nodes.reduce((sum, n) => sum + n.size, 0),
        instructions: c.machine.instructions,
        cycles: c.machine.cycles,
        guestTicks: c.machine.clock.now(),
      }),
    },
    'query-mode': {
      help: 'the execution mode: {"mode": "fast" | "timing", "timingConfigured": bool}',
      run: () => ({ mode: executionMode(c.machine), timingConfigured: c.simulation.model !== undefined }),
    },
    'set-mode': {
      help: 'switch between fast and timing mode while running: {"mode": "fast" | "timing"} (needs --timing)',
      args: ['mode'],
      run: (args) => {
        const mode = enumArgument(args, 'mode', ['fast', 'timing'] as const);
        if (c.simulation.model === undefined) {
          throw new QmpError('GenericError', 'this machine has no timing configuration: start it with --timing or --timing roi');
        }
        setExecutionMode(c.machine, mode);
        return {};
      },
    },
    'stats-reset': {
      help: 'start every statistic from zero again',
      run: () => {
        c.simulation.stats.reset();
        return {};
      },
    },
    'stats-dump': {
      help: 'record a snapshot of every statistic under {"tag": N} (default 0), written to stats.txt and dumps.json at exit',
      args: ['tag'],
      run: (args) => {
        const tag = integerArgument(args, 'tag', 0, MAX_TAG, 0);
        if (c.simulation.dump(tag) !== 0) throw new QmpError('GenericError', `at most ${MAX_DUMPS} dumps are kept`);
        return { dumps: c.simulation.dumps.length };
      },
    },
    'query-stats': {
      help: 'the statistics now, {"name": value | {"label": value}}; {"prefix": "system.cpu0."} to choose',
      args: ['prefix'],
      run: (args) => {
        const prefix = stringArgument(args, 'prefix') ?? '';
        const out: Record<string, number | Record<string, number>> = {};
        for (const s of c.simulation.stats.snapshot()) {
          if (!s.name.startsWith(prefix)) continue;
          out[s.name] = s.kind === 'scalar' ? s.value : Object.fromEntries(s.labels.map((label, i) => [label, s.values[i]!]));
        }
        return out;
      },
    },
  };
}

/**
 * `query-cpus` for one machine (`run`): each hart as a physical CPU in the monitor's reply shape (cpu-commands.ts),
 * so the dashboard draws where its time went; idle is the machine's cycles minus the hart's busy ones.
 */
export function hartsReport(machine: Machine, simulation: Simulation): CpusReport {
  const timing = simulation.model;
  return {
    cycles: machine.cycles,
    mode: executionMode(machine),
    cpus: machine.harts.map((h, p) => ({
      cpu: p, node: machine.layout.hartNode[p]!, cell: 0, failed: false, vm: null, vcpu: null,
      userCycles: h.cyclesAt(PRIV_U), kernelCycles: h.cyclesAt(PRIV_S) + h.cyclesAt(PRIV_M), monitorCycles: 0, monitorByKind: {},
      missesLocal: timing === undefined ? null : timing.missesLocal[p]!,
      missesRemote: timing === undefined ? null : timing.missesRemote[p]!,
    })),
    nodes: machine.layout.nodes.map((n) => ({ id: n.id, linesRead: timing?.linesRead[n.id] ?? null, linesWritten: timing?.linesWritten[n.id] ?? null })),
    policy: null,
  };
}
