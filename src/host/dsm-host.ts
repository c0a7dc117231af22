// One host's part of a VM spanning several (docs/giantvm.md): its harts on worker threads over its coherent
// copy of guest memory, its part of the DSM (Ivy's protocol, dsm/ivy.ts) on the main thread, and the
// links to the other hosts. Host 0 (hosts-runner.ts) adds the devices and the rounds; another host
// (remote-host.ts) forwards its harts' MMIO to host 0.

import { appendFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { CoherentPages, HOLDS_NONE, HOLDS_READ, HOLDS_WRITE, type CoherentMemory } from '../board/coherent-ram.js';
import { HostSignals, type CoherentHartSpec } from '../board/coherent-hart.js';
import { ThreadWakes } from '../board/coherent-ram.js';
import { forwardingMemory, type ForwardingMemory } from '../board/forwarded-mmio.js';
import type { SbiShared } from '../board/sbi.js';
import { signalMemory, type SignalMemory } from '../board/threaded-sbi.js';
import type { HartSnapshot } from '../cpu/hart-snapshot.js';
import { Reservations } from '../cpu/reservations.js';
import { DsmNode, DsmProtocolError, INVALID, MODIFIED, type DsmMessage, type Envelope, type PageFrames, type PageState } from '../dsm/ivy.js';
import type { DmaCounters } from '../dsm/dma-gate.js';
import type { WireMessage } from '../dsm/wire.js';
import { CONTROL, NUMBERS } from './threaded-control.js';
import type { DsmWorkerData } from './dsm-worker.js';
import { rttHistogram } from './dsm-stats.js';
import { SignalRelay, type RelayCounters, type RelayMessage } from './signal-relay.js';

/** Round trips a report carries at most (a frame holds 8 KiB): quantiles of them past that. */
const REPORT_SAMPLES = 500;
/** The most-bounced pages a report names (the frame's 8 KiB again). */
const REPORT_BOUNCED = 64;
/** Milliseconds a host's main loop runs at most without a turn of the event loop (sockets, heartbeats). */
const YIELD_MS = 20;

/** `values` sorted, or `count` evenly spaced quantiles of them. */
export function thin(values: readonly number[], count: number): number[] {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length <= count) return sorted.map((v) => Math.round(v));
  return Array.from({ length: count }, (_, i) => Math.round(sorted[Math.floor((i * (sorted.length - 1)) / (count - 1))]!));
}

/** Where a host's messages to another go: a link, or (between hosts other than 0) a link through host 0. */
export interface MessageSink {
  send(message: WireMessage): void;
}

/** What every host is told in `start` (JSON). */
export interface HostsConfig {
  harts: number;
  entry: number;
  /** Bare metal and M-mode firmware: every hart's a1 at `entry` (the device tree's address for OpenSBI; 0 for `--elf`). */
  a1?: number;
  ramBase: number;
  ramSize: number;
  devices: { base: number; size: number; name: string }[];
  translate: boolean;
  holdUs: number;
  /**
   * Linux under the built-in SBI: each hart's HSM state at the start (the others are parked as firmware
   * leaves a hart before S-mode, at `entry`). Absent: a bare-metal program, every hart at `entry` in M-mode.
   */
  sbi?: { hsm: number[] };
}

/** What host 0 hands its own harts under the built-in SBI: the machine's firmware state and the harts as loaded. */
export interface HostZeroSbi {
  shared: SbiShared;
  states: HartSnapshot[];
}

/** Atomics.waitAsync (Node 16+; the project's TypeScript library predates it). */
interface AtomicsWaitAsync {
  waitAsync(array: Int32Array, index: number, value: number, timeoutMs: number): { async: false; value: string } | { async: true; value: Promise<string> };
}

/** The DSM kinds of the wire. */
const DSM_KINDS = new Set(['read-request', 'write-request', 'forward', 'invalidate', 'invalidate-ack', 'page-data', 'grant', 'confirm']);

