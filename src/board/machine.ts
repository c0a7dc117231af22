// The machine: harts, RAM per node, the devices of the address map, firmware, and the round-robin run loop.

import { Hart } from '../cpu/hart.js';
import type { ExitHandler } from '../cpu/exits.js';
import type { HartEnvironment, HartState } from '../cpu/hart-state.js';
import { Reservations } from '../cpu/reservations.js';
import { Clint } from '../devices/clint.js';
import { Plic } from '../devices/plic.js';
import type { Pollable } from '../devices/pollable.js';
import { TestDevice } from '../devices/syscon.js';
import { ControlDevice, runControlRequest, type ControlHandler } from '../devices/control.js';
import { Uart } from '../devices/uart.js';
import type { VirtioDevice } from '../devices/virtio/device.js';
import { EmptyVirtioSlot } from '../devices/virtio/empty-slot.js';
import { VirtioMmio } from '../devices/virtio/mmio.js';
import { Bus, type Access, type PagedRam } from '../memory/bus.js';
import type { AccessSize, Device, HartInterruptSink } from '../memory/device.js';
import { RamRegion } from '../memory/ram.js';
import { HostClock, INSTRUCTIONS_PER_TICK, InstructionClock, type MachineClock } from '../timing/clock.js';
import {
  CLINT, CONTROL_DEVICE, PLIC, PLIC_SOURCES, TEST_DEVICE, UART0, VIRTIO_SLOTS, layoutMachine, virtioSlot, type MachineConfig, type MachineLayout,
} from './address-map.js';
import { SbiFirmware } from './sbi.js';
import type { MachineHardware } from './hardware.js';

/**
 * Simulated cycles per round (DESIGN.md: fixed slices). In fast mode a cycle is an instruction, so each
 * hart runs this many instructions a round; in timing mode a hart runs until its own time (instructions
 * plus memory stalls) reaches the round's end, so harts interleave by simulated time.
 */
export const SLICE = 4096;

/** Timing mode: a hart closer than this to a round's end stops there; the difference carries over. */
const TAIL_CYCLES = 64;
/**
 * Timing mode: at most this many instructions per run() call, so a hart whose stalls grow mid-chunk
 * overshoots the round's end by at most a chunk's worth of surprise.
 */
const TIMING_CHUNK = 1024;

/** Why the machine stopped. */
export type ExitReason =
  | { kind: 'poweroff'; code: number }
  | { kind: 'reboot' }
  | { kind: 'htif'; code: number }
  | { kind: 'limit' }
  | { kind: 'quit' };

export interface MachineOptions {
  config: MachineConfig;
  /** 'instructions' (default, reproducible) or 'host' (wall-clock guest time). */
  time?: 'instructions' | 'host';
  /** Milliseconds from a monotonic host clock; required for host time. */
  hostMilliseconds?: () => number;
  /** Where console output goes (the UART and the SBI console). */
  console?: (bytes: Uint8Array) => void;
  /** Answer S-mode ECALLs with the built-in SBI firmware (no M-mode firmware). */
  builtinSbi: boolean;
  /** Where devices report guest mistakes and host I/O errors (default: nowhere). */
  log?: (message: string) => void;
  /** Run translated basic blocks (default) or interpret every instruction (to bisect the translator). */
  translate?: boolean;
  /**
   * The RAM, when someone else places its pages (a VM under the monitor: guest-physical pages through its
   * pmap). It must cover exactly the layout's one node. Default: one RAM region per node.
   */
  pagedRam?: (layout: MachineLayout) => PagedRam;
  /**
   * The monitor that stands between this machine's harts and memory (a VM's): every exit of a hart goes to
   * it (exits.ts: a guest-page fault, an SBI call before the built-in SBI answers it, an MMIO access, WFI, an
   * interrupt taken).
   */
  exits?: ExitHandler;
  /** The monitor's answer to a device's DMA (or a loader's write) its permissions deny (Bus.dmaFault). */
  dmaFault?: (address: number, access: Access) => boolean;
  /**
   * The machine's hardware (hardware.ts): its RAM regions, and the faults injected into it, which stop harts
   * and refuse accesses (docs/faults.md). Made from the same layout; not with `pagedRam`.
   */
  hardware?: MachineHardware;
}

