// Several Linux VMs under the monitor, each driven through its console agent: what tests and experiments use.

import { performance } from 'node:perf_hooks';
import type { MachineConfig } from '../board/address-map.js';
import { decodeMonitorSnapshot, encodeMonitorSnapshot, restoreVm, restoreWhole, type LoadedMonitorSnapshot, type VmBuild } from '../host/monitor-snapshot.js';
import { savedDrive } from '../host/machine-spec.js';
import { runMonitor } from '../host/monitor-runner.js';
import { SeededEntropy, VirtioRng } from '../devices/virtio/rng.js';
import { attachDrives, type DriveSpec, type OpenDrive } from '../host/drives.js';
import { StateReader } from '../memory/state.js';
import { Monitor, type MonitorOptions } from '../monitor/monitor.js';
import type { VirtualMachine } from '../monitor/vm.js';
import { AgentProtocol, type AgentResult } from './agent-protocol.js';
import { GuestSessionError, settle } from './session.js';

export interface SessionVm {
  name: string;
  vcpus: number;
  memoryBytes: number;
  share?: number;
  /** Kernel arguments after `console=ttyS0 mb.agent=1`. */
  append?: string;
  /** A network card on the monitor's subnet (give the guest an address with `mb.ip=10.0.2.N/24` in append). */
  net?: boolean;
  /** Disks, as `run --drive` gives them (a copy-on-write disk's base goes through the monitor's page cache). */
  drives?: DriveSpec[];
  /** False: the VM shares no page with other VMs (`VmSpec.sharing`). */
  sharing?: boolean;
  /** A virtio-rng device seeded with this (`run --rng`): the guest's entropy, so VMs can differ. */
  rng?: number;
  /** Its home node (`VmSpec.homeNode`; default: the monitor's choice). */
  homeNode?: number;
  /** A virtio balloon whose free page reports and inflated pages the monitor takes back (`VmSpec.balloon`). */
  balloon?: boolean;
}

export interface MonitorSessionOptions {
  kernel: Uint8Array;
  initrd?: Uint8Array;
  /** The physical machine. */
  config: MachineConfig;
  vms: SessionVm[];
  monitor?: Omit<MonitorOptions, 'config'>;
  /** Host milliseconds that booting (all VMs) and then each command may take. Default 10 minutes. */
  timeoutMs?: number;
  onConsoleLine?: (vm: string, line: string) => void;
  /**
   * Let idle time flow at the host's rate (for VMs waiting on something outside). Default false: when every
   * vCPU idles, time jumps to the next timer, as GuestSession does.
   */
  pace?: boolean;
  /**
   * Give the VMs commands and typed input only at moments when every vCPU idles and no command runs, all
   * that is waiting at once, and hold machine time there while the host has nothing for them: a driven
   * run then reproduces exactly whatever the host's speed. Default true; not with `pace`.
   */
  holdIdle?: boolean;
  /** Host milliseconds of rounds between two looks at the event loop (monitor-runner.ts; for tests). */
  batchMs?: number;
  /** Called after every round at its safe point (cheap: it runs thousands of times a second), e.g. to sample memory. */
  afterRound?: (monitor: Monitor) => void;
  /**
   * Continue a session saved by `snapshot()` instead of booting: the whole machine as it was, every VM's
   * agent ready again with nothing said to the guests, so the run goes on exactly as the saved one would
   * have. The same options must be given again (kernel and initrd are then unused).
   */
  restore?: Uint8Array;
  /**
   * With `restore`: called, before the first round, with what the caller kept in that snapshot
   * (`snapshot(caller)`), or undefined — a sampler's state, say, that `afterRound` goes on from.
   */
  restored?: (caller: unknown) => void;
  /**
   * VMs made, before the monitor runs, each from a VM of a snapshot `snapshot()` took (`restoreVm`: on fresh
   * machine pages, placed as `place` says, its agent ready as saved), instead of booted: `vms` must name them
   * (`as`) with the sizes they were saved with. Later arrivals: `arriveAt`.
   */
  start?: StartVm[];
  /**
   * Called once the VMs are made, before the first round: what it asks of the session (`exec`, `atCycles`,
   * `arriveAt`, a look at the monitor's scheduler) is in place from the very first round, whatever the host's speed.
   */
  beforeRun?: (session: MonitorSession) => void;
}