export function isDsmMessage(m: WireMessage): m is DsmMessage {
  return DSM_KINDS.has(m.kind);
}

/** Microseconds on this host's monotonic clock: the DSM's time. */
export function nowUs(): number {
  return performance.now() * 1000;
}

/** The hart `hart` runs on: hart i on host i mod hosts. */
export function hostOfHart(hart: number, hosts: number): number {
  return hart % hosts;
}

/** A host's counters for the report (stats of docs/giantvm.md). */
export interface HostReport {
  host: number;
  readFaults: number;
  writeFaults: number;
  upgradeFaults: number;
  bytesSent: number;
  held: number;
  /** Fault round trips of this host's harts (the fault to the page in place), µs: all of them, or evenly spaced quantiles of them. */
  roundTripsUs: number[];
  roundTripCount: number;
  /** All the round trips, counted by duration (dsm-stats.ts's buckets). */
  rttHistogram?: number[];
  pages: [number, number, number];
  /** The pages this host manages that bounced most: [page, times its ownership moved], at most REPORT_BOUNCED. */
  bounces: [number, number][];
  instructions: number;
  /** The built-in SBI's calls relayed to and from other hosts (absent for bare-metal programs). */
  relay?: RelayCounters;
  /** `lines` messages host 0 sent (interrupt lines of harts on other hosts). */
  linesSent?: number;
  /** Messages host 0 passed on between two other hosts (`via`). */
  passedOn?: number;
  /** Host 0's devices' DMA through the DSM (dsm/dma-gate.ts). */
  dma?: DmaCounters;
}

export class HostNode {
  readonly dsm: DsmNode;
  readonly pages: CoherentPages;
  readonly forwarding: ForwardingMemory;
  readonly doorbell: Int32Array;
  readonly reservations: Reservations;
  readonly mine: number[];
  private readonly control = new Int32Array(new SharedArrayBuffer(CONTROL.WORDS * 4));
  private readonly numbers: Float64Array;
  private readonly time = new SharedArrayBuffer(8);
  private readonly timeNow = new Float64Array(this.time);
  private readonly workers: Worker[] = [];
  private readonly outbox: Envelope[] = [];
  private readonly faultSince = new Map<number, number>();
  readonly roundTrips: number[] = [];
  failure: string | undefined;
  instructions = 0;
  linesSent = 0;
  private lastYield = performance.now();
  passedOn = 0;
  private faultsTaken = 0;
  /** Under the built-in SBI: the SBI's state of this host, the harts' signal words and their relay to the other hosts. */
  readonly sbiShared: SbiShared | undefined;
  private readonly signalsMemory: SignalMemory | undefined;
  readonly relay: SignalRelay | undefined;
  private readonly deadlines: Float64Array | undefined;

