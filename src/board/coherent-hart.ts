// One hart of a VM spanning several hosts, on a thread of its own (docs/giantvm.md): its RAM is the host's
// coherent copy (coherent-ram.ts), its devices are forwarded to the host's main thread (forwarded-mmio.ts).
// Plain JavaScript: the host wires it to a worker thread (src/host/dsm-worker.ts).

import { Reservations } from '../cpu/reservations.js';
import { ThreadedHart } from '../cpu/threaded-hart.js';
import { Bus } from '../memory/bus.js';
import { CoherentRam, type CoherentMemory } from './coherent-ram.js';
import { addForwardedDevices, applyLines, Mailboxes, type ForwardingMemory } from './forwarded-mmio.js';
import type { GroupRound } from './hart-group.js';

/**
 * Instructions between two looks at the interrupt lines and at the host's shootdown requests: a page this
 * hart's host gives away waits at most this long for the hart's TLB to let it go.
 */
export const COHERENT_CHUNK = 256;

/** Everything a hart's thread needs: plain data, structured-clonable. */
export interface CoherentHartSpec {
  hart: number;
  /** The VM's number of harts (the size of the mailboxes and the reservation table). */
  harts: number;
  /** Where every hart starts (M-mode, a0 = its id), as `run --elf` starts them. */
  entry: number;
  memory: CoherentMemory;
  reservations: SharedArrayBuffer;
  /** Float64 [0]: guest time in ticks, set by the host between rounds. */
  time: SharedArrayBuffer;
  translate: boolean;
  devices: { base: number; size: number; name: string }[];
  forwarding: ForwardingMemory;
}

export class CoherentHart {
  readonly bus = new Bus();
  readonly hart: ThreadedHart;
  readonly ram: CoherentRam;
  private readonly lines: Int32Array;

  constructor(spec: CoherentHartSpec) {
    this.ram = new CoherentRam(spec.memory, spec.hart, spec.forwarding.doorbell);
    this.bus.addPagedRam(this.ram);
    addForwardedDevices(this.bus, spec.devices, new Mailboxes(spec.forwarding));
    this.lines = new Int32Array(spec.forwarding.lines);
    const time = new Float64Array(spec.time);
    const env = { bus: this.bus, clock: { now: () => time[0]! }, reservations: new Reservations(spec.harts, spec.reservations) };
    const h = new ThreadedHart(spec.hart, env);
    h.setTranslation(spec.translate);
    h.reset(spec.entry);
    h.setReg(10, spec.hart);
    h.setReg(11, 0);
    this.hart = h;
    this.ram.flushing([h]);
  }

  /** Runs the hart until its time reaches `end` cycles, as HartGroup.runRound does, looking at shootdowns as it goes. */
  runRound(start: number, end: number): GroupRound {
    const h = this.hart;
    this.ram.enter();
    let instructions = 0;
    if (h.parked || h.suspended) {
      idleUntil(h, end);
    } else {
      applyLines(this.lines, h);
      if (h.waiting) idleUntil(h, start);
      let left = end - h.localCycles;
      while (left >= 1) {
        const n = h.run(Math.min(COHERENT_CHUNK, Math.floor(left)));
        applyLines(this.lines, h);
        this.ram.serveShootdowns();
        instructions += n;
        if (h.waiting || h.suspended || n === 0) break;
        left = end - h.localCycles;
      }
      if (h.waiting) idleUntil(h, end);
    }
    this.ram.leave();
    return { instructions, idle: (h.waiting && !h.wakeable) || h.parked || h.suspended };
  }
}

function idleUntil(h: ThreadedHart, cycles: number): void {
  const behind = cycles - h.localCycles;
  if (behind > 0) h.idleCycles += behind;
}
