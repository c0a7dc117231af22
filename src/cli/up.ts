// `mirrorball up machine.yaml`: the monitor on the file's machine, running every VM it lists, with a control
// socket (QMP-shaped, docs/control.md) and one console socket per VM, in the foreground until the VMs end.

import { FileSwapStore } from '../host/swap-file.js';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { MachineConfigError } from '../board/address-map.js';
import { BootError } from '../board/boot.js';
import { monitorCommands } from '../control/monitor-commands.js';
import { ControlServer, ControlSocketError } from '../control/server.js';
import { SeededEntropy, VirtioRng } from '../devices/virtio/rng.js';
import { VirtioNet } from '../devices/virtio/net.js';
import { SnapshotError } from '../board/snapshot.js';
import { UserNet, UserNetError } from '../host/user-net.js';
import { findBuiltGuest } from '../guest/artifacts.js';
import { ConsoleSocket, SocketPathError, checkSocketPath, clearStaleSocket } from '../host/console-socket.js';
import { DriveError, attachDrives, type OpenDrive } from '../host/drives.js';
import { openPrivateFile } from '../host/private-files.js';
import { loadMonitorSnapshot, restoreVm, restoreWhole, saveMonitorSnapshot, type LoadedMonitorSnapshot, type VmBuild } from '../host/monitor-snapshot.js';
import { savedDrive } from '../host/machine-spec.js';
import { runMonitor } from '../host/monitor-runner.js';
import { SnapshotFileError } from '../host/snapshot-file.js';
import { Monitor, MonitorError, type MonitorOptions } from '../monitor/monitor.js';
import type { VirtualMachine } from '../monitor/vm.js';
import { MachineFileError, parseMachineFile, type MachineFileSpec, type UserNetSpec, type VmFileSpec } from './machine-file.js';
import { UsageError, translationWanted } from './options.js';
import { cellsDiffer, vmsDiffer } from './up-restore.js';
import { readInput } from './run.js';
import { CONTROL_SOCKET, defaultRunDir } from './vm-client.js';
import { VmConsole } from './up-console.js';
import { detach, makeRunDir, shown } from './up-detach.js';
import { WebControl, parseWebAddress, type WebAddress } from './web-control.js';
import { ConsoleHub } from '../control/console-commands.js';
import { QmpError } from '../control/qmp.js';
import { PageEvents } from '../control/page-events.js';
import { TokenFileError, loadToken } from '../host/web/token.js';
import { endLine } from './vm-commands.js';
import { parseUpThreads } from './machine-file-threads.js';
import { ThreadedUp } from './up-threads.js';

/** Every VM's kernel command line starts with this; the machine file's `append` follows. */
export const UP_APPEND = 'console=ttyS0';
const GREETING = { name: 'mirrorball', version: '0.1.0' };
/** The dashboard's token in the run directory (docs/dashboard.md). */
export const WEB_TOKEN = 'web.token';

interface UpFlags {
  control?: string;
  runDir?: string;
  detach?: boolean;
  restore?: string;
  web?: string;
  threads?: string;
}