  constructor(readonly host: number, readonly hosts: number, readonly config: HostsConfig, readonly memory: CoherentMemory,
    private readonly links: ReadonlyMap<number, MessageSink>, private readonly zero?: HostZeroSbi) {
    this.mine = Array.from({ length: config.harts }, (_, i) => i).filter((h) => hostOfHart(h, hosts) === host);
    this.forwarding = forwardingMemory(config.harts);
    this.doorbell = new Int32Array(this.forwarding.doorbell);
    this.numbers = new Float64Array(new SharedArrayBuffer((NUMBERS.WORKERS + config.harts * NUMBERS.PER_WORKER) * 8));
    this.reservations = new Reservations(config.harts);
    if (!(this.reservations.memory() instanceof SharedArrayBuffer)) throw new Error('hosts need the reservation table in shared memory');
    this.pages = new CoherentPages(memory, this.mine);
    const frames: PageFrames = {
      // A view: the bytes are copied when the frame is encoded, after every hart here let the page go.
      read: (page) => this.pages.bytes.subarray(page * 4096, page * 4096 + 4096),
      write: (page, data) => this.pages.bytes.set(data, page * 4096),
      setState: (page, state) => this.setState(page, state),
    };
    this.dsm = new DsmNode(host, hosts, memory.size / 4096, frames, { holdUs: config.holdUs });
    // A hung run says what each host waits for: on stderr, or appended to the file MIRRORBALL_DSM_DUMP names.
    process.on('SIGUSR2', () => {
      const dump = process.env.MIRRORBALL_DSM_DUMP;
      if (dump === undefined) process.stderr.write(`${this.describe()}\n`);
      else appendFileSync(dump, `${this.describe()}\n`);
    });
    if (config.sbi !== undefined) {
      const harts = config.harts;
      this.sbiShared = zero?.shared ?? hostSbiState(config.sbi.hsm);
      this.deadlines = new Float64Array(this.sbiShared.timerDeadline);
      this.signalsMemory = signalMemory(harts, harts);
      const signals = new HostSignals(this.signalsMemory, harts, this.mine, new ThreadWakes(memory), this.doorbell);
      this.relay = new SignalRelay(host, hosts, harts, this.mine, signals, new Int32Array(this.sbiShared.hsmState), (h) => hostOfHart(h, hosts),
        (to, message) => this.sendTo(to, message));
    }
    // The DSM starts with every page Modified on host 0.
    if (host === 0) for (let p = 0; p < this.pages.pages; p++) this.pages.raise(p, HOLDS_WRITE);
  }

  /** Starts a worker per hart of this host. */
  startWorkers(startWorker: (data: DsmWorkerData) => Worker): void {
    const reservations = this.reservations.memory() as SharedArrayBuffer;
    this.mine.forEach((hart, index) => {
      const spec: CoherentHartSpec = {
        hart, harts: this.config.harts, entry: this.config.entry, a1: this.config.a1, memory: this.memory, reservations, time: this.time,
        translate: this.config.translate, devices: this.config.devices, forwarding: this.forwarding,
        sbi: this.sbiShared === undefined ? undefined : {
          shared: this.sbiShared, signals: this.signalsMemory!, local: this.mine, state: this.zero?.states[hart],
        },
      };
      const worker = startWorker({ index, spec, control: this.control.buffer as SharedArrayBuffer, numbers: this.numbers.buffer as SharedArrayBuffer });
      worker.on('error', (error) => { this.failure ??= `host ${this.host}: hart ${hart}: ${error.message}`; this.ring(); });
      this.workers.push(worker);
    });
  }

  /** Starts a round of this host's harts from `start` to `end` cycles, reading guest time `mtime`. */
  startRound(start: number, end: number, mtime: number): void {
    this.timeNow[0] = mtime;
    this.numbers[NUMBERS.START] = start;
    this.numbers[NUMBERS.END] = end;
    Atomics.store(this.control, CONTROL.DONE, 0);
    Atomics.add(this.control, CONTROL.GENERATION, 1);
    Atomics.notify(this.control, CONTROL.GENERATION);
    // Between rounds a hart's thread sleeps on its wake word (serving its signals).
    this.pages.wakeAll();
  }

  /** The earliest SBI timer deadline of this host's harts after `now` ticks (Infinity: none): what an idle VM may skip to. */
  nextTimer(now: number): number {
    let next = Infinity;
    if (this.deadlines === undefined) return next;
    for (const h of this.mine) {
      const d = this.deadlines[h]!;
      if (d > now && d < next) next = d;
    }
    return next;
  }

  /** Whether this host relayed a signal since the last call (a round that did is not idle). */
  takeActivity(): boolean {
    return this.relay?.takeActivity() ?? false;
  }

  /** A relayed SBI message from host `from` (signal-relay.ts); a wrong one is this host's failure line. */
  receiveRelay(message: RelayMessage, from: number): void {
    try {
      this.relay?.receive(message, from);
    } catch (error) {
      this.failure ??= `host ${this.host}: ${error instanceof Error ? error.message : String(error)}`;
    }
  }

