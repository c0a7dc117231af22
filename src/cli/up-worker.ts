// A worker thread of `up` with `threads: N` (host/threaded-monitor.ts, docs/threads.md "The monitor on threads"):
// a monitor of its own on its part of the machine, running the VMs placed there. It opens their drives and
// reads their boot files itself; their consoles, their ends and their memory in use go to the main thread
// after each batch of rounds, and what the main thread asks (input, stop, quit, control commands about its
// VMs and its part) comes back as messages.

import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { MachineConfigError } from '../board/address-map.js';
import { BootError } from '../board/boot.js';
import { SeededEntropy, VirtioRng } from '../devices/virtio/rng.js';
import { monitorCommands } from '../control/monitor-commands.js';
import { QmpError, type QmpCommands } from '../control/qmp.js';
import { summarizeVm } from '../monitor/accounting.js';
import { Monitor, MonitorError } from '../monitor/monitor.js';
import { DriveError, attachDrives, type OpenDrive } from '../host/drives.js';
import { runMonitor } from '../host/monitor-runner.js';
import { ASKED, type FromVmWorker, type ToVmWorker, type VmWorkerData, type VmWorkerState } from '../host/threaded-monitor.js';

const data = workerData as VmWorkerData;
const port = parentPort!;
const send = (message: FromVmWorker): void => port.postMessage(message);
const disks: OpenDrive[] = [];
const output = new Map<string, Uint8Array[]>();
let monitor: Monitor | undefined;
/** The control commands of this thread's monitor, made at the first question. */
let commands: QmpCommands | undefined;
let quitting: string | undefined;

/** A boot file that cannot be read. */
class ReadError extends Error {}

/** One line for the user (a file that cannot be read, a disk in use, a kernel that is not one), or undefined for a bug. */
function userError(error: unknown, vm: string, elf: string | undefined): string | undefined {
  if (error instanceof MachineConfigError) return `vm ${vm}: ${error.problems.join('; ')}`;
  if (error instanceof MonitorError || error instanceof DriveError || error instanceof ReadError) return `vm ${vm}: ${error.message}`;
  if (error instanceof BootError) return `vm ${vm}: ${elf === undefined ? '' : `ELF program '${elf}': `}${error.message}`;
  return undefined;
}

/** Boot files by path, each read once for every VM of this thread that names it. */
const bootFiles = new Map<string, Uint8Array>();

