// A whole machine as plain data and back (docs/snapshots.md): Firecracker's save() → State, restore(State).

import { restoreHart, saveHart, type HartSnapshot } from '../cpu/hart-snapshot.js';
import type { ClintState } from '../devices/clint.js';
import type { PlicState } from '../devices/plic.js';
import type { UartState } from '../devices/uart.js';
import type { VirtioMmioState } from '../devices/virtio/mmio.js';
import type { RamRegion } from '../memory/ram.js';
import { MAX_AMOUNT, StateError, StateReader, integerItem } from '../memory/state.js';
import type { CacheState } from '../timing/cache.js';
import { InstructionClock } from '../timing/clock.js';
import type { StatSample } from '../timing/stats.js';
import type { TimingModel } from '../timing/timing-model.js';
import type { MachineConfig } from './address-map.js';
import { BlockComparer, machineDisks, readDiskPage, type BlockSource } from './disk-pages.js';
import type { Machine } from './machine.js';
import type { Simulation, StatsDump } from './simulation.js';
import { executionMode, setExecutionMode, timingModelOf, type ExecutionMode } from './timing-mode.js';

/** The name and version every snapshot carries; a reader refuses any other version. */
export const SNAPSHOT_FORMAT = 'mirrorball-machine';
export const SNAPSHOT_VERSION = 4;

const PAGE_BYTES = 4096;
/** HSM states run from STARTED (0) to SUSPEND_PENDING (6) (SBI spec v2.0 §9). */
const HSM_LAST_STATE = 6;
/** A saved cycles-per-instruction above this is no machine's: a miss costs hundreds of cycles, not millions. */
const MAX_CPI = 2 ** 20;

/**
 * One RAM region's non-zero pages, as runs of consecutive pages: run k starts at page `runs[2k]` (counted
 * from the region's base) and holds `runs[2k + 1]` pages, whose bytes are `data[k]`. Zero pages are left
 * out: a restored machine's RAM starts zeroed. When saved, `data` views the live RAM (nothing is copied):
 * write it out before the machine runs again. Pages equal to a block of one of the machine's disks are
 * in `blocks` instead, by reference: triples of page, disk (its index in `machineDisks`) and block.
 */
export interface MemoryImage {
  node: number;
  base: number;
  size: number;
  runs: Uint32Array;
  data: Uint8Array[];
  blocks: Uint32Array;
}

/** The timing model when the machine has one: its mode, caches, counters and per-page miss counts. */
export interface TimingSnapshot {
  mode: ExecutionMode;
  /** The model's parameters (cache geometry, latencies): the restored machine must be configured alike. */
  parameters: ReturnType<TimingModel['parameters']>;
  counters: Record<string, Float64Array>;
  caches: CacheState;
  missCounts: Uint32Array;
}

export interface MachineSnapshot {
  format: typeof SNAPSHOT_FORMAT;
  version: typeof SNAPSHOT_VERSION;
  config: MachineConfig;
  builtinSbi: boolean;
  instructions: number;
  cycles: number;
  cpi: Float64Array;
  /** Guest time in instructions (the instruction clock; host time cannot be saved). */
  clock: number;
  htif: { tohost: number; fromhost: number } | null;
  harts: HartSnapshot[];
  reservations: Float64Array;
  clint: ClintState;
  plic: PlicState;
  uart: UartState;
  control: { argument: number; result: number };
  sbi: { timerDeadline: Float64Array; hsmState: Int32Array } | null;
  /** Each virtio-mmio slot in address-map order: its transport's state, or null when empty. */
  virtio: (VirtioMmioState | null)[];
  timing: TimingSnapshot | null;
  /** The statistics' baseline and the guest's dumps, when the machine runs as a Simulation. */
  stats: { bases: Float64Array[]; cycles: number; dumps: StatsDump[]; droppedDumps: number } | null;
  memory: MemoryImage[];
}

/** Why a machine cannot be saved, in one line. */
export class SnapshotError extends Error {}

/** The timing model's per-CPU and per-node counters, by name. */
const MODEL_COUNTERS = ['hits', 'missesLocal', 'missesRemote', 'upgrades', 'uncached', 'stallCycles', 'stallLocal', 'stallRemote', 'tlbRefills', 'tlbCycles', 'linesRead', 'linesWritten'] as const;