/** One virtio-mmio window of the address map; what is plugged into it can change before boot. */
class VirtioSlotWindow implements Device {
  occupant: Device = new EmptyVirtioSlot();
  get name(): string { return this.occupant.name; }
  read(offset: number, size: AccessSize, hart: number): number { return this.occupant.read(offset, size, hart); }
  write(offset: number, size: AccessSize, value: number, hart: number): void { this.occupant.write(offset, size, value, hart); }
}

export class Machine {
  readonly bus = new Bus();
  readonly layout: MachineLayout;
  readonly harts: Hart[] = [];
  readonly clock: MachineClock;
  readonly reservations: Reservations;
  readonly clint: Clint;
  readonly plic: Plic;
  readonly uart: Uart;
  readonly sbi: SbiFirmware | undefined;
  /** Devices with host-side input, polled between rounds. */
  readonly pollables: Pollable[] = [];
  /**
   * What the guest's simulation requests do (control device and SBI vendor extension): set by whoever runs
   * the machine with a timing configuration; undefined answers every request "not supported".
   */
  control: ControlHandler | undefined = undefined;
  exit: ExitReason | undefined;
  /** Total instructions executed by all harts. */
  instructions = 0;
  /**
   * The machine's simulated time in cycles (guest time follows it: INSTRUCTIONS_PER_TICK cycles a timebase tick).
   * Each hart's `localCycles` stays within a slice of it: a waiting or stopped hart is idle up to it.
   */
  cycles = 0;
  /** Each hart's cycles per instruction in its last run() chunk (1 in fast mode), to size the next (snapshots save it). */
  readonly cpi: Float64Array;
  /** Idle harts skip guest time ahead at most to this tick (Infinity: to the next timer deadline). */
  idleSkipLimit = Infinity;
  /** HTIF `tohost`/`fromhost` physical addresses, when a bare-metal ELF defines them. */
  htif: { tohost: number; fromhost: number } | undefined;
  readonly log: (message: string) => void;
  /** The hardware and its faults, when the machine was given one (MachineOptions.hardware). */
  readonly hardware: MachineHardware | undefined;
  private readonly virtioSlots: VirtioSlotWindow[] = [];
  private readonly controlRegisters: ControlDevice;
  private readonly consoleOut: (bytes: Uint8Array) => void;