function read(path: string, what: string): Uint8Array {
  let bytes = bootFiles.get(path);
  if (bytes !== undefined) return bytes;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    throw new ReadError(`cannot read ${what} '${path}': ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  bootFiles.set(path, bytes);
  return bytes;
}

function build(): Monitor {
  const made = new Monitor({
    config: data.part.config, translate: data.translate, mmu: data.mmu, placement: data.placement, gang: data.gang, diskCache: false,
    log: (message) => send({ kind: 'log', line: message }),
  });
  for (const v of data.vms) {
    const chunks: Uint8Array[] = [];
    output.set(v.name, chunks);
    try {
      const vm = made.createVm({
        name: v.name, vcpus: v.smp, memoryBytes: v.memoryBytes, sharing: v.share, balloon: v.balloon,
        console: (bytes) => chunks.push(bytes.slice()),
        log: (message) => send({ kind: 'log', line: `vm ${v.name}: ${message}` }),
      });
      disks.push(...attachDrives(vm.machine, v.drives, `vm ${v.name}`));
      if (v.rng !== undefined) vm.machine.attachVirtio(new VirtioRng(new SeededEntropy(v.rng)));
      if (v.elf !== undefined) vm.bootElf(read(v.elf, 'ELF program'));
      else vm.boot(read(v.kernel!, 'kernel'), v.initrd === undefined ? undefined : read(v.initrd, 'initrd'), v.append);
    } catch (error) {
      const line = userError(error, v.name, v.elf);
      if (line === undefined) throw error;
      throw new WorkerUsageError(line);
    }
  }
  bootFiles.clear();
  return made;
}

class WorkerUsageError extends Error {}

function states(m: Monitor): VmWorkerState[] {
  return m.vms.map((vm) => {
    const exit = vm.exit;
    return {
      name: vm.name, state: vm.state, reason: vm.reason, bytesInUse: vm.pmap.pagesInUse * 4096, homeNode: vm.pmap.homeNode,
      failed: vm.state === 'crashed' || (vm.state === 'off' && exit?.kind === 'poweroff' && exit.code !== 0),
      pages: (({ pagesInUse, pagesPrivate, pagesShared, pagesSharedBy, pagesReserved }) => ({ pagesInUse, pagesPrivate, pagesShared, pagesSharedBy, pagesReserved }))(summarizeVm(vm)),
    };
  });
}

/** How often the VMs' memory in use and the monitor's progress go to the main thread when nothing else does. */
const PROGRESS_MS = 100;
let lastReport = 0;
let lastStates = '';

/**
 * Every VM's output since the last batch, with the VMs' states, to the main thread: at once when a VM printed
 * or ended (or `now`), else at most every PROGRESS_MS (an idle monitor ends a batch every few milliseconds).
 */
function report(m: Monitor, now = false): void {
  const printed = [...output.values()].some((chunks) => chunks.length > 0);
  const ended = m.vms.map((vm) => vm.state).join();
  const time = performance.now();
  if (!now && !printed && ended === lastStates && time - lastReport < PROGRESS_MS) return;
  lastReport = time;
  lastStates = ended;
  const out: [string, Uint8Array][] = [];
  for (const [name, chunks] of output) {
    if (chunks.length === 0) continue;
    const length = chunks.reduce((n, c) => n + c.length, 0);
    const bytes = new Uint8Array(length);
    let at = 0;
    for (const c of chunks.splice(0)) {
      bytes.set(c, at);
      at += c.length;
    }
    out.push([name, bytes]);
  }
  send({ kind: 'batch', output: out, vms: states(m), cycles: m.cycles, instructions: m.instructions });
}

port.on('message', (message: ToVmWorker) => {
  if (message.kind === 'run') {
    void run();
    return;
  }
  const m = monitor;
  if (m === undefined) return;
  if (message.kind === 'input') {
    const vm = m.vm(message.name);
    if (vm?.state === 'running') vm.machine.uart.input(message.bytes);
  } else if (message.kind === 'stop') {
    const vm = m.vm(message.name);
    if (vm?.state === 'running') m.stopVm(vm, message.reason);
    report(m, true);
  } else if (message.kind === 'quit') {
    quitting = message.reason;
  } else if (message.kind === 'ask') {
    commands ??= monitorCommands({
      monitor: m, consolePath: () => undefined, runDir: '.', statsConfig: () => ({}),
      stopVm: (vm) => { m.stopVm(vm, 'vm-stop from the control socket'); report(m, true); },
      quit: () => { quitting ??= 'the monitor quit'; },
    });
    try {
      if (!(ASKED as readonly string[]).includes(message.command)) throw new QmpError('GenericError', `${message.command} is not asked of a thread`);
      send({ kind: 'answer', id: message.id, result: commands[message.command]!.run(message.args) });
    } catch (error) {
      if (!(error instanceof QmpError)) throw error;
      send({ kind: 'answer', id: message.id, error: { errorClass: error.errorClass, message: error.message } });
    }
  }
});

async function run(): Promise<void> {
  const m = monitor!;
  await runMonitor(m, { pace: true, onBatch: () => report(m), done: () => quitting !== undefined });
  for (const vm of m.vms) if (vm.state === 'running') m.stopVm(vm, quitting ?? 'the monitor quit');
  report(m, true);
  for (const disk of disks.splice(0)) disk.close();
  send({ kind: 'done' });
  port.close();
}

try {
  monitor = build();
  send({ kind: 'ready', vms: states(monitor).map((s, i) => ({ ...s, vcpus: monitor!.vms[i]!.vcpus.length, memoryBytes: monitor!.vms[i]!.pmap.size })) });
} catch (error) {
  for (const disk of disks.splice(0)) disk.close();
  if (!(error instanceof WorkerUsageError)) throw error;
  send({ kind: 'error', line: error.message });
  port.close();
}