/**
 * The non-zero pages of `region`, as runs viewing its memory, but for those `candidates` (by page) says may equal
 * a disk block and `comparer` finds equal: those go by reference.
 */
function memoryImage(region: RamRegion, candidates: ReadonlyMap<number, BlockSource[]> | undefined, comparer: BlockComparer): MemoryImage {
  const words = region.i32;
  const pages = region.size / PAGE_BYTES;
  const runs: number[] = [];
  const data: Uint8Array[] = [];
  const blocks: number[] = [];
  let start = -1;
  for (let page = 0; page <= pages; page++) {
    let zero = true;
    if (page < pages) {
      for (let w = page * (PAGE_BYTES / 4), end = w + PAGE_BYTES / 4; w < end; w++) {
        if (words[w] !== 0) {
          zero = false;
          break;
        }
      }
    }
    // A page equal to a disk block is left out of the runs, as a zero page is.
    const bytes = zero ? undefined : region.u8.subarray(page * PAGE_BYTES, (page + 1) * PAGE_BYTES);
    const source = bytes === undefined ? undefined : candidates?.get(page)?.find((c) => comparer.equal(c, bytes));
    if (source !== undefined) {
      blocks.push(page, source.disk, source.block);
      zero = true;
    }
    if (!zero && start < 0) start = page;
    if (zero && start >= 0) {
      runs.push(start, page - start);
      data.push(region.u8.subarray(start * PAGE_BYTES, page * PAGE_BYTES));
      start = -1;
    }
  }
  return { node: region.node, base: region.base, size: region.size, runs: Uint32Array.from(runs), data, blocks: Uint32Array.from(blocks) };
}

/**
 * Per region (by index), the pages the machine's disks filled with a whole block and have not written since
 * (virtio-blk's record), with their blocks: candidates, each compared before it is stored by reference.
 */
function diskCandidates(machine: Machine): Map<number, BlockSource[]>[] {
  const regions = machine.bus.ram;
  const out = regions.map(() => new Map<number, BlockSource[]>());
  machineDisks(machine).forEach((device, disk) => {
    for (const [address, block] of device.filledPages()) {
      const index = regions.findIndex((r) => address >= r.base && address < r.base + r.size);
      if (index < 0) continue;
      const page = (address - regions[index]!.base) / PAGE_BYTES;
      const list = out[index]!.get(page);
      if (list === undefined) out[index]!.set(page, [{ disk, block }]);
      else list.push({ disk, block });
    }
  });
  return out;
}

/** The machine's RAM, region by region, with the pages equal to a disk block by reference. */
function savedMemory(machine: Machine): MemoryImage[] {
  const candidates = diskCandidates(machine);
  const comparer = new BlockComparer(machineDisks(machine));
  return machine.bus.ram.map((region, i) => memoryImage(region, candidates[i], comparer));
}

/** True when someone else places the machine's RAM pages (a VM's pmap): its memory and timing model are the monitor's to save. */
export function isPaged(machine: Machine): boolean {
  return machine.bus.machineRam !== machine.bus.ram;
}

/** The timing model as plain data: its mode, parameters, counters, caches and per-page miss counts. */
export function saveTimingModel(model: TimingModel, mode: ExecutionMode): TimingSnapshot {
  return {
    mode,
    parameters: model.parameters(),
    counters: Object.fromEntries(MODEL_COUNTERS.map((name) => [name, model[name].slice()])),
    caches: model.caches.saveState(),
    missCounts: model.counters.saveState(),
  };
}

/**
 * Everything `machine` is, between two rounds (call it only there: from the run loop's caller, never from a
 * device or a hart). With `simulation`, its statistics' baseline and dumps too. Throws SnapshotError for a
 * machine that cannot be saved: host time, or one that has stopped. A VM's machine (its RAM a pmap, `isPaged`)
 * is saved without its memory and timing model, which belong to the monitor (monitor/monitor-snapshot.ts), and
 * may have stopped (an ended VM); its TLB entries point into the machine's memory regions.
 */