  constructor(options: MachineOptions) {
    this.layout = layoutMachine(options.config);
    if (options.pagedRam !== undefined) {
      const ram = options.pagedRam(this.layout);
      const node = this.layout.nodes[0]!;
      if (this.layout.nodes.length !== 1 || ram.base !== node.base || ram.size !== node.size) {
        throw new Error('paged RAM must cover exactly the one node of the layout');
      }
      this.bus.addPagedRam(ram);
    } else if (options.hardware !== undefined) {
      if (!options.hardware.fits(this.layout)) throw new Error('the hardware given to the machine has another layout than its configuration');
      for (const region of options.hardware.regions) this.bus.addRam(region);
    } else {
      for (const node of this.layout.nodes) this.bus.addRam(new RamRegion(node.id, node.base, node.size));
    }
    this.hardware = options.hardware;
    this.clock = options.time === 'host'
      ? new HostClock(options.hostMilliseconds ?? (() => { throw new Error('host time needs a host clock'); }))
      : new InstructionClock();
    this.consoleOut = options.console ?? (() => {});
    this.reservations = new Reservations(this.layout.harts);
    this.cpi = new Float64Array(this.layout.harts).fill(1);
    // A device writing memory breaks every hart's reservation on those lines, as another hart's store does.
    this.bus.observeDmaWrites((address, length) => {
      if (this.reservations.count > 0) this.reservations.storeBy(-1, address, length);
    });
    const env: HartEnvironment = {
      bus: this.bus,
      clock: this.clock,
      reservations: this.reservations,
      ecallFromSupervisor: options.builtinSbi
        ? (h: HartState) => {
          if (options.exits !== undefined) h.exitTo({ kind: 'sbi', extension: h.reg(17), fn: h.reg(16) });
          return this.sbi!.handle(h);
        }
        : undefined,
      exit: options.exits,
    };
    this.bus.dmaFault = options.dmaFault;
    for (let i = 0; i < this.layout.harts; i++) this.harts.push(new Hart(i, env));
    for (const h of this.harts) h.setTranslation(options.translate ?? true);
    for (const h of this.harts) this.hardware?.attach(h);
    const sink: HartInterruptSink = { setPending: (hart, bit, level) => this.harts[hart]?.setInterruptLine(bit, level) };

    this.clint = new Clint(this.layout.harts, this.clock, sink);
    this.plic = new Plic(this.layout.harts, PLIC_SOURCES, sink);
    this.uart = new Uart({ onOutput: (byte) => this.consoleOut(Uint8Array.of(byte)), irq: this.plic.irqLine(UART0.irq!) });
    const test = new TestDevice((kind, code) => this.stopWith(kind === 'reboot' ? { kind: 'reboot' } : { kind: 'poweroff', code }));
    this.bus.addDevice(TEST_DEVICE.base, TEST_DEVICE.size, test);
    this.controlRegisters = new ControlDevice(() => this.control);
    this.bus.addDevice(CONTROL_DEVICE.base, CONTROL_DEVICE.size, this.controlRegisters);
    this.bus.addDevice(CLINT.base, CLINT.size, this.clint);
    this.bus.addDevice(PLIC.base, PLIC.size, this.plic);
    this.bus.addDevice(UART0.base, UART0.size, this.uart);
    this.pollables.push(this.uart);
    this.log = options.log ?? (() => {});
    for (let i = 0; i < VIRTIO_SLOTS; i++) {
      const window = new VirtioSlotWindow();
      this.virtioSlots.push(window);
      const region = virtioSlot(i);
      this.bus.addDevice(region.base, region.size, window);
    }

    this.sbi = options.builtinSbi
      ? new SbiFirmware({
        harts: this.harts,
        now: () => this.clock.now(),
        consoleWrite: (bytes) => this.consoleOut(bytes),
        consoleRead: () => -1,
        reset: (type, reason) => this.sbiReset(type, reason),
        control: (request, argument) => runControlRequest(this.control, request, argument),
        readPhysical: (address, length) => {
          const memory = this.bus.guestMemory();
          return memory.isRam(address, length) ? memory.read(address, length) : undefined;
        },
        wake: (hart) => { this.harts[hart].stop = true; },
      })
      : undefined;
  }

  /** Plugs a virtio device into the first free slot (in address-map order, as QEMU does) and returns its transport. */
  attachVirtio(device: VirtioDevice): VirtioMmio {
    const slot = this.virtioSlots.findIndex((w) => w.occupant instanceof EmptyVirtioSlot);
    if (slot < 0) throw new Error(`all ${VIRTIO_SLOTS} virtio-mmio slots are in use`);
    const transport = new VirtioMmio(device, this.bus.guestMemory(), this.plic.irqLine(virtioSlot(slot).irq!), { log: this.log });
    this.virtioSlots[slot].occupant = transport;
    this.pollables.push(transport);
    return transport;
  }

  /** What each virtio-mmio slot holds, in address-map order: its transport, or undefined when empty. */
  virtioTransports(): (VirtioMmio | undefined)[] {
    return this.virtioSlots.map((w) => (w.occupant instanceof VirtioMmio ? w.occupant : undefined));
  }

  /** The test finisher is stateless; the control device's two registers are saved (snapshots). */
  get controlDevice(): ControlDevice {
    return this.controlRegisters;
  }