export function registerUpCommand(program: Command): void {
  program
    .command('up')
    .argument('<machine-file>', 'YAML file of the machine and its VMs (docs/machine-file.md)')
    .summary('start the monitor and the VMs of a machine file (docs/up.md)')
    .description('Start the monitor on the machine of a machine file and boot every VM it lists; runs in the foreground until ' +
      'every VM has ended, `quit` arrives on the control socket, or Ctrl-C. Each VM\'s console goes to RUN-DIR/VM.console.log ' +
      'and to RUN-DIR/VM.console.sock (`mirrorball console VM`); `mirrorball ps`, `stats VM`, `stop VM` and `down` talk to the ' +
      'control socket (docs/up.md). Exit status 1 if a VM crashed or its guest powered off reporting a failure, else 0')
    .option('--run-dir <dir>', 'directory for the sockets and console logs (default: $MIRRORBALL_RUN_DIR, else ./mirrorball-run)')
    .option('--control <socket>', `control socket (QMP-shaped JSON, docs/control.md; default: RUN-DIR/${CONTROL_SOCKET})`)
    .option('--detach', 'run the monitor in the background (its output goes to RUN-DIR/up.log); return once it answers on its control socket')
    .option('--restore <file>', 'continue the whole machine saved in this snapshot (the control socket\'s snapshot-save without "vm") instead of ' +
      'booting: every VM, the monitor\'s memory, scheduler and cells, exactly where they were (docs/snapshots.md); the machine file must describe ' +
      'that machine (its settings, and its VMs in order with their vCPUs, memory, drives, rng), else one line and exit 2, nothing started')
    .option('--web <[addr:]port>', 'serve the dashboard (docs/dashboard.md) on this port, on 127.0.0.1 unless an address is given: the VMs, their consoles, ' +
      'where time goes, the NUMA map, faults; it prints the page\'s address with its token, kept in RUN-DIR/web.token (0600)')
    .option('--threads <n>', 'run the VMs on N worker threads, each a part of the machine (replaces machine.threads; default 1). Two or more are ' +
      'not reproducible, and refuse timing mode, cells, the NUMA policy, page sharing, paging, faults, networks and snapshots (docs/threads.md)')
    .action(async (file: string, flags: UpFlags) => {
      process.exitCode = await up(file, flags);
    });
}

function readMachineFile(file: string, threads: number | undefined): MachineFileSpec | string[] {
  const text = new TextDecoder().decode(readInput(file, 'machine file'));
  try {
    return parseMachineFile(text, file, { threads });
  } catch (error) {
    if (error instanceof MachineFileError) return error.problems;
    throw error;
  }
}

async function up(file: string, flags: UpFlags): Promise<number> {
  const threads = flags.threads === undefined ? undefined : parseUpThreads(flags.threads);
  const spec = readMachineFile(file, threads);
  if (Array.isArray(spec)) {
    // Each problem is already a whole line, `file:line:col: where: what`, as compilers print them.
    for (const line of spec) process.stderr.write(`${line}\n`);
    return 2;
  }
  const runDir = resolve(flags.runDir ?? defaultRunDir());
  const control = resolve(flags.control ?? join(runDir, CONTROL_SOCKET));
  const consolePath = (vm: VmFileSpec): string => join(runDir, `${vm.name}.console.sock`);
  try {
    checkSocketPath(control, 'control socket');
    for (const vm of spec.vms) checkSocketPath(consolePath(vm), `vm ${vm.name}'s console socket`);
  } catch (error) {
    if (error instanceof SocketPathError) throw new UsageError(error.message);
    throw error;
  }
  const restore = flags.restore === undefined ? undefined : resolve(flags.restore);
  const web = flags.web === undefined ? undefined : parseWebAddress(flags.web);
  if (flags.detach === true) return detach(resolve(file), runDir, control, restore, flags.web, threads);
  if (spec.machine.threads > 1) {
    if (restore !== undefined) throw new UsageError(`--restore: not with ${spec.machine.threads} threads yet: snapshots are one monitor's (docs/threads.md)`);
    if (web !== undefined) throw new UsageError(`--web: not with ${spec.machine.threads} threads yet: the dashboard reads one monitor (docs/threads.md)`);
    return new ThreadedUp(resolve(file), spec, runDir, control, (name) => join(runDir, `${name}.console.sock`), UP_APPEND).run();
  }
  return new Up(resolve(file), spec, runDir, control, consolePath, restore, web).run();
}

type ShutdownReason = 'host-quit' | 'host-signal';