  roundDone(): boolean {
    return Atomics.load(this.control, CONTROL.DONE) >= this.workers.length;
  }

  /** What this host's harts did in the round that is done: instructions, and whether all idle. */
  roundResult(): { instructions: number; idle: boolean } {
    let instructions = 0;
    let idle = true;
    for (let w = 0; w < this.workers.length; w++) {
      instructions += this.numbers[NUMBERS.WORKERS + w * NUMBERS.PER_WORKER]!;
      if (this.numbers[NUMBERS.WORKERS + w * NUMBERS.PER_WORKER + 1] === 0) idle = false;
    }
    this.instructions += instructions;
    return { instructions, idle };
  }

  /** Wakes this host's main loop (a message came in, a worker failed). */
  ring(): void {
    Atomics.add(this.doorbell, 0, 1);
    Atomics.notify(this.doorbell, 0);
  }

  /** The harts' new faults go to the DSM, and what the DSM has to send goes out once the harts let go. */
  service(): void {
    const now = nowUs();
    for (const f of this.pages.takeFaults()) {
      this.faultsTaken++;
      if (this.dsm.fault(f.page, f.write, now)) {
        // The page came between the hart's look and this one (the tail of an earlier round trip): nothing
        // to time. Left in faultSince, it would time the page's next arrival from now, seconds later.
        this.faultSince.delete(f.page);
        this.pages.wakeAll();
      } else if (!this.faultSince.has(f.page)) {
        this.faultSince.set(f.page, now);
      }
    }
    this.dsm.tick(now);
    this.collect(now);
    this.flush();
    this.relay?.service();
  }

  /** A DSM message from a peer (or a device's fault on host 0). */
  receive(message: DsmMessage): void {
    const now = nowUs();
    try {
      this.dsm.receive(message, now);
    } catch (error) {
      if (error instanceof DsmProtocolError) { this.failure ??= `host ${this.host}: ${error.message}`; return; }
      throw error;
    }
    this.collect(now);
    this.flush();
  }

  /** A fault made by the host itself (a device on host 0): true when the page is already there. */
  hostFault(page: number, write: boolean): boolean {
    const now = nowUs();
    const ready = this.dsm.fault(page, write, now);
    this.collect(now);
    this.flush();
    return ready;
  }

  /** How long the main loop may sleep: until a held request is due, or 20 ms. */
  sleepMs(): number {
    const due = this.dsm.nextDue();
    if (this.outbox.length > 0) return 0.05;
    return due === undefined ? 20 : Math.max(0, (due - nowUs()) / 1000);
  }

  /** Sleeps until the doorbell rings (a fault, an MMIO request, a round done, a message) or `ms` pass. */
  async sleep(ms: number): Promise<void> {
    const bell = Atomics.load(this.doorbell, 0);
    const wait = (Atomics as unknown as AtomicsWaitAsync).waitAsync(this.doorbell, 0, bell, ms);
    if (wait.async) await wait.value;
    // A main loop that never waited (the doorbell rang, a held request was due) still lets the event loop
    // read the sockets and run the heartbeats now and then.
    if (performance.now() - this.lastYield > YIELD_MS) {
      await new Promise((resolve) => setImmediate(resolve));
      this.lastYield = performance.now();
    }
  }

  stopWorkers(): Promise<void> {
    Atomics.store(this.control, CONTROL.STOP, 1);
    Atomics.add(this.control, CONTROL.GENERATION, 1);
    Atomics.notify(this.control, CONTROL.GENERATION);
    this.pages.wakeAll();
    // A hart waiting for a page or an MMIO reply that will not come is ended from outside.
    return Promise.all(this.workers.map((w) => w.terminate())).then(() => {});
  }

  /** Pages this host's harts wait for (a fault taken, the page not here yet). */
  get waitingFaults(): number {
    return this.faultSince.size;
  }

