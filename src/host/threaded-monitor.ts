// The monitor on worker threads (`up` with `threads: N`, docs/threads.md "The monitor on threads"): the
// machine split into N parts (monitor/thread-partitions.ts), each run by a monitor of its own on a worker
// (the module the caller names: cli/up-worker.ts) with the VMs placed there. The main thread keeps the host's side: it learns after each of a
// worker's batches what its VMs printed, which ended and how, and forwards input, stops and quit. Not
// reproducible: the threads run at the host's pace.

import { Worker } from 'node:worker_threads';
import type { MachineConfig } from '../board/address-map.js';
import type { Placement } from '../monitor/pmap.js';
import { placeVms, splitMachine, type ThreadPart } from '../monitor/thread-partitions.js';
import type { MmuMode } from '../monitor/vm.js';
import type { DriveSpec } from './drives.js';

/** A VM as a worker makes it: everything resolved (paths absolute, the whole kernel command line). */
export interface ThreadedVmSpec {
  name: string;
  smp: number;
  memoryBytes: number;
  kernel?: string;
  initrd?: string;
  append: string;
  elf?: string;
  drives: DriveSpec[];
  rng?: number;
  share: boolean;
  balloon: boolean;
}

export interface VmWorkerData {
  index: number;
  part: ThreadPart;
  translate: boolean;
  mmu: MmuMode;
  placement: Placement;
  gang: boolean;
  vms: ThreadedVmSpec[];
}

/** A VM's state as its worker last reported it. */
export interface VmWorkerState {
  name: string;
  state: 'running' | 'off' | 'crashed' | 'stopped';
  reason: string;
  bytesInUse: number;
  /** Its home node among its part's nodes. */
  homeNode: number;
  /** Crashed, or powered off reporting a failure. */
  failed: boolean;
  /** Its pages: in use, private, shared (and by how many holders: accounting.ts summarizeVm), reserved. */
  pages: { pagesInUse: number; pagesPrivate: number; pagesShared: number; pagesSharedBy: Record<string, number>; pagesReserved: number };
}

export type ToVmWorker =
  | { kind: 'run' }
  | { kind: 'input'; name: string; bytes: Uint8Array }
  | { kind: 'stop'; name: string; reason: string }
  | { kind: 'quit'; reason: string }
  /** A control command its monitor answers (one of ASKED). */
  | { kind: 'ask'; id: number; command: string; args: Record<string, unknown> };

/** The control commands a worker's monitor answers for the main thread. */
export const ASKED = ['query-vm-stats', 'query-balloon', 'balloon', 'query-memory', 'query-monitor'] as const;

export type FromVmWorker =
  | { kind: 'ready'; vms: (VmWorkerState & { vcpus: number; memoryBytes: number })[] }
  | { kind: 'error'; line: string }
  | { kind: 'log'; line: string }
  | { kind: 'batch'; output: [string, Uint8Array][]; vms: VmWorkerState[]; cycles: number; instructions: number }
  | { kind: 'answer'; id: number; result?: unknown; error?: { errorClass: string; message: string } }
  | { kind: 'done' };

/** A VM of a threaded monitor, as the main thread knows it. */
export interface ThreadedVm extends VmWorkerState {
  /** Its place in the machine file. */
  id: number;
  /** The worker that runs it. */
  thread: number;
  vcpus: number;
  memoryBytes: number;
}

/** A worker's monitor refused a command (its control error's class and sentence), or the worker has gone. */
export class ThreadAnswerError extends Error {
  constructor(readonly errorClass: string, message: string) {
    super(message);
  }
}

/** Something the user gave that a threaded monitor cannot start with: one line. */
export class ThreadedMonitorError extends Error {}

export interface ThreadedMonitorOptions {
  /** The worker's module (a `.ts` one is loaded through tsx). */
  worker: URL;
  config: MachineConfig;
  threads: number;
  translate: boolean;
  mmu: MmuMode;
  placement: Placement;
  gang: boolean;
  vms: ThreadedVmSpec[];
  /** VM `name` printed `bytes`. */
  onOutput(name: string, bytes: Uint8Array): void;
  /** VM `vm` ended (reported once). */
  onEnded(vm: ThreadedVm): void;
  /** A line of the monitor's log (a VM's, a worker's failure). */
  log(line: string): void;
}

