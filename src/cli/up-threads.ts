// `mirrorball up` with `threads: N` (N > 1): the VMs on N worker threads, each running a part of the machine
// (host/threaded-monitor.ts, docs/threads.md "The monitor on threads"). The main thread keeps what `up`
// keeps on one thread: the run directory, the control socket, the consoles' sockets and logs. The control
// socket answers what the main thread knows (query-vms, vm-stop, quit, the consoles); the rest is refused
// in one line until it is forwarded. Not reproducible.

import { join } from 'node:path';
import { ConsoleHub } from '../control/console-commands.js';
import { QmpError, stringArgument, type QmpArguments, type QmpCommands } from '../control/qmp.js';
import { ControlServer, ControlSocketError } from '../control/server.js';
import { ConsoleSocket, SocketPathError } from '../host/console-socket.js';
import { openPrivateFile } from '../host/private-files.js';
import { ThreadAnswerError, ThreadedMonitor, ThreadedMonitorError, type ThreadedVm, type ThreadedVmSpec } from '../host/threaded-monitor.js';
import { mergeMemory, mergeMonitor, type MonitorAnswer } from './up-threads-merge.js';
import type { MemoryReport } from '../control/monitor-commands.js';
import type { QmpErrorClass } from '../control/qmp.js';
import { PartitionError } from '../monitor/thread-partitions.js';
import { findBuiltGuest } from '../guest/artifacts.js';
import type { MachineFileSpec } from './machine-file.js';
import { UsageError, translationWanted } from './options.js';
import { VmConsole } from './up-console.js';
import { makeRunDir, shown } from './up-detach.js';
import { endLine } from './vm-commands.js';

const GREETING = { name: 'mirrorball', version: '0.1.0' };

/** The control commands of `up` on one thread that a threaded `up` does not answer yet: each refused in one line. */
const NOT_YET = ['inject-fault', 'query-cpus', 'query-failure-report', 'repair-hardware', 'set-mode', 'set-policy', 'share-pages', 'snapshot-save', 'stats-dump', 'vm-start'];

export class ThreadedUp {
  private readonly consoles = new Map<string, VmConsole>();
  private readonly hub = new ConsoleHub({
    check: (name) => { this.known(name); },
    input: (name, bytes) => {
      if (this.known(name).state !== 'running') throw new QmpError('GenericError', `VM '${name}' is not running`);
      this.monitor!.input(name, bytes);
    },
  });
  private monitor: ThreadedMonitor | undefined;
  private server: ControlServer | undefined;
  private quitting: 'host-quit' | 'host-signal' | undefined;

  constructor(
    private readonly file: string,
    private readonly spec: MachineFileSpec,
    private readonly runDir: string,
    private readonly controlPath: string,
    private readonly consolePath: (name: string) => string,
    private readonly append: string,
  ) {}

  private known(name: string): ThreadedVm {
    const vm = this.monitor?.vm(name);
    if (vm === undefined) throw new QmpError('GenericError', `no VM named '${name}' (the VMs are: ${this.spec.vms.map((v) => v.name).join(', ')})`);
    return vm;
  }

  private event(name: string, data?: object): void {
    this.server?.event(name, data);
  }

  async run(): Promise<number> {
    try {
      await this.start();
      await this.openHostSide();
    } catch (error) {
      // Nothing started: the VMs made on the workers go with them, as a failed start on one thread drops its monitor.
      await this.monitor?.terminate();
      await this.teardown();
      throw error;
    }
    const monitor = this.monitor!;
    const interrupted = (): void => {
      if (this.quitting === 'host-signal') process.exit(130);
      this.quitting = 'host-signal';
      monitor.quit('the monitor was interrupted');
    };
    process.on('SIGINT', interrupted);
    process.on('SIGTERM', interrupted);
    try {
      await monitor.run();
      this.event('SHUTDOWN', { reason: this.quitting ?? 'vms-ended' });
    } finally {
      process.off('SIGINT', interrupted);
      process.off('SIGTERM', interrupted);
      await this.teardown();
    }
    return monitor.vms.some((vm) => vm.failed) ? 1 : 0;
  }