  /** What this host waits for, for a hung run's diagnosis (SIGUSR2 prints it). */
  describe(): string {
    const last = this.pages.lastPages();
    return `host ${this.host}: ${this.dsm.describe()} dsm-states=[${last.map((p) => `${p}:${this.dsm.stateOf(p)}`).join(',')}] taken=${this.faultsTaken} waiting=${this.faultSince.size} outbox=${this.outbox.length} shot-down=${this.pages.shotDown()} round-done=${this.roundDone()} ${this.pages.describe()}`;
  }

  report(): HostReport {
    const c = this.dsm.counters;
    return {
      host: this.host, readFaults: c.readFaults, writeFaults: c.writeFaults, upgradeFaults: c.upgradeFaults, bytesSent: c.bytesSent,
      held: c.held, roundTripsUs: thin(this.roundTrips, REPORT_SAMPLES), roundTripCount: this.roundTrips.length,
      rttHistogram: rttHistogram(this.roundTrips), pages: this.dsm.pagesByState(),
      bounces: [...this.dsm.bounces.entries()].sort((x, y) => y[1] - x[1]).slice(0, REPORT_BOUNCED),
      instructions: this.instructions, relay: this.relay?.counters, linesSent: this.host === 0 ? this.linesSent : undefined,
      passedOn: this.host === 0 && this.hosts > 2 ? this.passedOn : undefined,
    };
  }

  private sendTo(to: number, message: WireMessage): void {
    const link = this.links.get(to);
    if (link === undefined) { this.failure ??= `host ${this.host}: no link to host ${to}`; return; }
    link.send(message);
  }

  private setState(page: number, state: PageState): void {
    const holds = state === MODIFIED ? HOLDS_WRITE : state === INVALID ? HOLDS_NONE : HOLDS_READ;
    if (holds >= this.pages.holds(page)) { this.pages.raise(page, holds); return; }
    // Taken away: reservations on it are lost, then every hart here drops its TLB (the outbox waits for that).
    if (holds < HOLDS_WRITE) this.reservations.storeBy(-1, this.memory.base + page * 4096, 4096);
    this.pages.lower(page, holds);
  }

  private collect(now: number): void {
    const out = this.dsm.takeOutput();
    for (const page of out.resumed) {
      const since = this.faultSince.get(page);
      if (since !== undefined) { this.roundTrips.push(now - since); this.faultSince.delete(page); }
    }
    this.outbox.push(...out.sends);
  }

  /** Sends what the DSM produced, in order, once every hart of this host dropped the pages given away. */
  private flush(): void {
    if (this.outbox.length === 0 || !this.pages.shotDown()) return;
    for (const e of this.outbox) {
      const link = this.links.get(e.to);
      if (link === undefined) { this.failure ??= `host ${this.host}: no link to host ${e.to}`; continue; }
      link.send(e.message);
    }
    this.outbox.length = 0;
  }
}

/** A host's own copy of the SBI's state: no timer set, the HSM states host 0 started with. */
function hostSbiState(hsm: readonly number[]): SbiShared {
  const shared = { timerDeadline: new SharedArrayBuffer(hsm.length * 8), hsmState: new SharedArrayBuffer(hsm.length * 4) };
  new Float64Array(shared.timerDeadline).fill(Infinity);
  new Int32Array(shared.hsmState).set(hsm);
  return shared;
}

/**
 * The worker's module is beside this one. From the sources (tests, under tsx), the worker registers tsx's
 * loader first, as threaded-runner.ts does.
 */
export function startDsmWorker(data: DsmWorkerData): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./dsm-worker.js', import.meta.url), { workerData: data });
  const url = new URL('./dsm-worker.ts', import.meta.url).href;
  const bootstrap = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(url)}); });`;
  return new Worker(bootstrap, { eval: true, workerData: data });
}