export function saveMachine(machine: Machine, config: MachineConfig, simulation?: Simulation): MachineSnapshot {
  if (!(machine.clock instanceof InstructionClock)) throw new SnapshotError('a machine on host time (--time host) cannot be saved: its guest time is the wall clock');
  const paged = isPaged(machine);
  if (machine.exit !== undefined && !paged) throw new SnapshotError('the machine has stopped');
  const regions = machine.bus.machineRam;
  const model = paged ? undefined : timingModelOf(machine);
  return {
    format: SNAPSHOT_FORMAT,
    version: SNAPSHOT_VERSION,
    config,
    builtinSbi: machine.sbi !== undefined,
    instructions: machine.instructions,
    cycles: machine.cycles,
    cpi: machine.cpi.slice(),
    clock: machine.clock.instructions,
    htif: machine.htif === undefined ? null : { ...machine.htif },
    harts: machine.harts.map((h) => saveHart(h, regions)),
    reservations: machine.reservations.saveState(),
    clint: machine.clint.saveState(),
    plic: machine.plic.saveState(),
    uart: machine.uart.saveState(),
    control: machine.controlDevice.saveState(),
    sbi: machine.sbi === undefined ? null : { timerDeadline: machine.sbi.timerDeadline.slice(), hsmState: machine.sbi.hsmState.slice() },
    virtio: machine.virtioTransports().map((t) => t?.saveState() ?? null),
    timing: model === undefined ? null : saveTimingModel(model, executionMode(machine)),
    stats: simulation === undefined ? null : {
      bases: simulation.baseline.bases.map((b) => b.slice()),
      cycles: simulation.baseline.cycles,
      dumps: simulation.dumps.map((d) => ({ tag: d.tag, samples: d.samples })),
      droppedDumps: simulation.droppedDumps,
    },
    memory: paged ? [] : savedMemory(machine),
  };
}

/**
 * Puts a saved machine into `machine`: one built from the same configuration, with the same firmware
 * choice, virtio devices in the same slots and a timing configuration of the same parameters when the
 * saved one had one, that has not run yet. Every part checks its state before it is written; a StateError
 * can leave `machine` partly restored, so a caller that catches one must throw the machine away. A VM's
 * machine (`isPaged`) gets neither memory nor timing model here: the monitor restores those.
 */
export function restoreMachine(machine: Machine, state: unknown, simulation?: Simulation): void {
  const r = new StateReader(state, 'snapshot');
  const format = r.string('format');
  if (format !== SNAPSHOT_FORMAT) throw new StateError(`not a machine snapshot (format '${format}')`);
  const version = r.number('version', 0);
  // Version 2 had no pages stored as disk blocks and no virtio-blk state (3), 3 no counts of virtio-blk's reads and no
  // copy-on-write disks (4); nothing converts a file between versions.
  if (version !== SNAPSHOT_VERSION) {
    throw new StateError(`machine snapshot version ${version}, this Mirrorball reads version ${SNAPSHOT_VERSION}: `
      + `${version < SNAPSHOT_VERSION ? 'an older' : 'a newer'} Mirrorball saved it; restore it with that one`);
  }
  if (machine.instructions !== 0 || machine.cycles !== 0) throw new Error('restore into a machine that has not run');
  if (!(machine.clock instanceof InstructionClock)) throw new StateError('a snapshot restores onto the instruction clock only');
  const harts = machine.harts.length;
  if (r.boolean('builtinSbi') !== (machine.sbi !== undefined)) throw new StateError('snapshot.builtinSbi: saved with other firmware');

  const paged = isPaged(machine);
  if (paged) r.array('memory', () => undefined, 0);
  else restoreMemory(machine, r);
  const hartStates = r.array('harts', (value) => value, harts);
  hartStates.forEach((value, i) => restoreHart(machine.harts[i]!, value, machine.bus.machineRam, `snapshot.harts[${i}]`));
  machine.reservations.restoreState(r.typed('reservations', Float64Array, harts));
  machine.clint.restoreState(r.value('clint'));
  machine.plic.restoreState(r.value('plic'));
  machine.uart.restoreState(r.value('uart'));
  machine.controlDevice.restoreState(r.value('control'));
  if (machine.sbi !== undefined) {
    const sbi = r.object('sbi');
    const deadlines = sbi.typed('timerDeadline', Float64Array, harts);
    if (!deadlines.every((d) => d === Infinity || (Number.isInteger(d) && d >= 0 && d <= MAX_AMOUNT))) throw new StateError('snapshot.sbi.timerDeadline: not ticks');
    const hsm = sbi.typed('hsmState', Int32Array, harts);
    if (!hsm.every((state) => state >= 0 && state <= HSM_LAST_STATE)) throw new StateError('snapshot.sbi.hsmState: not HSM states');
    machine.sbi.timerDeadline.set(deadlines);
    machine.sbi.hsmState.set(hsm);
  }
  const transports = machine.virtioTransports();
  r.array('virtio', (value, path, slot) => {
    const transport = transports[slot];
    if ((value === null) !== (transport === undefined)) {
      throw new StateError(`${path}: saved ${value === null ? 'empty' : 'with a device'}, but here ${transport === undefined ? 'empty' : 'with a device'}`);
    }
    transport?.restoreState(value, path);
  }, transports.length);
  if (paged) {
    if (r.value('timing') !== null) throw new StateError('snapshot.timing: a VM\'s machine has no timing model of its own');
  } else restoreTiming(machine, r);
  if (simulation !== undefined && r.value('stats') !== null) restoreStats(simulation, r.object('stats'));

  const cpi = r.typed('cpi', Float64Array, harts);
  if (!cpi.every((c) => c >= 1 && c <= MAX_CPI)) throw new StateError(`snapshot.cpi: not cycles per instruction in [1, ${MAX_CPI}]`);
  machine.cpi.set(cpi);
  const clock = r.number('clock', 0, MAX_AMOUNT);
  machine.clock.advanceInstructions(clock - machine.clock.instructions);
  machine.instructions = r.number('instructions', 0, MAX_AMOUNT);
  machine.cycles = r.number('cycles', 0, MAX_AMOUNT);
  if (r.value('htif') !== null) {
    const htif = r.object('htif');
    machine.htif = { tohost: htif.number('tohost', 0), fromhost: htif.number('fromhost', 0) };
  }
}