/** A VM a session makes from a snapshot's VM rather than booting it. */
export interface StartVm {
  from: LoadedMonitorSnapshot;
  /** Its name in the snapshot, and in the session. */
  name: string;
  as: string;
  place?: { homeNode?: number; cell?: number };
}

const TRANSCRIPT_BYTES = 32 * 1024;

/** How VM `name` of a loaded snapshot was built (its drives as described, without the clusters saved then). */
function builtAs(loaded: LoadedMonitorSnapshot, name: string): VmBuild {
  const build = loaded.builds.get(name);
  return { drives: build?.drives.map((d) => savedDrive(d, false)) ?? [], rngSeed: build?.rngSeed ?? null };
}

/** What the caller of `snapshot(caller)` kept in a snapshot's extra, or undefined. */
function callerPart(extra: unknown): unknown {
  return typeof extra === 'object' && extra !== null && 'caller' in extra ? (extra as { caller: unknown }).caller : undefined;
}

/** A VM's agent as `snapshot()` saved it. */
interface SavedAgent {
  name: string;
  nextCommandId: number;
  ready: boolean;
}

/** VM `name`'s agent in a snapshot a session took, ready for commands; throws GuestSessionError if it is not. */
function readyAgent(loaded: LoadedMonitorSnapshot, name: string): SavedAgent {
  const agent = savedAgents(loaded.extra).find((a) => a.name === name);
  if (agent === undefined || !agent.ready) throw new GuestSessionError(`the snapshot has no ready agent in a VM named ${name}`);
  return agent;
}

/** The agents a session's snapshot saved (its `extra`). Throws StateError. */
function savedAgents(extra: unknown): SavedAgent[] {
  return new StateReader(extra, 'snapshot.extra').array('agents', (v, path) => {
    const a = new StateReader(v, path);
    return { name: a.string('name'), nextCommandId: a.number('nextCommandId', 1), ready: a.boolean('ready') };
  });
}
const encoder = new TextEncoder();

/** One VM's agent and console transcript. */
class VmDriver {
  readonly agent: AgentProtocol;
  transcript = '';
  /** Machine cycles when its agent said READY. */
  readyCycles: number | undefined;
  /** Resolves once the VM has ended (the session looks after each batch of rounds). */
  readonly ended: Promise<void>;
  private markEnded!: () => void;

  constructor(readonly vm: VirtualMachine, onLine: (line: string) => void) {
    this.ended = new Promise((resolve) => { this.markEnded = resolve; });
    this.agent = new AgentProtocol({
      send: (bytes) => vm.machine.uart.input(bytes),
      onOther: (line) => {
        this.transcript = `${this.transcript}${line}\n`.slice(-TRANSCRIPT_BYTES);
        onLine(line);
      },
    });
  }

  tail(lines = 30): string {
    return this.transcript.trimEnd().split('\n').slice(-lines).join('\n');
  }

  /** Settles `ended` if the VM has ended (or `always`: the monitor stopped). */
  checkEnded(always = false): void {
    if (always || this.vm.state !== 'running') this.markEnded();
  }
}

/**
 * A monitor with Linux VMs, run on the event loop. `exec` runs a
 * command in one VM while the others go on; `poweroff` ends one VM, the others keep running.
 */