  /** The workers, each with its VMs made and booted; a user's mistake is one line. */
  private async start(): Promise<void> {
    const { machine, vms } = this.spec;
    let guest: ReturnType<typeof findBuiltGuest> | undefined;
    const specs: ThreadedVmSpec[] = vms.map((v) => {
      let kernel = v.kernel;
      let initrd = v.initrd;
      if (kernel === undefined && v.elf === undefined) {
        guest ??= findBuiltGuest();
        if (guest === undefined) throw new UsageError(`vm ${v.name}: no kernel given and no guest built yet: run \`mirrorball guest build\` or give it a kernel`);
        kernel = guest.kernel;
        initrd ??= guest.initramfs;
      }
      return {
        name: v.name, smp: v.smp, memoryBytes: v.memoryBytes, kernel, initrd, elf: v.elf, drives: v.drives, rng: v.rng, share: v.share, balloon: v.balloon,
        append: v.append === undefined ? this.append : `${this.append} ${v.append}`,
      };
    });
    for (const v of vms) this.consoles.set(v.name, new VmConsole(v.name, this.hub));
    try {
      this.monitor = await ThreadedMonitor.start({
        worker: new URL(import.meta.url.endsWith('.ts') ? './up-worker.ts' : './up-worker.js', import.meta.url),
        config: machine.config, threads: machine.threads, translate: translationWanted(),
        mmu: this.spec.monitor.mmu, placement: this.spec.monitor.placement, gang: this.spec.monitor.gang, vms: specs,
        onOutput: (name, bytes) => {
          const output = this.consoles.get(name)!;
          output.push(bytes);
          output.flush();
        },
        onEnded: (vm) => this.ended(vm),
        log: (line) => process.stderr.write(`mirrorball: ${line}\n`),
      });
    } catch (error) {
      if (error instanceof ThreadedMonitorError || error instanceof PartitionError) throw new UsageError(error.message);
      throw error;
    }
  }

  /** A VM that ended: its line, the VM_STOPPED event, its console closed. */
  private ended(vm: ThreadedVm): void {
    process.stdout.write(`${endLine(vm)}\n`);
    this.event('VM_STOPPED', { vm: vm.name, state: vm.state, reason: vm.reason });
    void this.consoles.get(vm.name)?.close();
  }

  private commands(): QmpCommands {
    const monitor = this.monitor!;
    const commands: QmpCommands = {
      'query-vms': {
        help: 'the VMs as on one thread (their pages as of their thread\'s last report), with the thread each runs on',
        run: () => monitor.vms.map((vm) => ({
          id: vm.id, name: vm.name, state: vm.state, reason: vm.reason, vcpus: vm.vcpus, memoryBytes: vm.memoryBytes,
          homeNode: vm.homeNode, cells: [0], ...vm.pages, bytesInUse: vm.bytesInUse, thread: vm.thread,
          console: vm.state === 'running' ? this.consoles.get(vm.name)?.socket?.path ?? null : null,
        })),
      },
      'vm-stop': {
        help: 'stop a VM at once: {"vm": NAME}',
        args: ['vm'],
        run: (args) => {
          const name = stringArgument(args, 'vm');
          if (name === undefined) throw new QmpError('GenericError', "Parameter 'vm' is missing");
          const vm = this.known(name);
          if (vm.state !== 'running') throw new QmpError('GenericError', `VM '${vm.name}' is not running (${vm.state})`);
          const reason = 'vm-stop from the control socket';
          monitor.stop(vm.name, reason);
          // Its worker stops it at its next look at its messages; VM_STOPPED follows then.
          return { vm: vm.name, state: 'stopped', reason };
        },
      },
      // Asked of the VM's thread, whose monitor answers as `up` on one thread does.
      ...Object.fromEntries((['query-vm-stats', 'query-balloon', 'balloon'] as const).map((name) => [name, {
        help: `as on one thread, answered by the monitor of the VM's thread (docs/up.md)`,
        args: name === 'balloon' ? ['vm', 'pages'] : ['vm'],
        run: (args: QmpArguments) => {
          const vm = stringArgument(args, 'vm');
          if (vm === undefined) throw new QmpError('GenericError', "Parameter 'vm' is missing");
          this.known(vm);
          return answered(monitor.askVm(vm, name, args));
        },
      }])),
      'query-memory': {
        help: 'the machine\'s memory accounted, as on one thread: every thread\'s monitor\'s account added up (docs/threads.md)',
        run: () => answered(monitor.askAll('query-memory').then((answers) => mergeMemory(answers.map((a) => a.answer as MemoryReport), this.spec.vms.map((v) => v.name)))),
      },
      'query-monitor': {
        help: 'the machine under the monitors, as on one thread: the threads\' parts added up, cycles the least any thread reached (docs/threads.md)',
        run: () => answered(monitor.askAll('query-monitor').then((answers) => mergeMonitor(answers.map((a) => ({ part: a.thread, answer: a.answer as MonitorAnswer })), this.spec.machine.config))),
      },
      'query-threads': {
        help: 'the worker threads: each one\'s CPUs and nodes of the machine, memory, VMs, and its monitor\'s cycles and instructions so far',
        run: () => monitor.threadsNow,
      },
      quit: {
        help: 'stop every VM and end the monitor',
        run: () => {
          this.quitting ??= 'host-quit';
          monitor.quit('the monitor quit');
          return {};
        },
      },
    };
    for (const name of NOT_YET) {
      commands[name] = {
        help: `not with threads yet (docs/threads.md)`,
        run: () => { throw new QmpError('GenericError', `${name} is not available with threads: ${this.spec.machine.threads} yet (docs/threads.md)`); },
      };
    }
    return { ...commands, ...this.hub.commands() };
  }