  /** The SBI's system reset (SRST): type 0 powers off (code 1 for a failure's reason), 1 and 2 reboot. */
  sbiReset(type: number, reason: number): void {
    this.stopWith(type === 0 ? { kind: 'poweroff', code: reason === 0 ? 0 : 1 } : { kind: 'reboot' });
  }

  /** Bytes on the machine's console, as the UART and the SBI console print them. */
  consoleWrite(bytes: Uint8Array): void {
    this.consoleOut(bytes);
  }

  stopWith(reason: ExitReason): void {
    if (this.exit === undefined) this.exit = reason;
    for (const h of this.harts) h.stop = true;
  }

  /** Starts hart 0 at `pc` in M-mode (firmware or bare-metal program); the others wait in M-mode too. */
  resetAll(pc: number, a0IsHartId: boolean, a1: number): void {
    for (const h of this.harts) {
      h.reset(pc);
      if (a0IsHartId) h.setReg(10, h.id);
      h.setReg(11, a1);
    }
  }

  /**
   * Runs one round: every hart runs until its simulated time reaches the round's end (a slice of
   * instructions in fast mode; fewer when timing mode charges stalls, and a hart that overshot runs that
   * much less next round), then time, timers and devices move on.
   */
  runRound(): void {
    let ran = 0;
    const end = this.cycles + SLICE;
    const hardware = this.hardware;
    for (const h of this.harts) {
      // A stopped CPU (its node failed, or it did) executes nothing: idle, for good.
      if (hardware !== undefined && !hardware.cpuRuns(h.id)) {
        this.idleUntil(h, end);
        continue;
      }
      ran += this.runHart(h, end);
      if (this.exit !== undefined) break;
    }
    this.instructions += ran;
    // A hart that ran before another woke it (an IPI, after it had gone to WFI) can run now: no skip then.
    if (!this.idle) this.closeRound(end);
    else this.skipIdle();
    // Faults due by now happen at this boundary.
    hardware?.advanceTo(this.cycles);
  }

  /**
   * Runs hart `h` as a round ending at `end` would (the monitor calls this for the vCPUs it schedules):
   * a stopped hart is idle for the round, a waiting one idle up to now; returns the instructions run.
   */
  runHart(h: Hart, end: number): number {
    if (h.parked || h.suspended) {
      this.idleUntil(h, end);
      return 0;
    }
    if (h.waiting) this.idleUntil(h, this.cycles);
    const ran = this.runUntil(h, end);
    if (h.waiting) this.idleUntil(h, end);
    return ran;
  }

  /** Ends a round at `end` (normally `cycles + SLICE`): time, timers and devices move on. */
  closeRound(end: number): void {
    if (end > this.cycles) {
      this.clock.advanceInstructions(end - this.cycles);
      this.cycles = end;
    }
    this.afterTime();
  }

  /** Timers and devices after time moved. */
  private afterTime(): void {
    this.clint.update();
    this.sbi?.updateTimers(this.clock.now());
    this.pollDevices();
    if (this.htif !== undefined) this.pollHtif();
  }

  /** The next timer deadline in guest ticks (Infinity: none). */
  nextDeadline(): number {
    return Math.min(this.clint.nextDeadline(), this.sbi?.nextDeadline() ?? Infinity);
  }

  /** Devices with host input (the UART's queue) take it in and raise their interrupts. Call between rounds. */
  pollDevices(): void {
    for (const p of this.pollables) p.poll();
  }

  /**
   * Every hart waits: jump to the next timer deadline, the deterministic equivalent of sleeping, but not
   * past `idleSkipLimit` (a paced runner sets it to the host's time, so an idle guest waits for the world).
   */
  private skipIdle(): void {
    const target = Math.min(this.nextDeadline(), this.idleSkipLimit);
    const clock = this.clock;
    const before = clock instanceof InstructionClock ? clock.instructions : 0;
    if (target !== Infinity) clock.advanceTo(target);
    else clock.advanceInstructions(SLICE);
    // Host time moves by itself: the skip is then a slice.
    this.cycles += clock instanceof InstructionClock ? clock.instructions - before : SLICE;
    this.afterTime();
  }