export class MonitorSession {
  readonly monitor: Monitor;
  private readonly drivers = new Map<string, VmDriver>();
  private readonly running: Promise<void>;
  private readonly timeoutMs: number;
  private stopRequested = false;
  private readonly holdIdle: boolean;
  /** holdIdle: what the host has for each VM, given at that VM's next idle moment. */
  private readonly deferred = new Map<VmDriver, (() => void)[]>();
  /** holdIdle: what the host has for the whole machine, given when every VM waits for the host. */
  private readonly machineDeferred: (() => void)[] = [];
  private release: (() => void) | undefined;
  /** The VMs' disks, closed when the monitor stops. */
  private readonly disks: OpenDrive[] = [];
  /** How each VM was built beyond the monitor (its drives and rng), by name: what a snapshot records of it. */
  private readonly builds = new Map<string, VmBuild>();
  readonly started = performance.now();
  private readonly onConsoleLine: MonitorSessionOptions['onConsoleLine'];

  private constructor(options: MonitorSessionOptions) {
    this.timeoutMs = options.timeoutMs ?? 10 * 60_000;
    this.onConsoleLine = options.onConsoleLine;
    const translate = process.env.MIRRORBALL_TRANSLATE !== '0';
    const consoles = new Map(options.vms.map((spec) => [spec.name, this.consoleOf(spec.name)]));
    const saved = options.restore === undefined ? undefined : decodeMonitorSnapshot(options.restore);
    this.monitor = saved === undefined
      ? new Monitor({ ...options.monitor, config: options.config, translate })
      : restoreWhole(saved, { translate, timing: options.monitor?.timing, policy: options.monitor?.policy, scan: options.monitor?.scan, swap: options.monitor?.swap }, (name) => ({ console: (bytes) => consoles.get(name)?.(bytes) })).monitor;
    const agents = saved === undefined ? [] : savedAgents(saved.extra);
    if (saved !== undefined) options.restored?.(callerPart(saved.extra));
    const started = new Map((options.start ?? []).map((v) => [v.as, v]));
    if (saved !== undefined && started.size > 0) throw new GuestSessionError('a session restored whole makes no VM from another snapshot');
    for (const spec of options.vms) {
      const from = started.get(spec.name);
      if (from !== undefined) {
        this.makeFrom(from.from, from.name, from.as, from.place ?? {});
        continue;
      }
      const vm = saved === undefined
        ? this.monitor.createVm({ name: spec.name, vcpus: spec.vcpus, memoryBytes: spec.memoryBytes, share: spec.share, net: spec.net, sharing: spec.sharing, homeNode: spec.homeNode, balloon: spec.balloon, console: consoles.get(spec.name)! })
        : this.monitor.vm(spec.name);
      if (saved === undefined && vm !== undefined && spec.drives !== undefined) {
        this.disks.push(...attachDrives(vm.machine, spec.drives, `vm ${spec.name}`, (baseId, metrics) => this.monitor.diskHook(vm, baseId, metrics)));
      }
      if (saved === undefined && vm !== undefined && spec.rng !== undefined) vm.machine.attachVirtio(new VirtioRng(new SeededEntropy(spec.rng)));
      this.builds.set(spec.name, saved === undefined ? { drives: spec.drives ?? [], rngSeed: spec.rng ?? null } : builtAs(saved, spec.name));
      if (vm === undefined) throw new GuestSessionError(`the snapshot has no VM named ${spec.name}`);
      const driver = new VmDriver(vm, (line) => options.onConsoleLine?.(spec.name, line));
      this.drivers.set(spec.name, driver);
      const agent = agents.find((a) => a.name === spec.name);
      if (saved === undefined) vm.boot(options.kernel, options.initrd, spec.append === undefined ? 'console=ttyS0 mb.agent=1' : `console=ttyS0 mb.agent=1 ${spec.append}`);
      else if (agent !== undefined) this.resumeAgent(driver, agent);
    }
    this.holdIdle = options.holdIdle ?? options.pace !== true;
    if (this.holdIdle && options.pace === true) throw new GuestSessionError('holdIdle and pace exclude each other');
    const idleHold = this.holdIdle ? {
      waitingForHost: () => this.waitingForHost(),
      atIdle: (): boolean => {
        if (!this.waitingForHost()) return false;
        if (this.deferred.size === 0 && this.machineDeferred.length === 0) return true;
        for (const action of this.machineDeferred.splice(0)) action();
        this.deliverDeferred();
        return false;
      },
      whenReleased: () => new Promise<void>((resolve) => { this.release = resolve; }),
    } : undefined;
    options.beforeRun?.(this);
    this.running = runMonitor(this.monitor, {
      pace: options.pace === true, done: () => this.stopRequested, idleHold, batchMs: options.batchMs,
      afterRound: () => {
        this.runTimed();
        options.afterRound?.(this.monitor);
        if (this.holdIdle && this.deferred.size > 0) this.deliverDeferred();
      },
      onBatch: () => { for (const d of this.drivers.values()) d.checkEnded(); },
    }).finally(() => {
      for (const disk of this.disks.splice(0)) disk.close();
      for (const d of this.drivers.values()) {
        d.agent.abort(`the monitor stopped; ${d.vm.name}'s console ends with:\n${d.tail()}`);
        d.checkEnded(true);
      }
    });
  }