function restoreMemory(machine: Machine, r: StateReader): void {
  const regions = machine.bus.ram;
  const disks = machineDisks(machine);
  r.array('memory', (value, path, index) => {
    const m = new StateReader(value, path);
    const region = regions[index]!;
    if (m.number('node', 0) !== region.node || m.number('base', 0) !== region.base || m.number('size', 0) !== region.size) {
      throw new StateError(`${path}: saved RAM of another node, place or size`);
    }
    const runs = m.typed('runs', Uint32Array);
    if (runs.length % 2 !== 0) throw new StateError(`${path}.runs: not pairs of page and count`);
    const data = m.array('data', (bytes, dataPath, k) => {
      if (!(bytes instanceof Uint8Array)) throw new StateError(`${dataPath}: not bytes`);
      const first = runs[2 * k]!;
      const count = runs[2 * k + 1]!;
      if (first + count > region.size / PAGE_BYTES || bytes.length !== count * PAGE_BYTES) throw new StateError(`${dataPath}: pages outside the region`);
      return bytes;
    }, runs.length / 2);
    const blocks = m.typed('blocks', Uint32Array);
    if (blocks.length % 3 !== 0) throw new StateError(`${path}.blocks: not triples of page, disk and block`);
    // Each page once, in the runs or by reference.
    const pages = region.size / PAGE_BYTES;
    const seen = new Uint8Array(pages);
    for (let k = 0; k < runs.length; k += 2) {
      for (let page = runs[k]!; page < runs[k]! + runs[k + 1]!; page++) {
        if (seen[page] === 1) throw new StateError(`${path}.runs: page ${page} twice`);
        seen[page] = 1;
      }
    }
    for (let k = 0; k < blocks.length; k += 3) {
      const page = blocks[k]!;
      if (page >= pages || seen[page] === 1) throw new StateError(`${path}.blocks[${k}]: page ${page} outside the region or twice`);
      seen[page] = 1;
    }
    data.forEach((bytes, k) => region.u8.set(bytes, runs[2 * k]! * PAGE_BYTES));
    for (let k = 0; k < blocks.length; k += 3) {
      const page = blocks[k]!;
      readDiskPage(disks, blocks[k + 1]!, blocks[k + 2]!, region.u8.subarray(page * PAGE_BYTES, (page + 1) * PAGE_BYTES), `${path}.blocks[${k}]`);
    }
  }, regions.length);
}

function restoreTiming(machine: Machine, r: StateReader): void {
  const model = timingModelOf(machine);
  if ((r.value('timing') === null) !== (model === undefined)) {
    throw new StateError(model === undefined ? 'the snapshot has a timing model and this machine none' : 'this machine has a timing model and the snapshot none');
  }
  if (model === undefined) return;
  setExecutionMode(machine, restoreTimingModel(model, r.object('timing')));
}

