// Some of a machine's harts, run on a thread of their own over the machine's shared memory
// (docs/threads.md). Plain JavaScript: the host wires it to a worker thread (src/host/hart-worker.ts).

import { restoreHart, saveHart, type HartSnapshot } from '../cpu/hart-snapshot.js';
import { Reservations } from '../cpu/reservations.js';
import { ThreadedHart } from '../cpu/threaded-hart.js';
import { Bus } from '../memory/bus.js';
import { RamRegion } from '../memory/ram.js';
import { addForwardedDevices, applyLines, type ForwardingMemory } from './forwarded-mmio.js';

/**
 * Instructions a hart runs before its thread looks at its interrupt lines again: what an interrupt that
 * a device (or a hart on another thread, through the CLINT) raises mid-round waits at most.
 */
const LINES_CHUNK = 8192;

/** One RAM region of the machine, by its shared buffer. */
export interface SharedRegion {
  node: number;
  base: number;
  size: number;
  buffer: SharedArrayBuffer;
}

/** Everything a thread needs to run its harts: plain data, structured-clonable (postMessage). */
export interface HartGroupSpec {
  /** The machine's number of harts (the reservation table's size). */
  harts: number;
  /** The ids of this group's harts, and their state to start from, in the same order. */
  ids: number[];
  states: HartSnapshot[];
  /** The machine's RAM regions, in its bus's order (TLB entries name them by index). */
  regions: SharedRegion[];
  /** The machine's reservation table (Reservations.memory()). */
  reservations: SharedArrayBuffer;
  /** Float64 [0]: guest time in ticks, which the main thread sets between rounds. */
  time: SharedArrayBuffer;
  translate: boolean;
  /** The device windows of the main thread's bus, reached through the mailboxes of `forwarding`. */
  devices: { base: number; size: number; name: string }[];
  forwarding: ForwardingMemory;
}

/** What a group did in one round. */
export interface GroupRound {
  instructions: number;
  /** No hart of the group can run until an interrupt comes (or it is parked or stopped). */
  idle: boolean;
}

export class HartGroup {
  readonly bus = new Bus();
  readonly harts: ThreadedHart[] = [];
  private readonly regions: RamRegion[];
  private readonly lines: Int32Array;

  constructor(spec: HartGroupSpec) {
    this.regions = spec.regions.map((r) => new RamRegion(r.node, r.base, r.size, r.buffer));
    for (const region of this.regions) this.bus.addRam(region);
    // Devices stay on the main thread: this bus forwards each access to them (forwarded-mmio.ts).
    addForwardedDevices(this.bus, spec.devices, spec.forwarding);
    this.lines = new Int32Array(spec.forwarding.lines);
    const time = new Float64Array(spec.time);
    const env = { bus: this.bus, clock: { now: () => time[0]! }, reservations: new Reservations(spec.harts, spec.reservations) };
    spec.ids.forEach((id, i) => {
      const h = new ThreadedHart(id, env);
      h.setTranslation(spec.translate);
      restoreHart(h, spec.states[i], this.regions, `hart ${id}`);
      this.harts.push(h);
    });
  }

  /**
   * Runs every hart of the group until its own time reaches `end` cycles, as Machine.runHart does in fast
   * mode: a waiting hart is idle from the round's `start`, a parked or suspended one all round.
   */
  runRound(start: number, end: number): GroupRound {
    let instructions = 0;
    let idle = true;
    for (const h of this.harts) {
      if (h.parked || h.suspended) {
        idleUntil(h, end);
        continue;
      }
      applyLines(this.lines, h);
      if (h.waiting) idleUntil(h, start);
      let left = end - h.localCycles;
      while (left >= 1) {
        const n = h.run(Math.min(LINES_CHUNK, Math.floor(left)));
        applyLines(this.lines, h);
        instructions += n;
        if (h.waiting || h.suspended || n === 0) break;
        left = end - h.localCycles;
      }
      if (h.waiting) idleUntil(h, end);
      if (!(h.waiting && !h.wakeable) && !h.parked && !h.suspended) idle = false;
    }
    return { instructions, idle };
  }

  /** Each hart's state, to put back into the main thread's machine at the end. */
  save(): HartSnapshot[] {
    return this.harts.map((h) => saveHart(h, this.regions));
  }
}

function idleUntil(h: ThreadedHart, cycles: number): void {
  const behind = cycles - h.localCycles;
  if (behind > 0) h.idleCycles += behind;
}