  /** Guest time moves `cycles` on while every hart waits (the monitor keeps its VMs' clocks in step so). */
  skipCycles(cycles: number): void {
    this.clock.advanceInstructions(cycles);
    this.cycles += cycles;
    this.afterTime();
  }

  /**
   * Cycles from now to the next timer deadline (0 if due, Infinity if none). `threaded`: the harts run on
   * other threads, where the SBI timers that are due have fired: only the deadlines still ahead count.
   */
  cyclesToDeadline(threaded = false): number {
    const deadline = threaded
      ? Math.min(this.clint.nextDeadline(), this.sbi?.nextDeadlineAfter(this.clock.now()) ?? Infinity)
      : this.nextDeadline();
    if (deadline === Infinity) return Infinity;
    const clock = this.clock;
    const now = clock instanceof InstructionClock ? clock.instructions : clock.now() * INSTRUCTIONS_PER_TICK;
    return Math.max(0, deadline * INSTRUCTIONS_PER_TICK - now);
  }

  /**
   * Runs `h` until its time reaches `end` (or it waits). A run() call counts instructions, so the hart
   * is given chunks of what is left divided by its recent cycles per instruction: one chunk of the whole
   * budget in fast mode (CPI 1), a few converging chunks in timing mode. What is left under TAIL_CYCLES,
   * over or under, carries into the next round's budget.
   */
  private runUntil(h: Hart, end: number): number {
    let ran = 0;
    let left = end - h.localCycles;
    while (left >= TAIL_CYCLES || (left >= 1 && ran === 0)) {
      const cpi = this.cpi[h.id]!;
      const before = h.simulatedCycles;
      const n = h.run(h.timed ? Math.max(1, Math.min(TIMING_CHUNK, Math.floor(left / cpi))) : Math.floor(left));
      ran += n;
      if (n > 0) this.cpi[h.id] = Math.max(1, (h.simulatedCycles - before) / n);
      if (h.waiting || h.suspended || n === 0 || this.exit !== undefined) break;
      left = end - h.localCycles;
    }
    return ran;
  }

  /** A hart that did not run is idle up to `cycles` (under the monitor: a vCPU that got no physical CPU). */
  idleUntil(h: Hart, cycles: number): void {
    const behind = cycles - h.localCycles;
    if (behind > 0) h.idleCycles += behind;
  }

  /** True when no hart can run until something outside (a timer, input) happens. */
  get idle(): boolean {
    const hardware = this.hardware;
    return this.harts.every((h) => h.parked || h.suspended || (h.waiting && !h.wakeable) || (hardware !== undefined && !hardware.cpuRuns(h.id)));
  }

  /** HTIF (riscv-tests convention): tohost = 1 | code << 1 ends the run; device 1 command 1 prints a byte. */
  private pollHtif(): void {
    const memory = this.bus.guestMemory();
    const { tohost, fromhost } = this.htif!;
    const lo = memory.readU32(tohost);
    const hi = memory.readU32(tohost + 4);
    if (lo === 0 && hi === 0) return;
    const device = hi >>> 24;
    const command = (hi >>> 16) & 0xff;
    if (device === 0 && (lo & 1) === 1) {
      this.stopWith({ kind: 'htif', code: (lo >>> 1) + (hi & 0xffff) * 2 ** 31 });
    } else if (device === 1 && command === 1) {
      this.consoleOut(Uint8Array.of(lo & 0xff));
      memory.writeU32(fromhost, 1);
      memory.writeU32(fromhost + 4, (1 << 24) | (1 << 16));
    }
    memory.writeU32(tohost, 0);
    memory.writeU32(tohost + 4, 0);
  }
}