/** One run of `up`: set up, run, tear down. */
class Up {
  private readonly consoles = new Map<VirtualMachine, VmConsole>();
  private readonly reported = new Set<VirtualMachine>();
  private readonly disks: OpenDrive[] = [];
  /** Each VM's own drives, closed when it is started again (a writable disk is open in one VM at a time). */
  private readonly vmDisks = new Map<VirtualMachine, OpenDrive[]>();
  /** Every console's output for the control protocol's clients (console-subscribe). */
  private readonly hub = new ConsoleHub({
    check: (name) => {
      if (this.monitor.vm(name) === undefined) throw new QmpError('GenericError', `no VM named '${name}' (the VMs are: ${this.monitor.vms.map((v) => v.name).join(', ')})`);
    },
    input: (name, bytes) => {
      const vm = this.monitor.vm(name);
      if (vm?.state !== 'running') throw new QmpError('GenericError', `VM '${name}' is not running`);
      vm.machine.uart.input(bytes);
    },
  });
  private web: WebControl | undefined;
  /** The NUMA policy's moves as events (control/page-events.ts). */
  private pageEvents: PageEvents | undefined;
  /** Kernels, initrds and ELF programs read while the VMs are made, by path (each file read once for all the VMs that name it). */
  private readonly bootFiles = new Map<string, Uint8Array>();
  private readonly userNets = new Map<VirtualMachine, UserNet>();
  /** How each VM was built beyond the monitor (drives, rng), for snapshots of it. */
  private readonly builds = new Map<VirtualMachine, VmBuild>();
  private monitor!: Monitor;
  private server: ControlServer | undefined;
  private quitting: ShutdownReason | undefined;
  /** The swap file of `monitor.swap`, once made. */
  private swapStore: FileSwapStore | undefined;

  constructor(
    private readonly file: string,
    private readonly spec: MachineFileSpec,
    private readonly runDir: string,
    private readonly controlPath: string,
    private readonly consolePath: (vm: VmFileSpec) => string,
    /** A whole machine's snapshot to continue instead of booting (`--restore`). */
    private readonly restore?: string,
    /** Where the dashboard listens (`--web`). */
    private readonly webAddress?: WebAddress,
  ) {}

  /** An event to every client of the control socket and of the dashboard. */
  private event(name: string, data?: object): void {
    this.server?.event(name, data);
    this.web?.event(name, data);
  }

  async run(): Promise<number> {
    try {
      if (this.restore === undefined) this.createVms();
      else this.restoreMachine(this.restore);
      await this.openHostSide();
      this.pageEvents = new PageEvents({
        tally: () => this.monitor.policy?.tally,
        vmName: (id) => this.monitor.vms.find((v) => v.id === id)?.name ?? String(id),
        emit: (name, data) => this.event(name, data),
        now: () => performance.now(),
      });
    } catch (error) {
      await this.teardown();
      throw error;
    }
    const interrupted = (): void => {
      if (this.quitting === 'host-signal') process.exit(130); // a second Ctrl-C: the user means it
      this.quitting = 'host-signal';
    };
    process.on('SIGINT', interrupted);
    process.on('SIGTERM', interrupted);
    try {
      await runMonitor(this.monitor, {
        pace: true,
        onBatch: () => this.afterBatch(),
        done: () => this.quitting !== undefined,
      });
      const why = this.quitting === 'host-signal' ? 'the monitor was interrupted' : 'the monitor quit';
      for (const vm of this.monitor.vms) if (vm.state === 'running') this.monitor.stopVm(vm, why);
      this.afterBatch();
      this.event('SHUTDOWN', { reason: this.quitting ?? 'vms-ended' });
    } finally {
      process.off('SIGINT', interrupted);
      process.off('SIGTERM', interrupted);
      await this.teardown();
    }
    // A script running `up` learns that something went wrong: a VM crashed or its guest reported a failure.
    return this.monitor.machineFailure !== undefined || this.monitor.vms.some((vm) => failed(vm)) ? 1 : 0;
  }