  /** True when every running VM's agent is ready and runs no command: the VMs wait for the host. */
  private waitingForHost(): boolean {
    // Something is due at a set time and nothing waits to be given now: machine time must flow to it.
    if (this.timed.length > 0 && this.deferred.size === 0 && this.machineDeferred.length === 0) return false;
    for (const d of this.drivers.values()) if (d.vm.state === 'running' && (!d.agent.ready || d.agent.busy)) return false;
    return true;
  }

  /**
   * Gives each VM what waits for it if the VM is at an idle moment: every vCPU idle and no command running.
   * Another VM need not idle, so a VM that never does (a CPU hog, a wrecked kernel) holds up only itself.
   */
  private deliverDeferred(): void {
    for (const [d, actions] of [...this.deferred]) {
      if (d.vm.state === 'running' && !(d.agent.ready && !d.agent.busy && this.monitor.vmIdle(d.vm))) continue;
      this.deferred.delete(d);
      for (const action of actions) action();
      if (d.vm.state === 'running') d.vm.machine.pollDevices();
    }
  }

  /**
   * Runs `action` at VM `name`'s next idle moment with no command running (with holdIdle; at once without):
   * a host-side change (a mode switch) or reading counters then lands at the same guest instant in every run.
   */
  atIdle<T>(name: string, action: () => T): Promise<T> {
    const d = this.driver(name);
    return new Promise<T>((resolve, reject) => this.deliver(d, settle(action, resolve, reject)));
  }

