// One hart of a VM spanning several hosts, on a thread of its own (docs/giantvm.md): its RAM is the host's
// coherent copy (coherent-ram.ts), its devices are forwarded to the host's main thread (forwarded-mmio.ts).
// Under the built-in SBI (Linux), its calls that touch other harts go through the host's signals
// (threaded-sbi.ts's words; harts on other hosts through the host's main thread, host/signal-relay.ts).
// Plain JavaScript: the host wires it to a worker thread (src/host/dsm-worker.ts).

import { restoreHart, type HartSnapshot } from '../cpu/hart-snapshot.js';
import type { HartState } from '../cpu/hart-state.js';
import { Reservations } from '../cpu/reservations.js';
import { ThreadedHart } from '../cpu/threaded-hart.js';
import { MIP_STIP } from '../isa/opcodes.js';
import { ACCESS_READ, Bus } from '../memory/bus.js';
import { parkUnderSbi } from './boot.js';
import { CoherentRam, ThreadWakes, type CoherentMemory } from './coherent-ram.js';
import { addForwardedDevices, applyLines, Mailboxes, ring, type ForwardingMemory } from './forwarded-mmio.js';
import type { GroupRound } from './hart-group.js';
import { FENCE_I, FENCE_VMA, type SbiShared } from './sbi.js';
import { PENDING_START, Signals, WorkerSbi, type SignalMemory } from './threaded-sbi.js';

/**
 * Instructions between two looks at the interrupt lines, the signals and the host's shootdown requests: a
 * page this hart's host gives away waits at most this long for the hart's TLB to let it go.
 */
export const COHERENT_CHUNK = 256;
/** Milliseconds a wait for fence acks sleeps before it looks again (a wake comes sooner). */
const ACK_WAIT_MS = 50;

/** What a hart under the built-in SBI needs besides a bare-metal one. */
export interface CoherentSbiSpec {
  /** The SBI's timer deadlines and HSM states: this host's copy (host 0's is the machine's firmware's). */
  shared: SbiShared;
  /** This host's signal words for every hart of the VM (threaded-sbi.ts, one "worker" per hart). */
  signals: SignalMemory;
  /** The harts this host runs, each on a thread: their signals wake them; the others' ring the host's main thread. */
  local: number[];
  /** The state to start from (host 0: as the loader left it); without it, parked as firmware leaves a hart before S-mode. */
  state?: HartSnapshot;
}

/** Everything a hart's thread needs: plain data, structured-clonable. */
export interface CoherentHartSpec {
  hart: number;
  /** The VM's number of harts (the size of the mailboxes and the reservation table). */
  harts: number;
  /** Where every hart starts (bare metal: M-mode, a0 = its id, as `run --elf` starts them; Linux: the kernel). */
  entry: number;
  /** Bare metal: a1 at `entry` (OpenSBI's device tree; default 0). */
  a1?: number;
  memory: CoherentMemory;
  reservations: SharedArrayBuffer;
  /** Float64 [0]: guest time in ticks, set by the host between rounds. */
  time: SharedArrayBuffer;
  translate: boolean;
  devices: { base: number; size: number; name: string }[];
  forwarding: ForwardingMemory;
  sbi?: CoherentSbiSpec;
}

/**
 * A host's signals: the "worker" of a hart is the hart itself. Kicking one of this host's harts wakes its
 * thread; kicking a hart of another host rings this host's main thread, which relays the signal.
 */
export class HostSignals extends Signals {
  private readonly local: ReadonlySet<number>;

  constructor(memory: SignalMemory, harts: number, local: readonly number[], private readonly wakes: ThreadWakes, private readonly doorbell: Int32Array) {
    super(memory, harts);
    this.local = new Set(local);
  }

  override kick(worker: number): void {
    if (this.local.has(worker)) this.wakes.wake(worker);
    else ring(this.doorbell);
  }
}

export class CoherentHart {
  readonly bus = new Bus();
  readonly hart: ThreadedHart;
  readonly ram: CoherentRam;
  readonly signals: HostSignals | undefined;
  private readonly lines: Int32Array;
  private readonly time: Float64Array;
  private readonly sbi: WorkerSbi | undefined;
  /** The machine was reset by an SBI call: the hart stops until the host ends the run. */
  private reset = false;