interface Thread {
  /** Its part of the machine. */
  index: number;
  worker: Worker;
  part: ThreadPart;
  ended: Promise<void>;
  cycles: number;
  instructions: number;
  /** Its worker has exited. */
  finished: boolean;
}

export class ThreadedMonitor {
  readonly vms: ThreadedVm[];
  private readonly threads: Thread[] = [];
  private readonly reported = new Set<string>();
  private readonly pending = new Map<number, { thread: number; resolve: (value: unknown) => void; reject: (error: ThreadAnswerError) => void }>();
  private nextQuestion = 0;

  private constructor(private readonly options: ThreadedMonitorOptions, placement: number[]) {
    this.vms = options.vms.map((v, id) => ({
      id, name: v.name, thread: placement[id]!, vcpus: v.smp, memoryBytes: v.memoryBytes,
      state: 'running', reason: '', bytesInUse: 0, homeNode: 0, failed: false,
      pages: { pagesInUse: 0, pagesPrivate: 0, pagesShared: 0, pagesSharedBy: {}, pagesReserved: 0 },
    }));
  }

  /**
   * Splits the machine, starts a worker for each part that has VMs and waits until each has made and booted
   * its VMs. The first user mistake a worker finds (a disk, a kernel) is a ThreadedMonitorError, every worker ended.
   */
  static async start(options: ThreadedMonitorOptions): Promise<ThreadedMonitor> {
    const parts = splitMachine(options.config, options.threads);
    const placement = placeVms(parts, options.vms);
    const monitor = new ThreadedMonitor(options, placement);
    const readies: Promise<string | undefined>[] = [];
    parts.forEach((part, index) => {
      const vms = options.vms.filter((_, i) => placement[i] === index);
      if (vms.length === 0) return;
      const data: VmWorkerData = { index, part, translate: options.translate, mmu: options.mmu, placement: options.placement, gang: options.gang, vms };
      const worker = startVmWorker(options.worker, data);
      let ready: (line: string | undefined) => void = () => undefined;
      readies.push(new Promise((resolve) => { ready = resolve; }));
      const thread: Thread = {
        index, worker, part, cycles: 0, instructions: 0, finished: false,
        ended: new Promise((resolve) => {
          worker.on('message', (message: FromVmWorker) => {
            if (message.kind === 'ready') {
              monitor.update(index, message.vms);
              for (const v of message.vms) {
                const vm = monitor.vms.find((x) => x.thread === index && x.name === v.name)!;
                vm.vcpus = v.vcpus;
                vm.memoryBytes = v.memoryBytes;
              }
              ready(undefined);
            } else if (message.kind === 'error') ready(message.line);
            else if (message.kind === 'log') options.log(message.line);
            else if (message.kind === 'answer') monitor.answered(message.id, message.result, message.error);
            else if (message.kind === 'batch') {
              for (const [name, bytes] of message.output) options.onOutput(name, bytes);
              thread.cycles = message.cycles;
              thread.instructions = message.instructions;
              monitor.update(index, message.vms);
            }
          });
          worker.on('error', (error) => {
            // A bug in the worker: its VMs end as crashed, the others go on.
            options.log(`thread ${index} failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}`);
            ready(`thread ${index} failed: ${error instanceof Error ? error.message : String(error)}`);
            monitor.update(index, monitor.vms.filter((v) => v.thread === index && v.state === 'running')
              .map((v) => ({ ...v, state: 'crashed', reason: `monitor error: thread ${index} failed`, failed: true })));
          });
          worker.on('exit', () => {
            thread.finished = true;
            for (const [id, pending] of monitor.pending) {
              if (pending.thread !== index) continue;
              monitor.pending.delete(id);
              pending.reject(new ThreadAnswerError('GenericError', `thread ${index} has ended`));
            }
            ready('a worker thread ended before its VMs were made');
            resolve();
          });
        }),
      };
      monitor.threads.push(thread);
    });
    const problems = (await Promise.all(readies)).filter((line): line is string => line !== undefined);
    if (problems.length > 0) {
      await Promise.all(monitor.threads.map((t) => t.worker.terminate()));
      throw new ThreadedMonitorError(problems[0]);
    }
    return monitor;
  }