  /**
   * Runs `action` at the next moment every vCPU of every VM idles and no command runs (with holdIdle; at
   * once without): reading the monitor's time or counters there gives the same value in every run.
   */
  atMachineIdle<T>(action: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const run = settle(action, resolve, reject);
      if (!this.holdIdle) {
        run();
        return;
      }
      this.machineDeferred.push(run);
      this.wake();
    });
  }

  /** Actions due at machine cycles (`atCycles`), in the order they are due. */
  private readonly timed: { at: number; run: () => void }[] = [];

  /**
   * Runs `action` at the first round boundary at or after machine cycle `at` (at once if that has passed), on
   * the monitor's loop: a run that does things at set simulated times (a VM's arrival, a burst of work)
   * then reproduces whatever the host's speed. What `action` asks of a VM there (`exec`) is given to it at its
   * next idle moment, as always.
   */
  atCycles<T>(at: number, action: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const run = settle(action, resolve, reject);
      const k = this.timed.findIndex((t) => t.at > at);
      this.timed.splice(k < 0 ? this.timed.length : k, 0, { at, run });
      this.wake();
    });
  }

  private runTimed(): void {
    while (this.timed.length > 0 && this.timed[0]!.at <= this.monitor.cycles) this.timed.shift()!.run();
  }

  /**
   * VM `as` arrives at machine cycle `at`: made then from VM `name` of `loaded` (a snapshot `snapshot()` took,
   * decoded) on fresh machine pages of the running monitor, placed as `place` says, its agent ready as saved;
   * `then` runs at once after, at the same round boundary (its first command, so that it is given at the
   * VM's first idle moment whatever the host's speed). Rejects with the snapshot's one-line error if it cannot
   * be restored.
   */
  arriveAt(at: number, loaded: LoadedMonitorSnapshot, name: string, as: string, place: { homeNode?: number; cell?: number } = {}, then?: (vm: VirtualMachine) => void): Promise<VirtualMachine> {
    if (this.drivers.has(as)) return Promise.reject(new GuestSessionError(`a VM named ${as} is already in the session`));
    return this.atCycles(at, () => {
      const vm = this.makeFrom(loaded, name, as, place);
      then?.(vm);
      return vm;
    });
  }

  /** VM `name` of `loaded` made again in the monitor as `as`, with its driver and its agent ready as saved. */
  private makeFrom(loaded: LoadedMonitorSnapshot, name: string, as: string, place: { homeNode?: number; cell?: number }): VirtualMachine {
    const agent = readyAgent(loaded, name);
    const { vm, disks } = restoreVm(this.monitor, loaded, name, as, { console: this.consoleOf(as) }, place);
    this.disks.push(...disks);
    this.builds.set(as, builtAs(loaded, name));
    const driver = new VmDriver(vm, (line) => this.onConsoleLine?.(as, line));
    this.drivers.set(as, driver);
    this.resumeAgent(driver, agent);
    return vm;
  }

  /** Does `action` for `d` now, or with holdIdle at its VM's next idle moment (and wakes a held runner). */
  private deliver(d: VmDriver, action: () => void): void {
    if (!this.holdIdle) {
      action();
      return;
    }
    const queue = this.deferred.get(d);
    if (queue === undefined) this.deferred.set(d, [action]);
    else queue.push(action);
    this.wake();
  }

  /** Lets a held runner run on (holdIdle). */
  private wake(): void {
    const release = this.release;
    this.release = undefined;
    release?.();
  }

  /** Starts the monitor and waits until every VM's agent is ready. */
  static async boot(options: MonitorSessionOptions): Promise<MonitorSession> {
    const session = new MonitorSession(options);
    try {
      await session.withTimeout(Promise.all([...session.drivers.values()].map((d) => session.whenReady(d))), 'every VM to be ready');
    } catch (error) {
      await session.kill();
      throw error;
    }
    return session;
  }

  private whenReady(d: VmDriver): Promise<void> {
    const ended = d.ended.then(() => {
      throw new GuestSessionError(`VM ${d.vm.name} ended (${d.vm.state}: ${d.vm.reason}) before its agent was ready; console ends with:\n${d.tail()}`);
    });
    return Promise.race([d.agent.whenReady(), ended]);
  }

  vm(name: string): VirtualMachine {
    const d = this.drivers.get(name);
    if (d === undefined) throw new GuestSessionError(`no VM named ${name}`);
    return d.vm;
  }

  /** Machine cycles at which VM `name`'s agent became ready. */
  readyCycles(name: string): number | undefined {
    return this.drivers.get(name)?.readyCycles;
  }

  /** Runs `command` in VM `name`; rejects if the VM ends before the command does (it would never answer). */
  exec(name: string, command: string): Promise<AgentResult> {
    const d = this.driver(name);
    const result = new Promise<AgentResult>((resolve, reject) => this.deliver(d, () => d.agent.exec(command).then(resolve, reject)));
    const ended = d.ended.then((): never => {
      throw new GuestSessionError(`VM ${name} ended (${d.vm.state}: ${d.vm.reason}) during ${JSON.stringify(command.slice(0, 60))}`);
    });
    return this.withTimeout(Promise.race([result, ended]), `${name}: ${JSON.stringify(command.slice(0, 60))}`);
  }

  /** Whether VM `name` has a command running or waiting to be given to it (exact at a round boundary: `atCycles`). */
  commandPending(name: string): boolean {
    const d = this.driver(name);
    return d.agent.busy || this.deferred.has(d);
  }

  /** Types raw bytes into VM `name`'s console. */
  type(name: string, text: string): void {
    const d = this.driver(name);
    const bytes = encoder.encode(text);
    this.deliver(d, () => d.vm.machine.uart.input(bytes));
  }

  /** Asks VM `name` to power off and waits until the monitor has ended it. */
  async poweroff(name: string): Promise<void> {
    const d = this.driver(name);
    this.deliver(d, () => { d.agent.exec('sync; poweroff -f').catch(() => {}); });
    await this.withTimeout(d.ended, `${name} to power off`);
  }

  /** Stops the monitor and every VM at once. */
  async kill(): Promise<void> {
    this.stopRequested = true;
    const pending = [...this.deferred.values()].flat().concat(this.machineDeferred.splice(0));
    this.deferred.clear();
    for (const action of pending) action();
    this.wake(); // a held runner must wake to see the stop
    await this.running;
  }

  /**
   * The whole machine as bytes (every VM, and each agent's next command id), for `restore`: taken at the next
   * moment every vCPU idles and no command runs (with holdIdle; at once, between rounds, without). `caller`, at
   * that moment, gives plain data of the caller's to keep with it (a restore hands it to `restored`).
   */
  snapshot(caller?: () => unknown): Promise<Uint8Array> {
    return this.atMachineIdle(() => {
      const agents = [...this.drivers.values()].map((d) => {
        if (d.agent.busy) throw new GuestSessionError(`a command is running in ${d.vm.name}`);
        return { name: d.vm.name, nextCommandId: d.agent.nextCommandId, ready: d.agent.ready };
      });
      const kept = caller?.();
      return encodeMonitorSnapshot(this.monitor, (vm) => this.builds.get(vm.name) ?? { drives: [], rngSeed: null }, { agents, ...(kept === undefined ? {} : { caller: kept }) });
    });
  }

  /**
   * Makes VM `name`, which has ended, again from `loaded` (a snapshot `snapshot()` took, decoded): on fresh
   * machine pages of the running monitor, at home on `homeNode` (and confined to `cell`) when given, its agent ready as it was saved.
   * Done at the machine's next idle moment (with holdIdle), so the run stays reproducible. Rejects with the
   * snapshot's one-line error if it cannot be restored.
   */
  replaceVm(name: string, loaded: LoadedMonitorSnapshot, place: { homeNode?: number; cell?: number } = {}): Promise<VirtualMachine> {
    const old = this.drivers.get(name);
    if (old !== undefined && old.vm.state === 'running') return Promise.reject(new GuestSessionError(`VM ${name} is still running`));
    try {
      readyAgent(loaded, name);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.atMachineIdle(() => this.makeFrom(loaded, name, name, place));
  }

  /** VM `name`'s console: its agent's input, and the moment the agent is first ready. */
  private consoleOf(name: string): (bytes: Uint8Array) => void {
    return (bytes) => {
      const driver = this.drivers.get(name)!;
      driver.agent.feed(bytes);
      if (driver.readyCycles === undefined && driver.agent.ready) driver.readyCycles = this.monitor.cycles;
    };
  }

  /** A restored VM's agent goes on from where the snapshot left it, with nothing said to the guest. */
  private resumeAgent(driver: VmDriver, agent: SavedAgent): void {
    driver.agent.continueFrom(agent.nextCommandId);
    if (agent.ready) {
      driver.agent.readyAgain();
      driver.readyCycles = this.monitor.cycles;
    } else driver.agent.ping();
  }

  tail(name: string, lines = 30): string {
    return this.driver(name).tail(lines);
  }

  private driver(name: string): VmDriver {
    const d = this.drivers.get(name);
    if (d === undefined) throw new GuestSessionError(`no VM named ${name}`);
    if (d.vm.state !== 'running') throw new GuestSessionError(`VM ${name} has ended (${d.vm.state}: ${d.vm.reason})`);
    return d;
  }

  private withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new GuestSessionError(`waited ${this.timeoutMs / 1000} s for ${what}`)), this.timeoutMs);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }
}