  constructor(spec: CoherentHartSpec) {
    this.ram = new CoherentRam(spec.memory, spec.hart, spec.forwarding.doorbell);
    this.bus.addPagedRam(this.ram);
    const mailboxes = new Mailboxes(spec.forwarding);
    addForwardedDevices(this.bus, spec.devices, mailboxes);
    this.lines = new Int32Array(spec.forwarding.lines);
    const time = new Float64Array(spec.time);
    this.time = time;
    const byId = new Array<HartState | undefined>(spec.harts).fill(undefined);
    const linux = spec.sbi;
    if (linux !== undefined) {
      const signals = new HostSignals(linux.signals, spec.harts, linux.local, new ThreadWakes(spec.memory), new Int32Array(spec.forwarding.doorbell));
      this.signals = signals;
      this.sbi = new WorkerSbi({
        harts: byId,
        signals,
        mailboxes,
        now: () => time[0]!,
        readPhysical: (address, length) => this.readPhysical(address, length),
        awaitAcks: (waits) => this.awaitAcks(waits),
        resetRequested: () => {
          this.reset = true;
          this.hart.stop = true;
        },
      }, linux.shared, spec.harts);
    }
    const sbi = this.sbi;
    const env = {
      bus: this.bus, clock: { now: () => time[0]! }, reservations: new Reservations(spec.harts, spec.reservations),
      ecallFromSupervisor: sbi === undefined ? undefined : (h: HartState) => sbi.handle(h),
    };
    const h = new ThreadedHart(spec.hart, env);
    h.setTranslation(spec.translate);
    if (linux === undefined) {
      h.reset(spec.entry);
      h.setReg(10, spec.hart);
      h.setReg(11, spec.a1 ?? 0);
    } else if (linux.state !== undefined) {
      restoreHart(h, linux.state, this.ram.regions, `hart ${spec.hart}`);
      // Entries made on the loader's machine would bypass this host's permissions.
      h.flushTlb();
    } else {
      parkUnderSbi(h, spec.entry);
    }
    byId[spec.hart] = h;
    this.hart = h;
    this.ram.flushing([h]);
  }

  /** Runs the hart until its time reaches `end` cycles, as HartGroup.runRound does, looking at shootdowns and signals as it goes. */
  runRound(start: number, end: number): GroupRound {
    const h = this.hart;
    this.ram.enter();
    this.serve();
    let instructions = 0;
    if (h.waiting) idleUntil(h, start);
    let left = end - h.localCycles;
    while (left >= 1 && !this.reset && !h.parked && !h.suspended && !(h.waiting && !h.wakeable)) {
      const n = h.run(Math.min(COHERENT_CHUNK, Math.floor(left)));
      instructions += n;
      this.serve();
      left = end - h.localCycles;
    }
    idleUntil(h, end);
    this.ram.leave();
    return { instructions, idle: this.reset || (h.waiting && !h.wakeable) || h.parked || h.suspended };
  }

  /**
   * What this hart was asked, by other harts (remote fences, IPIs, an HSM start) or by the host (its
   * interrupt lines, a shootdown), and its SBI timer: between chunks, while it waits, and between rounds.
   */
  serve(): void {
    const h = this.hart;
    applyLines(this.lines, h);
    this.ram.serveShootdowns();
    const signals = this.signals;
    if (signals === undefined) return;
    const id = h.id;
    signals.serveFences(id, (what) => {
      if ((what & FENCE_I) !== 0) h.codeWritten();
      if ((what & FENCE_VMA) !== 0) h.flushTlb();
    });
    const pending = signals.takePending(id);
    if (pending !== 0) {
      if ((pending & PENDING_START) !== 0) {
        const { entry, opaque } = signals.startOf(id);
        this.sbi!.startHart(id, entry, opaque);
      }
      const bits = pending & ~PENDING_START;
      if (bits !== 0) {
        h.mip |= bits;
        h.stop = true;
      }
    }
    // The SBI timer fires here, from the round's time, as on a threaded worker.
    if (this.sbi!.timerDeadline[id]! <= this.time[0]! && (h.mip & MIP_STIP) === 0) {
      h.mip |= MIP_STIP;
      h.stop = true;
    }
  }

  /** Sleeps until each fence request of `waits` is acked, serving this hart meanwhile (two harts fencing each other, a page wanted elsewhere). */
  private awaitAcks(waits: readonly (readonly [number, number])[]): void {
    const signals = this.signals!;
    for (;;) {
      const wake = this.ram.wakeValue();
      this.serve();
      if (waits.every(([t, n]) => signals.acked(t, n))) return;
      this.ram.sleep(wake, ACK_WAIT_MS);
    }
  }

  /** Guest-physical bytes for the SBI's debug console, each page fetched as a read would. */
  private readPhysical(address: number, length: number): Uint8Array | undefined {
    const ram = this.ram;
    if (address < ram.base || address + length > ram.base + ram.size) return undefined;
    const out = new Uint8Array(length);
    for (let done = 0; done < length;) {
      const at = address + done - ram.base;
      const region = ram.page(Math.floor(at / 4096), ACCESS_READ);
      const n = Math.min(length - done, 4096 - (at % 4096));
      out.set(region.u8.subarray(at, at + n), done);
      done += n;
    }
    return out;
  }
}

function idleUntil(h: ThreadedHart, cycles: number): void {
  const behind = cycles - h.localCycles;
  if (behind > 0) h.idleCycles += behind;
}