/**
 * Puts a saved timing model (`saveTimingModel`) into `model`, configured with the same parameters, checking
 * everything first (StateError). Returns the saved mode, for the caller to switch to.
 */
export function restoreTimingModel(model: TimingModel, t: StateReader): ExecutionMode {
  const mode = t.string('mode');
  if (mode !== 'fast' && mode !== 'timing') throw new StateError(`${t.path}.mode: '${mode}'`);
  if (!sameJson(t.value('parameters'), model.parameters())) throw new StateError(`${t.path}.parameters: saved with another cache or other latencies`);
  const counters = t.object('counters');
  const values = MODEL_COUNTERS.map((name) => counters.amounts(name, Float64Array, model[name].length));
  const c = t.object('caches');
  const caches = model.caches;
  const ways = caches.tags.length;
  const cacheState: CacheState = {
    tags: c.typed('tags', Float64Array, ways), states: c.typed('states', Uint8Array, ways), stamps: c.amounts('stamps', Float64Array, ways),
    clock: c.amounts('clock', Float64Array, caches.cpus), mruWay: c.typed('mruWay', Int32Array, caches.mruWay.length),
    invalidationsReceived: c.amounts('invalidationsReceived', Float64Array, caches.cpus),
    invalidationsSent: c.amounts('invalidationsSent', Float64Array, caches.cpus), writebacks: c.amounts('writebacks', Float64Array, caches.cpus),
  };
  if (cacheState.states.some((s) => s > 3) || cacheState.mruWay.some((w) => w < 0 || w >= ways) ||
    cacheState.tags.some((line) => line !== -1 && !(Number.isInteger(line) && line >= 0 && line <= MAX_AMOUNT))) {
    throw new StateError(`${t.path}.caches: a line, line state or way out of range`);
  }
  const missCounts = t.typed('missCounts', Uint32Array, model.counters.pages * model.counters.nodes);
  MODEL_COUNTERS.forEach((name, i) => model[name].set(values[i]!));
  caches.restoreState(cacheState);
  model.counters.restoreState(missCounts);
  return mode;
}

/** True if `saved` is JSON data equal to `current` (bigints and typed arrays are not: false). */
function sameJson(saved: unknown, current: unknown): boolean {
  try {
    return JSON.stringify(saved, (_, v: unknown) => (ArrayBuffer.isView(v) ? NaN.toString() : v)) === JSON.stringify(current);
  } catch {
    return false;
  }
}

function restoreStats(simulation: Simulation, s: StateReader): void {
  const bases = s.array('bases', (value, path) => {
    if (!(value instanceof Float64Array) || value.length !== simulation.machine.harts.length || !value.every((v) => v >= 0 && v <= MAX_AMOUNT)) {
      throw new StateError(`${path}: not one amount per hart`);
    }
    return value;
  }, simulation.baseline.bases.length);
  const cycles = s.amount('cycles');
  const dumps = s.array('dumps', (value, path) => {
    const d = new StateReader(value, path);
    return {
      tag: d.number('tag', 0, 0xffffffff),
      samples: d.array('samples', (sample, samplePath) => {
        const kind = new StateReader(sample, samplePath).string('kind');
        if (kind !== 'scalar' && kind !== 'vector') throw new StateError(`${samplePath}.kind: '${kind}'`);
        return sample as StatSample;
      }),
    };
  });
  const dropped = s.number('droppedDumps', 0);
  bases.forEach((b, i) => simulation.baseline.bases[i]!.set(b));
  simulation.baseline.cycles = cycles;
  simulation.dumps.length = 0;
  simulation.dumps.push(...dumps);
  simulation.droppedDumps = dropped;
}

/** A MachineConfig saved as plain data, checked field by field (the machine's layout checks the rest). */
export function readMachineConfig(value: unknown, path: string): MachineConfig {
  const c = new StateReader(value, path);
  const harts = c.number('harts', 1, 1024);
  const nodes = c.array('nodes', (node, nodePath) => {
    const n = new StateReader(node, nodePath);
    return { memoryBytes: n.number('memoryBytes', 1), harts: n.array('harts', integerItem(0, harts - 1)) };
  });
  const config: MachineConfig = { harts, nodes };
  if (c.has('distances')) config.distances = c.array('distances', (row, rowPath) => new StateReader({ row }, rowPath).array('row', integerItem(0, 255)));
  return config;
}