  /** What the machine file makes the monitor with. */
  private monitorOptions(): MonitorOptions {
    const { machine } = this.spec;
    return {
      config: machine.config,
      translate: translationWanted(),
      log: (message) => process.stderr.write(`mirrorball: ${message}\n`),
      timing: machine.timing ? { latencies: machine.latencies } : undefined,
      mmu: this.spec.monitor.mmu,
      placement: this.spec.monitor.placement,
      policy: this.spec.monitor.policy,
      policySignal: this.spec.monitor.policySignal,
      diskCache: this.spec.monitor.diskCache,
      shareBootImages: this.spec.monitor.shareBootImages,
      scan: this.spec.monitor.scan,
      gang: this.spec.monitor.gang,
      idleBalance: this.spec.monitor.idleBalance,
      balancePeriodRounds: this.spec.monitor.balancePeriodRounds,
      borrow: this.spec.monitor.borrow,
      cells: machine.cells,
      swap: this.swapStore === undefined ? undefined : { store: this.swapStore },
    };
  }

  /** The machine file's swap file, made once (0600, truncated); a file that cannot be made is one line. */
  private openSwap(): void {
    const swap = this.spec.monitor.swap;
    if (swap === undefined || this.swapStore !== undefined) return;
    try {
      this.swapStore = new FileSwapStore(swap.file, swap.bytes);
    } catch (error) {
      throw new UsageError(`${this.file}: monitor.swap: cannot make ${shown(swap.file)}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  /**
   * The whole machine of snapshot `file` (`--restore`), made again exactly and not yet run, with every VM's
   * console; a snapshot that is bad or of another machine than the file's is one line, nothing made.
   */
  private restoreMachine(file: string): void {
    if (this.spec.faults.length > 0) throw new UsageError(`${this.file}: faults: a machine restored with --restore takes no fault script (snapshots do not hold faults yet)`);
    const outputs = new Map<string, VmConsole>();
    let loaded: LoadedMonitorSnapshot;
    try {
      loaded = loadMonitorSnapshot(file);
      if (loaded.saved.whole === null) throw new SnapshotFileError(`${loaded.what} holds one VM, not a whole machine (a VM entry's restore: makes it again)`);
      const differ = vmsDiffer(this.spec, loaded);
      if (differ !== undefined) throw new SnapshotFileError(`snapshot '${shown(file)}' is not the machine of ${shown(this.file)}: ${differ}`);
      this.openSwap();
      const options = this.monitorOptions();
      const { monitor, disks } = restoreWhole(loaded, { translate: options.translate, log: options.log, made: options }, (name) => {
        const output = new VmConsole(name, this.hub);
        outputs.set(name, output);
        return { console: (bytes) => output.push(bytes), log: (message) => process.stderr.write(`mirrorball: vm ${name}: ${message}\n`) };
      });
      const cells = cellsDiffer(this.spec.vms, monitor.vms);
      if (cells !== undefined) {
        for (const d of disks) d.close();
        throw new SnapshotFileError(`snapshot '${shown(file)}' is not the machine of ${shown(this.file)}: ${cells}`);
      }
      this.monitor = monitor;
      this.disks.push(...disks);
    } catch (error) {
      if (error instanceof SnapshotFileError) throw new UsageError(error.message);
      throw error;
    }
    for (const vm of this.monitor.vms) {
      this.consoles.set(vm, outputs.get(vm.name)!);
      const build = loaded.builds.get(vm.name)!;
      this.builds.set(vm, { drives: build.drives.map((d) => savedDrive(d, false)), rngSeed: build.rngSeed });
    }
  }

  /** The monitor and its VMs, booted but not yet run. Every mistake here is the user's: one line. */
  private createVms(): void {
    const { machine, vms } = this.spec;
    try {
      this.openSwap();
      this.monitor = new Monitor(this.monitorOptions());
      if (machine.timing) this.monitor.setExecutionMode('timing');
      // The machine file's campaign script: faults at their simulated times (docs/faults.md).
      for (const s of this.spec.faults) this.monitor.hardware.injector.schedule(s.time, s.fault);
    } catch (error) {
      if (error instanceof MachineConfigError) throw new UsageError(`${this.file}: ${error.problems.join('; ')}`);
      if (error instanceof MonitorError) throw new UsageError(`${this.file}: ${error.message}`);
      throw error;
    }
    const snapshots = new Map<string, LoadedMonitorSnapshot>();
    for (const v of vms) this.bootVm(v, snapshots);
    // Not kept for the whole run: `vm-start` reads its VM's files again.
    this.bootFiles.clear();
  }

  /** Reads a boot file once for every VM that names it. */
  private read(path: string, what: string): Uint8Array {
    let bytes = this.bootFiles.get(path);
    if (bytes === undefined) this.bootFiles.set(path, bytes = readInput(path, what));
    return bytes;
  }

  /** VM `v` of the machine file made and booted (or restored from its `restore:` snapshot); every mistake is one line. */
  private bootVm(v: VmFileSpec, snapshots: Map<string, LoadedMonitorSnapshot>): VirtualMachine {
    if (v.restore !== undefined) return this.restoreVm(v, v.restore, snapshots);
    let kernel = v.kernel;
    let initrd = v.initrd;
    if (kernel === undefined && v.elf === undefined) {
      const guest = findBuiltGuest();
      if (guest === undefined) throw new UsageError(`vm ${v.name}: no kernel given and no guest built yet: run \`mirrorball guest build\` or give it a kernel`);
      kernel = guest.kernel;
      initrd ??= guest.initramfs;
    }
    const output = new VmConsole(v.name, this.hub);
    let vm: VirtualMachine;
    try {
      vm = this.monitor.createVm({
        name: v.name, vcpus: v.smp, memoryBytes: v.memoryBytes, net: v.net, sharing: v.share, balloon: v.balloon, cell: v.cell,
        console: (bytes) => output.push(bytes),
        log: (message) => process.stderr.write(`mirrorball: vm ${v.name}: ${message}\n`),
      });
    } catch (error) {
      if (error instanceof MonitorError) throw new UsageError(error.message);
      throw error;
    }
    this.consoles.set(vm, output);
    this.builds.set(vm, { drives: v.drives, rngSeed: v.rng ?? null });
    try {
      const disks = attachDrives(vm.machine, v.drives, `vm ${v.name}`, (baseId, metrics) => this.monitor.diskHook(vm, baseId, metrics));
      this.disks.push(...disks);
      this.vmDisks.set(vm, disks);
    } catch (error) {
      if (error instanceof DriveError) throw new UsageError(`vm ${v.name}: ${error.message}`);
      throw error;
    }
    if (v.rng !== undefined) vm.machine.attachVirtio(new VirtioRng(new SeededEntropy(v.rng)));
    try {
      // A bare S-mode program (docs/machine-file.md, `elf:`) instead of Linux: the thin OS of examples/thin-os.
      if (v.elf !== undefined) vm.bootElf(this.read(v.elf, 'ELF program'));
      else vm.boot(this.read(kernel!, 'kernel'), initrd === undefined ? undefined : this.read(initrd, 'initrd'), v.append === undefined ? UP_APPEND : `${UP_APPEND} ${v.append}`);
    } catch (error) {
      if (error instanceof BootError) throw new UsageError(`vm ${v.name}: ${v.elf !== undefined ? `ELF program '${shown(v.elf)}': ` : ''}${error.message}`);
      throw error;
    }
    return vm;
  }

  /**
   * `vm-start`: the machine file's VM `name`, which ended, booted again with its name, its console log
   * going on, a new console socket, its user network's card on the same network. Its old drives are closed
   * first, so that a writable disk can be opened again.
   */
  private startVm(name: string): VirtualMachine {
    const v = this.spec.vms.find((s) => s.name === name);
    if (v === undefined) throw new QmpError('GenericError', `no VM named '${name}' in ${shown(this.file)} (its VMs are: ${this.spec.vms.map((s) => s.name).join(', ')})`);
    const old = this.monitor.vm(name);
    const oldOutput = old === undefined ? undefined : this.consoles.get(old);
    if (old !== undefined) this.closeDisks(old);
    let vm: VirtualMachine;
    try {
      vm = this.bootVm(v, new Map());
    } catch (error) {
      // Made but not booted (a kernel gone, a disk that cannot be opened): it must not run.
      const made = this.monitor.vm(name);
      if (made !== undefined && made !== old && made.state === 'running') {
        this.closeDisks(made);
        this.monitor.stopVm(made, `vm-start failed: ${error instanceof Error ? error.message : String(error)}`);
        this.afterBatch();
      }
      if (error instanceof UsageError) throw new QmpError('GenericError', error.message);
      throw error;
    } finally {
      this.bootFiles.clear();
    }
    const output = this.consoles.get(vm)!;
    output.logFd = oldOutput?.logFd;
    if (oldOutput !== undefined) oldOutput.logFd = undefined;
    const user = old === undefined ? undefined : this.userNets.get(old);
    if (user !== undefined && v.userNet !== undefined) {
      this.userNets.delete(old!);
      this.userNets.set(vm, user);
      vm.machine.attachVirtio(new VirtioNet(user.network, { mac: v.userNet.mac }));
    }
    this.hub.reset(name);
    void this.openConsoleSocket(vm, v).catch((error: unknown) => process.stderr.write(`mirrorball: vm ${name}: no console socket: ${error instanceof Error ? error.message : String(error)}\n`));
    process.stdout.write(`vm ${name}: started again, ${vm.vcpus.length} vCPU${vm.vcpus.length === 1 ? '' : 's'}, ${vm.pmap.size / 2 ** 20} MiB on node ${vm.pmap.homeNode}\n`);
    this.event('VM_STARTED', { vm: name });
    return vm;
  }

  /** Closes the drives of `vm`, which has ended. */
  private closeDisks(vm: VirtualMachine): void {
    for (const disk of this.vmDisks.get(vm) ?? []) {
      disk.close();
      this.disks.splice(this.disks.indexOf(disk), 1);
    }
    this.vmDisks.delete(vm);
  }

  /** VM's console socket, listening. */
  private async openConsoleSocket(vm: VirtualMachine, v: VmFileSpec): Promise<void> {
    const output = this.consoles.get(vm)!;
    try {
      output.socket = await ConsoleSocket.listen(this.consolePath(v), {
        onInput: (bytes) => { if (vm.state === 'running') vm.machine.uart.input(bytes); },
        queued: () => (vm.state === 'running' ? vm.machine.uart.queuedInput : 0),
      });
    } catch (error) {
      if (error instanceof SocketPathError) throw new UsageError(error.message);
      throw error;
    }
  }

  /** VM `v` made again from snapshot `file` (read once for all the VMs that name it); a bad one is a usage error. */
  private restoreVm(v: VmFileSpec, file: string, snapshots: Map<string, LoadedMonitorSnapshot>): VirtualMachine {
    const output = new VmConsole(v.name, this.hub);
    try {
      let loaded = snapshots.get(file);
      if (loaded === undefined) snapshots.set(file, loaded = loadMonitorSnapshot(file));
      const { vm, disks } = restoreVm(this.monitor, loaded, v.name, v.name, {
        console: (bytes) => output.push(bytes),
        log: (message) => process.stderr.write(`mirrorball: vm ${v.name}: ${message}\n`),
      });
      this.disks.push(...disks);
      this.vmDisks.set(vm, disks);
      this.consoles.set(vm, output);
      const build = loaded.builds.get(v.name)!;
      this.builds.set(vm, { drives: build.drives.map((d) => savedDrive(d, false)), rngSeed: build.rngSeed });
      return vm;
    } catch (error) {
      if (error instanceof SnapshotFileError) throw new UsageError(`vm ${v.name}: ${error.message}`);
      throw error;
    }
  }

  /** The run directory, the control socket, and each VM's console socket and log. */
  private async openHostSide(): Promise<void> {
    makeRunDir(this.runDir);
    const commands = monitorCommands({
      monitor: this.monitor,
      consolePath: (vm) => (vm.state === 'running' ? this.consoles.get(vm)?.socket?.path : undefined),
      stopVm: (vm) => {
        this.monitor.stopVm(vm, 'vm-stop from the control socket');
        this.afterBatch();
      },
      startVm: (name) => this.startVm(name),
      quit: () => { this.quitting ??= 'host-quit'; },
      runDir: this.runDir,
      statsConfig: () => this.statsConfig(),
      saveSnapshot: (file, vm) => {
        const outside = [...this.userNets.keys()].filter((x) => vm === undefined || x === vm);
        if (outside.length > 0) throw new SnapshotError(`vm ${outside[0].name} is on a user network (net: user), which snapshots do not hold`);
        return saveMonitorSnapshot(file, this.monitor, (x) => this.builds.get(x) ?? { drives: [], rngSeed: null }, vm);
      },
    });
    Object.assign(commands, this.hub.commands());
    // A second `up` on this run directory is refused by its control socket before anything else is opened.
    try {
      await clearStaleSocket(this.controlPath, 'control socket');
    } catch (error) {
      if (error instanceof SocketPathError) throw new UsageError(error.message);
      throw error;
    }
    // Every VM's console log, console socket and user network first, so that whoever reaches the control
    // socket or the dashboard (an `up --detach` returns once the control socket answers) finds them ready.
    const vmLines: string[] = [];
    for (const [vm, output] of this.consoles) {
      const v = this.spec.vms.find((s) => s.name === vm.name)!;
      const logPath = v.consoleLog ?? join(this.runDir, `${vm.name}.console.log`);
      try {
        output.logFd = openPrivateFile(logPath, 'w', v.consoleLog === undefined);
      } catch (error) {
        throw new UsageError(`vm ${vm.name}: cannot write its console log '${logPath}': ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
      }
      await this.openConsoleSocket(vm, v);
      const restored = this.restore ?? v.restore;
      if (v.userNet !== undefined) {
        // A snapshot never holds a user network's card (snapshot-save refuses it), so a restored VM has none to continue.
        if (restored !== undefined) throw new UsageError(`vm ${vm.name}: net: user is not for a VM restored from a snapshot`);
        await this.attachUserNet(vm, v.userNet);
      }
      const vcpus = vm.vcpus.length;
      vmLines.push(`vm ${vm.name}: ${restored === undefined ? 'booting' : `restored from ${shown(restored)}`}, ${vcpus} vCPU${vcpus === 1 ? '' : 's'}, ` +
        `${vm.pmap.size / 2 ** 20} MiB on node ${vm.pmap.homeNode}${this.monitor.cells.count === 1 ? '' : `, cell${vm.cells.length === 1 ? '' : 's'} ${vm.cells.join(', ')}`}; ` +
        `console log ${shown(logPath)}\n`);
    }
    try {
      this.server = await ControlServer.listen(this.controlPath, commands, GREETING);
    } catch (error) {
      if (error instanceof ControlSocketError) throw new UsageError(error.message);
      throw error;
    }
    if (this.webAddress !== undefined) {
      let token: string;
      try {
        token = loadToken(join(this.runDir, WEB_TOKEN));
      } catch (error) {
        if (error instanceof TokenFileError) throw new UsageError(error.message);
        throw error;
      }
      this.web = await WebControl.start(this.webAddress, token, commands, GREETING);
    }
    const { machine } = this.spec;
    const nodes = machine.config.nodes.length;
    process.stdout.write(`mirrorball: up: ${machine.config.harts} CPUs, ${nodes} node${nodes === 1 ? '' : 's'} (${machine.name}), ` +
      `${machine.memoryBytes / 2 ** 20} MiB; control socket ${shown(this.controlPath)}\n`);
    if (this.web !== undefined) process.stdout.write(`mirrorball: dashboard ${this.web.url} (its token is in ${shown(join(this.runDir, WEB_TOKEN))})\n`);
    for (const line of vmLines) process.stdout.write(line);
  }

  /** A VM's card on a user network of its own (`net: user`), after its drives and rng; its forwards listening. */
  private async attachUserNet(vm: VirtualMachine, spec: UserNetSpec): Promise<void> {
    try {
      const user = await UserNet.start({ guestMac: spec.mac, forwards: spec.forwards, restrict: spec.restrict, log: (message) => process.stderr.write(`mirrorball: vm ${vm.name}: ${message}\n`) });
      this.userNets.set(vm, user);
    } catch (error) {
      if (error instanceof UserNetError) throw new UsageError(`vm ${vm.name}: ${error.message}`);
      throw error;
    }
    vm.machine.attachVirtio(new VirtioNet(this.userNets.get(vm)!.network, { mac: spec.mac }));
  }

  /** Console output out, and each VM that ended since reported once: a line, the VM_STOPPED event, its console closed. */
  private afterBatch(): void {
    for (const output of this.consoles.values()) output.flush();
    this.pageEvents?.flush();
    for (const vm of this.monitor.vms) {
      if (vm.state === 'running' || this.reported.has(vm)) continue;
      this.reported.add(vm);
      process.stdout.write(`${endLine(vm)}\n`);
      // The event before the console closes: an attached `mirrorball console` learns from it how the VM ended.
      this.event('VM_STOPPED', { vm: vm.name, state: vm.state, reason: vm.reason });
      void this.consoles.get(vm)?.close();
    }
  }

  private statsConfig(): unknown {
    const { machine } = this.spec;
    return {
      machineFile: this.file,
      topology: machine.name,
      machine: machine.config,
      memoryBytes: machine.memoryBytes,
      mode: this.monitor.executionMode,
      timing: this.monitor.timingModel?.parameters() ?? null,
      // What each exit costs the vCPU it serves (docs/monitor.md): a parameter of the run like the latencies.
      monitorCosts: this.monitor.costs,
      mmu: this.monitor.mmu,
      placement: this.spec.monitor.placement,
      // Disco's NUMA policy's parameters in force (null: off).
      policy: this.monitor.policy?.enabled === true ? this.monitor.policy.parameters : null,
      policySignal: this.monitor.policySignal,
      vms: this.monitor.vms.map((vm) => {
        const v = this.spec.vms.find((s) => s.name === vm.name);
        return { id: vm.id, name: vm.name, vcpus: vm.vcpus.length, memoryBytes: vm.pmap.size, ...(v?.elf !== undefined ? { elf: v.elf } : { kernel: v?.kernel ?? 'built guest', append: v?.append ?? null }) };
      }),
    };
  }

  /** Closes whatever was opened (also after a failed start). */
  private async teardown(): Promise<void> {
    for (const output of this.consoles.values()) await output.closeWithLog();
    await this.server?.close();
    this.server = undefined;
    await this.web?.close();
    this.web = undefined;
    for (const user of this.userNets.values()) await user.close();
    this.userNets.clear();
    for (const disk of this.disks.splice(0)) disk.close();
    this.swapStore?.close();
    this.swapStore = undefined;
  }
}

/** A VM that crashed (the monitor ended it on an error) or whose guest powered off reporting a failure. */
function failed(vm: VirtualMachine): boolean {
  const exit = vm.exit;
  return vm.state === 'crashed' || (vm.state === 'off' && exit?.kind === 'poweroff' && exit.code !== 0);
}