  private async openHostSide(): Promise<void> {
    makeRunDir(this.runDir);
    try {
      this.server = await ControlServer.listen(this.controlPath, this.commands(), GREETING);
    } catch (error) {
      if (error instanceof ControlSocketError) throw new UsageError(error.message);
      throw error;
    }
    const { machine } = this.spec;
    const nodes = machine.config.nodes.length;
    process.stdout.write(`mirrorball: up: ${machine.config.harts} CPUs, ${nodes} node${nodes === 1 ? '' : 's'} (${machine.name}), ` +
      `${machine.memoryBytes / 2 ** 20} MiB, ${machine.threads} threads (not reproducible); control socket ${shown(this.controlPath)}\n`);
    const monitor = this.monitor!;
    for (const v of this.spec.vms) {
      const output = this.consoles.get(v.name)!;
      const vm = monitor.vm(v.name)!;
      const logPath = v.consoleLog ?? join(this.runDir, `${v.name}.console.log`);
      try {
        output.logFd = openPrivateFile(logPath, 'w', v.consoleLog === undefined);
      } catch (error) {
        throw new UsageError(`vm ${v.name}: cannot write its console log '${logPath}': ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
      }
      try {
        output.socket = await ConsoleSocket.listen(this.consolePath(v.name), { onInput: (bytes) => { if (vm.state === 'running') monitor.input(v.name, bytes); } });
      } catch (error) {
        if (error instanceof SocketPathError) throw new UsageError(error.message);
        throw error;
      }
      process.stdout.write(`vm ${v.name}: booting, ${vm.vcpus} vCPU${vm.vcpus === 1 ? '' : 's'}, ${vm.memoryBytes / 2 ** 20} MiB on node ${vm.homeNode}, thread ${vm.thread}; ` +
        `console log ${shown(logPath)}\n`);
    }
    // The workers begin once every console can take their output.
  }

  private async teardown(): Promise<void> {
    for (const output of this.consoles.values()) await output.closeWithLog();
    await this.server?.close();
    this.server = undefined;
  }
}

/** A worker's answer as the control protocol's: its refusal as a QmpError of the same class and sentence. */
function answered(promise: Promise<unknown>): Promise<unknown> {
  return promise.catch((error: unknown) => {
    if (error instanceof ThreadAnswerError) throw new QmpError(error.errorClass as QmpErrorClass, error.message);
    throw error;
  });
}