  private update(thread: number, states: readonly VmWorkerState[]): void {
    for (const s of states) {
      const vm = this.vms.find((v) => v.thread === thread && v.name === s.name);
      if (vm === undefined) continue;
      Object.assign(vm, { state: s.state, reason: s.reason, bytesInUse: s.bytesInUse, failed: s.failed, pages: s.pages, homeNode: this.threads.find((t) => t.index === thread)?.part.nodes[s.homeNode] ?? s.homeNode });
      if (vm.state !== 'running' && !this.reported.has(vm.name)) {
        this.reported.add(vm.name);
        this.options.onEnded(vm);
      }
    }
  }

  /** Runs every worker's VMs until each worker's have ended (or `quit`). */
  async run(): Promise<void> {
    for (const t of this.threads) this.post(t, { kind: 'run' });
    await Promise.all(this.threads.map((t) => t.ended));
  }

  vm(name: string): ThreadedVm | undefined {
    return this.vms.find((v) => v.name === name);
  }

  get running(): boolean {
    return this.vms.some((v) => v.state === 'running');
  }

  /** Each worker: its part of the machine (the machine's CPU and node numbers), its VMs, and its monitor's cycles and instructions as last reported. */
  get threadsNow(): { thread: number; cpus: number[]; nodes: number[]; memoryBytes: number; vms: string[]; cycles: number; instructions: number }[] {
    return this.threads.map((t) => ({
      thread: t.index, cpus: t.part.cpus, nodes: t.part.nodes, memoryBytes: t.part.memoryBytes,
      vms: this.vms.filter((v) => v.thread === t.index).map((v) => v.name), cycles: t.cycles, instructions: t.instructions,
    }));
  }

  input(name: string, bytes: Uint8Array): void {
    const vm = this.vm(name);
    if (vm !== undefined) this.post(this.threadOf(vm), { kind: 'input', name, bytes });
  }

  stop(name: string, reason: string): void {
    const vm = this.vm(name);
    if (vm !== undefined) this.post(this.threadOf(vm), { kind: 'stop', name, reason });
  }

  /**
   * Control command `command` (one of ASKED) about VM `name`, answered by its thread's monitor. Rejects with a
   * ThreadAnswerError when that monitor refuses it, or when the thread has ended (every VM there has).
   */
  askVm(name: string, command: string, args: Record<string, unknown>): Promise<unknown> {
    const vm = this.vm(name);
    if (vm === undefined) return Promise.reject(new ThreadAnswerError('GenericError', `no VM named '${name}'`));
    const thread = this.threadOf(vm);
    if (thread.finished) return Promise.reject(new ThreadAnswerError('GenericError', `vm ${name} has ended, and thread ${thread.index} with every VM it ran`));
    return this.ask(thread, command, args);
  }

  /** Control command `command` (one of ASKED) answered by every thread still running, in the threads' order. */
  askAll(command: string): Promise<{ thread: ThreadPart; answer: unknown }[]> {
    const running = this.threads.filter((t) => !t.finished);
    return Promise.all(running.map(async (t) => ({ thread: t.part, answer: await this.ask(t, command, {}) })));
  }

  private ask(thread: Thread, command: string, args: Record<string, unknown>): Promise<unknown> {
    const id = this.nextQuestion++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { thread: thread.index, resolve, reject });
      this.post(thread, { kind: 'ask', id, command, args });
    });
  }

  private answered(id: number, result: unknown, error: { errorClass: string; message: string } | undefined): void {
    const pending = this.pending.get(id);
    if (pending === undefined) return;
    this.pending.delete(id);
    if (error === undefined) pending.resolve(result);
    else pending.reject(new ThreadAnswerError(error.errorClass, error.message));
  }

  /** Ends every worker at once, its VMs with it, reporting nothing (a start that failed after the workers were ready). */
  async terminate(): Promise<void> {
    await Promise.all(this.threads.map((t) => t.worker.terminate()));
  }

  /** Every worker stops its VMs still running, with `reason`, and ends. */
  quit(reason: string): void {
    for (const t of this.threads) this.post(t, { kind: 'quit', reason });
  }

  private threadOf(vm: ThreadedVm): Thread {
    return this.threads.find((t) => t.index === vm.thread)!;
  }

  private post(thread: Thread, message: ToVmWorker): void {
    thread.worker.postMessage(message);
  }
}

function startVmWorker(module: URL, data: VmWorkerData): Worker {
  if (!module.href.endsWith('.ts')) return new Worker(module, { workerData: data });
  const bootstrap = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(module.href)}); });`;
  return new Worker(bootstrap, { eval: true, workerData: data });
}
