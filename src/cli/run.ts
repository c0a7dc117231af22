// `mirrorball run`: boot a kernel (by default the built guest) or a bare-metal ELF on the emulated machine.

import { fstatSync, readFileSync, statSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { Command } from 'commander';
import { MachineConfigError } from '../board/address-map.js';
import { describePreset, TOPOLOGY_PRESETS } from '../board/topology.js';
import { BootError, bootElf, bootLinux, bootSbiPayload, isElf } from '../board/boot.js';
import { BootImageError, parseLinuxImage } from '../board/linux-image.js';
import { Machine, type ExitReason } from '../board/machine.js';
import { machineCommands } from '../control/machine-commands.js';
import { ControlServer, ControlSocketError } from '../control/server.js';
import { ConsoleHub } from '../control/console-commands.js';
import { QmpError } from '../control/qmp.js';
import { newToken } from '../host/web/token.js';
import { WebControl, parseWebAddress } from './web-control.js';
import { findBuiltGuest } from '../guest/artifacts.js';
import { DriveError } from '../host/drives.js';
import { buildMachine, type BuiltMachine, type MachineSpec } from '../host/machine-spec.js';
import { loadRunSnapshot, saveRunSnapshot, type LoadedSnapshot } from '../host/run-snapshot.js';
import { SnapshotFileError } from '../host/snapshot-file.js';
import { SnapshotError } from '../board/snapshot.js';
import { RunGate, runMachine } from '../host/runner.js';
import { registerDsmStats } from '../host/dsm-stats.js';
import { DSM_JSON_FILE, writeFileWhole, writeStatsOutput } from '../host/stats-output.js';
import { PRIVATE_FILE_MODE } from '../host/private-files.js';
import { join } from 'node:path';
import { Terminal } from '../host/terminal.js';
import { TIMEBASE_HZ } from '../timing/clock.js';
import { UsageError, parseCount, parseDrive, parseSize, translationWanted } from './options.js';
import { runThreaded, ThreadedRunError } from '../host/threaded-runner.js';
import { dsmStatsLine, HostsRunError, runOnHosts } from '../host/hosts-runner.js';
import type { HostReport } from '../host/dsm-host.js';
import { hostsWanted, openHosts, type RunHosts } from './run-hosts.js';
import { logCounters } from '../host/thread-log.js';
import type { ThreadCounters } from '../board/thread-counters.js';

/** Most host threads `--threads` takes (a hart each at most: the machine has up to 32). */
const MAX_THREADS = 32;
import { parseConsoleSocket, parseNet } from './net-options.js';
import { attachRunDevices, type RunDevices } from './run-devices.js';
import { chooseTopology, parseCacheSpec } from './topology-options.js';

export const DEFAULT_APPEND = 'console=ttyS0 earlycon=sbi';

interface RunFlags {
  kernel?: string;
  initrd?: string;
  append?: string;
  memory: string;
  smp?: string;
  nodes?: string;
  topology?: string;
  distances?: string;
  drive: string[];
  bios?: string;
  elf?: string;
  sbi?: boolean;
  consoleLog?: string;
  time: 'instructions' | 'host';
  maxInstructions?: string;
  stats?: boolean;
  statsDir?: string;
  timing?: string | boolean;
  rng?: string | boolean;
  control?: string;
  cache?: string;
  localMiss?: string;
  restore?: string;
  net?: string;
  console?: string;
  serial?: string;
  threads?: string;
  web?: string;
  hosts?: string;
  join?: string;
  tokenFile?: string;
  dsmHold?: string;
}

/** The name of `run`'s console on the control protocol (console-subscribe, docs/control.md). */
export const RUN_CONSOLE = 'machine';

/** Bytes gathered and handed on together a few milliseconds after the first, so that output is not one event per byte. */
class Chunks {
  private parts: Uint8Array[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly deliver: (bytes: Uint8Array) => void) {}

  push(bytes: Uint8Array): void {
    this.parts.push(bytes.slice());
    this.timer ??= setTimeout(() => this.flush(), 10);
  }

  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.parts.length === 0) return;
    const bytes = Buffer.concat(this.parts);
    this.parts = [];
    this.deliver(new Uint8Array(bytes));
  }
}

/** Name and version in the control socket's greeting. */
const GREETING = { name: 'mirrorball', version: '0.1.0' };

/** Reads a file the user named, or fails with one line saying which and why. */
export function readInput(path: string, what: string): Uint8Array {
  try {
    if (statSync(path).isDirectory()) throw new UsageError(`${what} '${path}' is a directory`);
    return readFileSync(path);
  } catch (error) {
    if (error instanceof UsageError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : String(code ?? error);
    throw new UsageError(`cannot read ${what} '${path}': ${why}`);
  }
}

export function registerRunCommand(program: Command): void {
  program
    .command('run')
    .description('Boot Linux (by default the guest built by `mirrorball guest build`) or a bare-metal ELF')
    .option('--kernel <file>', 'Linux Image (RISC-V boot header) to boot')
    .option('--initrd <file>', 'initial ramdisk (cpio) to load')
    .option('--append <cmdline>', `kernel command line (default: "${DEFAULT_APPEND}")`)
    .option('-m, --memory <size>', 'RAM, split evenly over the nodes (e.g. 512M, 2G)', '512M')
    .option('--smp <harts>', 'number of harts (1-32; default 1, or as many as --topology has)')
    .option('--nodes <n>', 'NUMA nodes; harts and memory are spread evenly over them (default 1)')
    .option('--topology <preset>', `NUMA machine preset, instead of --nodes: ${TOPOLOGY_PRESETS.map((n) => `${n} (${describePreset(n)})`).join('; ')}`)
    .option('--distances <matrix>', 'node distance matrix, numactl style, rows split by ";" (e.g. "10,20;20,10")')
    .option('--drive <spec>', 'virtio-blk disk: file=IMAGE[,readonly=on|snapshot=on|overlay=FILE] (repeatable)', (v: string, all: string[]) => [...all, v], [])
    .option('--bios <file>', 'M-mode firmware such as OpenSBI fw_jump.bin (default: built-in SBI in TypeScript)')
    .option('--elf <file>', 'run a bare-metal ELF in M-mode; exits with its HTIF exit code')
    .option('--sbi', 'with --elf: run it in S-mode under the built-in SBI instead, as a VM\'s `elf:` does (hart 0 at its entry with a0 = hartid, ' +
      'a1 = the device tree; the other harts started by HSM); exits with its SBI shutdown\'s status. ' +
      '--kernel given an ELF does the same, as QEMU\'s -kernel')
    .option('--console-log <file>', 'also write everything the guest prints to this file')
    .option('--time <mode>', 'guest time from "instructions" (reproducible) or "host" (wall clock)', 'instructions')
    .option('--max-instructions <n>', 'stop after this many instructions')
    .option('--threads <n>', 'run the harts on this many host threads over shared memory (default 1, the reproducible mode); ' +
      'above 1 a run is not reproducible, and not with --timing, --control, --restore or --time host (docs/threads.md)')
    .option('--hosts <n>', 'spread the harts over this many host processes on this machine (hart i on host i mod N), guest memory kept ' +
      'coherent by a DSM; Linux under the built-in SBI or OpenSBI (--bios), or a bare-metal --elf program; the devices (--drive, --net, --rng) on host 0, their DMA through the DSM; ' +
      'not reproducible (docs/giantvm.md)')
    .option('--join <addr:port,...>', 'spread the harts over this process and hosts started by `mirrorball host --listen` (docs/giantvm.md)')
    .option('--dsm-hold <us>', 'with --hosts or --join: Mirage\'s hold time, the microseconds a host keeps a page it got before it may be taken away (default 100; 0: none)')
    .option('--token-file <file>', 'with --join: the hosts\' shared token, the file\'s first line (default: $MIRRORBALL_HOST_TOKEN)')
    .option('--rng [seed]', 'attach a virtio-rng whose bytes come from a seeded generator (reproducible; default seed 0)')
    .option('--stats', 'on exit, print instructions executed, guest time and host time to stderr')
    .option('--timing [from]', 'timing mode: charge every access the ccNUMA cache model\'s cycles (2-3x slower); ' +
      '"start" (default) from the first instruction, "roi" only inside the guest\'s regions of interest (mbctl roi begin/end)')
    .option('--cache <spec>', 'timing mode\'s per-CPU cache: size=BYTES,ways=N,line=BYTES, any of them (default size=1M,ways=2,line=128)')
    .option('--local-miss <cycles>', 'timing mode: cycles of a miss to local memory (default 30, 300 ns at 100 MHz); remote misses scale by distance / 10')
    .option('--stats-dir <dir>', 'on exit, write config.json, stats.txt (gem5 format) and stats.json into this directory')
    .option('--control <socket>', 'listen on this Unix socket for control commands (QMP-shaped JSON, docs/control.md): ' +
      'stop, cont, quit, query-status, set-mode fast|timing, stats-dump, stats-reset, query-stats, snapshot-save')
    .option('--web <[addr:]port>', 'serve the dashboard (docs/dashboard.md) on this port, on 127.0.0.1 unless an address is given: the console in a ' +
      'browser and the control commands; its address and token are printed on stderr (the token lives only in this process)')
    .option('--net <spec>', 'a virtio-net card on a network: "user[,hostfwd=tcp::HOSTPORT-:GUESTPORT]...[,restrict=on]" (the host\'s ' +
      'user-mode network: the guest is 10.0.2.15 by DHCP, the host\'s 127.0.0.1 is 10.0.2.2; restrict=on reaches nothing else), or ' +
      '"socket,listen=[ADDR]:PORT" / "socket,connect=ADDR:PORT" (one Ethernet segment with another run over TCP); ",mac=MAC" sets the card\'s MAC. ' +
      'A machine on a network waits on the outside world: its runs are not reproducible')
    .option('--console <spec>', 'socket=PATH: a virtio console (the guest\'s hvc1; boot with console=hvc1 to get the shell there) on a Unix socket, mode 0600; paced by the host: not reproducible')
    .option('--serial <spec>', 'socket=PATH: the UART (ttyS0, the guest\'s console by default) on a Unix socket, mode 0600, instead of this terminal; paced by the host: not reproducible')
    .option('--restore <file>', 'continue the machine saved in this snapshot (the control socket\'s snapshot-save) instead of booting; ' +
      'the snapshot says which machine, so the flags that would are refused')
    .action(async (flags: RunFlags, command: Command) => {
      process.exitCode = await run(flags, command);
    });
}

/** The flags that say which machine to build: with --restore the snapshot says it. */
const MACHINE_FLAGS: [keyof RunFlags, string][] = [
  ['kernel', '--kernel'], ['initrd', '--initrd'], ['append', '--append'], ['memory', '-m'], ['smp', '--smp'], ['nodes', '--nodes'],
  ['topology', '--topology'], ['distances', '--distances'], ['drive', '--drive'], ['bios', '--bios'], ['elf', '--elf'], ['sbi', '--sbi'],
  ['time', '--time'], ['rng', '--rng'], ['timing', '--timing'], ['cache', '--cache'], ['localMiss', '--local-miss'],
  ['net', '--net'], ['console', '--console'], ['serial', '--serial'],
];

/** What `run` writes to config.json about the machine; a snapshot keeps it for the restored run's. */
interface RunReport {
  topology: string;
  memoryBytes: number;
  timingFrom: 'start' | 'roi' | null;
  program: object;
}

/** The machine the flags ask for, and what loads its program. */
function machineFromFlags(flags: RunFlags): { spec: MachineSpec; report: RunReport; load: (machine: Machine) => void } {
  checkProgramFlags(flags);
  const memory = parseSize(flags.memory, '-m');
  const topology = chooseTopology(flags, memory);
  if (flags.time !== 'instructions' && flags.time !== 'host') throw new UsageError(`--time must be "instructions" or "host", not '${flags.time}'`);
  const timingFrom = flags.timing === undefined ? undefined : flags.timing === true ? 'start' : flags.timing;
  if (timingFrom !== undefined && timingFrom !== 'start' && timingFrom !== 'roi') {
    throw new UsageError(`--timing takes "start" or "roi", not '${timingFrom}'`);
  }
  if (timingFrom === undefined && (flags.cache !== undefined || flags.localMiss !== undefined)) {
    throw new UsageError(`${flags.cache !== undefined ? '--cache' : '--local-miss'} configures timing mode: add --timing or --timing roi`);
  }
  const cache = flags.cache === undefined ? undefined : parseCacheSpec(flags.cache);
  const rngSeed = flags.rng === undefined ? null : flags.rng === true ? 0 : parseCount(String(flags.rng), '--rng', 0, 2 ** 32 - 1);
  const spec: MachineSpec = {
    config: topology.config,
    time: flags.time,
    builtinSbi: flags.bios === undefined && (flags.elf === undefined || flags.sbi === true),
    timing: timingFrom === undefined ? null : { from: timingFrom, latencies: topology.latencies, ...(cache === undefined ? {} : { cache }) },
    drives: flags.drive.map(parseDrive),
    rngSeed,
  };
  const report: RunReport = {
    topology: topology.name,
    memoryBytes: memory,
    timingFrom: timingFrom ?? null,
    program: flags.elf !== undefined ? { elf: flags.elf, mode: flags.sbi === true ? 'S under the built-in SBI' : 'M' } : { kernel: flags.kernel ?? 'built guest', initrd: flags.initrd ?? null, append: flags.append ?? defaultAppend(flags) },
  };
  return { spec, report, load: (machine) => loadProgram(machine, flags) };
}

/**
 * The kernel command line without --append: on the user network the guest's init configures eth0 as DHCP
 * would (mb.ip, docs/guest.md), so that the guest is on the network when its shell starts.
 */
function defaultAppend(flags: RunFlags): string {
  return flags.net?.startsWith('user') === true ? `${DEFAULT_APPEND} mb.ip=10.0.2.15/24,10.0.2.2` : DEFAULT_APPEND;
}

/** The combinations of --elf, --sbi, --bios, --kernel and --initrd that make no sense: one line. */
function checkProgramFlags(flags: RunFlags): void {
  if (flags.sbi === true && flags.elf === undefined) throw new UsageError('--sbi runs an ELF program under the built-in SBI: give it with --elf');
  if (flags.elf !== undefined && flags.bios !== undefined) throw new UsageError('--elf runs a program on the bare machine (M-mode, or S-mode with --sbi): drop --bios');
  if (flags.elf !== undefined && (flags.kernel !== undefined || flags.initrd !== undefined)) {
    throw new UsageError(`--elf runs its program instead of a kernel: drop ${flags.kernel !== undefined ? '--kernel' : '--initrd'}`);
  }
  if (flags.elf !== undefined && flags.append !== undefined) throw new UsageError('--append is a kernel\'s command line: an --elf program takes none');
}

function loadProgram(machine: Machine, flags: RunFlags): void {
  if (flags.elf !== undefined) {
    const elf = flags.elf;
    const bytes = readInput(elf, 'ELF program');
    if (flags.sbi === true) namingInput(`ELF program '${elf}'`, () => bootSbiPayload(machine, bytes));
    else namingInput(`ELF program '${elf}'`, () => bootElf(machine, bytes));
    return;
  }
  let kernelPath = flags.kernel;
  let initrdPath = flags.initrd;
  if (kernelPath === undefined) {
    const guest = findBuiltGuest();
    if (guest === undefined) throw new UsageError('no kernel given and no guest built yet: run `mirrorball guest build` or pass --kernel');
    kernelPath = guest.kernel;
    initrdPath ??= guest.initramfs;
  }
  const kernel = readInput(kernelPath, 'kernel');
  if (isElf(kernel)) {
    // QEMU's -kernel takes an ELF too and runs it in S-mode after its firmware: here under the built-in SBI.
    if (flags.bios !== undefined) throw new UsageError(`kernel '${kernelPath}' is an ELF program, which runs under the built-in SBI: drop --bios`);
    if (flags.initrd !== undefined || flags.append !== undefined) throw new UsageError(`kernel '${kernelPath}' is an ELF program, which takes no ${flags.initrd !== undefined ? '--initrd' : '--append'}`);
    namingInput(`ELF program '${kernelPath}'`, () => bootSbiPayload(machine, kernel));
    return;
  }
  // A file that is not a kernel is named: the user may have mixed up --kernel and --initrd.
  namingInput(`kernel '${kernelPath}'`, () => parseLinuxImage(kernel));
  bootLinux(machine, {
    kernel,
    initrd: initrdPath === undefined ? undefined : readInput(initrdPath, 'initrd'),
    append: flags.append ?? defaultAppend(flags),
    firmware: flags.bios === undefined ? undefined : readInput(flags.bios, 'firmware'),
  });
}

/** The machine a snapshot holds, refusing flags that would say otherwise. */
function machineFromSnapshot(flags: RunFlags, command: Command, file: string): { spec: MachineSpec; report: RunReport; loaded: LoadedSnapshot } {
  const given = MACHINE_FLAGS.filter(([key]) => {
    const source = command.getOptionValueSource(key);
    return source !== undefined && source !== 'default' && !(key === 'drive' && flags.drive.length === 0);
  }).map(([, name]) => name);
  if (given.length > 0) throw new UsageError(`--restore builds the machine the snapshot holds: drop ${given.join(', ')}`);
  let loaded: LoadedSnapshot;
  try {
    loaded = loadRunSnapshot(file);
  } catch (error) {
    if (error instanceof SnapshotFileError) throw new UsageError(error.message);
    throw error;
  }
  const extra = loaded.extra as Partial<RunReport> | undefined;
  const report: RunReport = {
    topology: typeof extra?.topology === 'string' ? extra.topology : 'from snapshot',
    memoryBytes: loaded.spec.config.nodes.reduce((sum, n) => sum + n.memoryBytes, 0),
    timingFrom: loaded.spec.timing?.from ?? null,
    program: { ...(typeof extra?.program === 'object' && extra.program !== null ? extra.program : {}), restored: file },
  };
  return { spec: loaded.spec, report, loaded };
}

/**
 * --threads, and what a threaded run cannot do (docs/threads.md): timing mode runs on one thread, and the
 * control socket (pausing, snapshots), restoring a snapshot and host time are not threaded yet.
 */
function threadsWanted(flags: RunFlags): number {
  const threads = flags.threads === undefined ? 1 : parseCount(flags.threads, '--threads', 1, MAX_THREADS);
  if (threads === 1) return 1;
  const refused = ([['--timing', flags.timing], ['--control', flags.control], ['--web', flags.web], ['--restore', flags.restore],
    ['--time host', flags.time === 'host' ? true : undefined]] as const)
    .filter(([, value]) => value !== undefined && value !== false).map(([name]): string => name);
  if (refused.length > 0) throw new UsageError(`--threads above 1 does not work with ${refused.join(', ')} yet`);
  return threads;
}

/** --hosts and --join, and the runs they can do so far: a bare-metal ELF, or Linux under the built-in SBI (docs/giantvm.md). */
function hostsFor(flags: RunFlags): ReturnType<typeof hostsWanted> {
  const wanted = hostsWanted(flags);
  if (wanted === undefined && flags.dsmHold !== undefined) throw new UsageError('--dsm-hold is for --hosts above 1 or --join');
  if (wanted === undefined) return undefined;
  if (flags.timing !== undefined && flags.timing !== false) throw new UsageError('--timing is refused across hosts: the cache model\'s caches and latencies know nothing of the network');
  const refused = ([['--threads', flags.threads], ['--control', flags.control], ['--web', flags.web], ['--restore', flags.restore], ['--console', flags.console],
    ['--serial', flags.serial], ['--nodes', flags.nodes], ['--topology', flags.topology], ['--time host', flags.time === 'host' ? true : undefined]] as const)
    .filter(([, value]) => value !== undefined).map(([name]): string => name);
  if (refused.length > 0) throw new UsageError(`--hosts and --join do not work with ${refused.join(', ')} yet`);
  return wanted;
}

async function run(flags: RunFlags, command: Command): Promise<number> {
  const maxInstructions = flags.maxInstructions === undefined ? undefined : parseCount(flags.maxInstructions, '--max-instructions', 1, Number.MAX_SAFE_INTEGER);
  const threads = threadsWanted(flags);
  const hostsWanted = hostsFor(flags);
  const holdUs = flags.dsmHold === undefined ? undefined : parseCount(flags.dsmHold, '--dsm-hold', 0, 1_000_000);
  const restoring = flags.restore === undefined ? undefined : machineFromSnapshot(flags, command, flags.restore);
  const fresh = restoring === undefined ? machineFromFlags(flags) : undefined;
  const { spec, report } = restoring ?? fresh!;

  const net = flags.net === undefined ? undefined : parseNet(flags.net);
  const consolePath = flags.console === undefined ? undefined : parseConsoleSocket(flags.console, '--console');
  const serialPath = flags.serial === undefined ? undefined : parseConsoleSocket(flags.serial, '--serial');
  const webAddress = flags.web === undefined ? undefined : parseWebAddress(flags.web);
  // The dashboard's view of the console: the guest's output in chunks (the UART gives it byte by byte).
  let hub: ConsoleHub | undefined;
  const webOutput = new Chunks((bytes) => hub?.output(RUN_CONSOLE, bytes));
  let terminal: Terminal | undefined;
  let devices: RunDevices | undefined;
  const output = (bytes: Uint8Array): void => {
    if (hub !== undefined) webOutput.push(bytes);
    if (devices?.serial !== undefined) {
      devices.serial.write(bytes);
      terminal?.log(bytes);
    } else if (terminal === undefined) process.stdout.write(bytes);
    else terminal.write(bytes);
  };
  let built: BuiltMachine;
  try {
    built = buildMachine(spec, {
      console: output,
      log: (message) => process.stderr.write(`mirrorball: ${message}\n`),
      hostMilliseconds: () => performance.now(),
      translate: translationWanted(),
    });
  } catch (error) {
    if (error instanceof MachineConfigError) throw new UsageError(error.problems.join('; '));
    if (error instanceof DriveError) throw new UsageError(error.message);
    // A snapshot's timing parameters are checked by the model they build.
    if (restoring !== undefined && error instanceof RangeError) throw new UsageError(`snapshot '${flags.restore}' cannot be restored: ${error.message}`);
    throw error;
  }
  const { machine, model, simulation, disks } = built;
  try {
    devices = await attachRunDevices(machine, { net, console: consolePath, serial: serialPath }, (message) => process.stderr.write(`mirrorball: ${message}\n`));
  } catch (error) {
    for (const disk of disks) disk.close();
    throw error;
  }

  try {
    if (restoring !== undefined) restoring.loaded.restoreInto(built);
    else fresh!.load(machine);
  } catch (error) {
    await devices.close();
    for (const disk of disks) disk.close();
    // A kernel, initrd, ELF or firmware we cannot place, or a snapshot we cannot restore, is the user's input: one line.
    if (error instanceof BootError) throw new UsageError(error.message);
    if (error instanceof SnapshotFileError) throw new UsageError(error.message);
    throw error;
  }

  // Someone (a person or a program on a pipe) may type: keep guest time from racing ahead while the guest
  // idles waiting for them. With no input possible (stdin from a file or /dev/null), idle time is skipped.
  // A machine on a network or with console sockets waits on the world the same way.
  const interactive = process.stdin.isTTY === true || stdinIsStream() || devices.outside;
  terminal = new Terminal({
    logFile: flags.consoleLog,
    // With the UART on a socket the terminal types nothing into the guest; Ctrl-A x still quits.
    onInput: (bytes) => { if (devices?.serial === undefined) machine.uart.input(bytes); },
    queued: () => (devices?.serial === undefined ? machine.uart.queuedInput : 0),
    onQuit: () => machine.stopWith({ kind: 'quit' }),
  });
  const gate = new RunGate();
  let control: ControlServer | undefined;
  let web: WebControl | undefined;
  const commands = machineCommands({
    machine, simulation, gate, event: (name, data) => { control?.event(name, data); web?.event(name, data); },
    saveSnapshot: (file) => {
      if (devices?.outside === true) throw new SnapshotError('snapshots of a machine with --net, --console or --serial are not supported: its peers\' state is outside it');
      return saveRunSnapshot(file, built, spec, report);
    },
  });
  try {
    if (flags.control !== undefined) control = await ControlServer.listen(flags.control, commands, GREETING);
    if (webAddress !== undefined) {
      hub = new ConsoleHub({
        check: (name) => { if (name !== RUN_CONSOLE) throw new QmpError('GenericError', `no console named '${name}' (run's console is '${RUN_CONSOLE}')`); },
        input: (_name, bytes) => machine.uart.input(bytes),
      });
      web = await WebControl.start(webAddress, newToken(), { ...commands, ...hub.commands() }, GREETING);
      process.stderr.write(`mirrorball: dashboard ${web.url} (the token lives only in this process)\n`);
    }
  } catch (error) {
    terminal.close();
    await control?.close();
    await devices.close();
    for (const disk of disks) disk.close();
    if (error instanceof ControlSocketError) throw new UsageError(error.message);
    throw error;
  }
  let exit: ExitReason;
  const started = performance.now();
  const instructionsBefore = machine.instructions;
  let hosts: RunHosts | undefined;
  let dsmReports: HostReport[] = [];
  /** A threaded run's counters: where each thread's time went (`--stats`, MIRRORBALL_THREAD_LOG). */
  let counters: ThreadCounters | undefined;
  let stopLog = (): void => {};
  try {
    if (hostsWanted !== undefined) {
      hosts = await openHosts(hostsWanted, flags.tokenFile);
      ({ exit, reports: dsmReports } = await runOnHosts(machine, hosts.links, { maxInstructions, translate: translationWanted(), holdUs, pace: interactive }));
    } else {
      exit = threads > 1
        ? await runThreaded(machine, {
          threads, maxInstructions, translate: translationWanted(), pace: interactive, lag: lagWanted(),
          counted: (c) => { counters = c; stopLog = logCounters(c); },
        })
        : await runMachine(machine, { maxInstructions, pace: interactive, gate });
    }
  } catch (error) {
    if (error instanceof ThreadedRunError) throw new UsageError(error.message);
    // A host lost, or one that broke the protocol: the whole VM stops, with its line.
    if (error instanceof HostsRunError) { process.stderr.write(`mirrorball: ${error.message}\n`); return 1; }
    throw error;
  } finally {
    stopLog();
    hosts?.close();
    terminal.close();
    await devices.close();
    for (const disk of disks) disk.close();
  }
  webOutput.flush();
  const reason = exit.kind === 'quit' ? 'host-quit' : exit.kind === 'poweroff' ? 'guest-shutdown' : exit.kind === 'reboot' ? 'guest-reset' : exit.kind;
  for (const server of [control, web]) {
    if (server === undefined) continue;
    server.event('SHUTDOWN', { reason });
    await server.close();
  }
  if (flags.stats === true) process.stderr.write(`${statsLine(machine, (performance.now() - started) / 1000, machine.instructions - instructionsBefore)}\n`);
  if (flags.stats === true) for (const r of dsmReports) process.stderr.write(`${dsmStatsLine(r)}\n`);
  if (flags.stats === true && counters !== undefined) for (const line of [...counters.report(), ...hartLines(machine)]) process.stderr.write(`${line}\n`);
  if (flags.statsDir !== undefined) {
    const config = {
      topology: report.topology,
      machine: spec.config,
      memoryBytes: report.memoryBytes,
      mode: model === undefined ? 'fast' : report.timingFrom === 'roi' ? 'timing in regions of interest' : 'timing',
      timing: model?.parameters() ?? null,
      time: spec.time,
      maxInstructions: maxInstructions ?? null,
      program: report.program,
    };
    try {
      // A run over hosts: the DSM's counters under dsm.* (docs/giantvm.md, "Statistics").
      if (dsmReports.length > 0) registerDsmStats(simulation.stats, dsmReports, machine.bus.machineRam[0]!.base);
      writeStatsOutput(flags.statsDir, config, simulation.stats, simulation.dumps);
      // A run over hosts: each host's DSM and relay counters (docs/giantvm.md, "Statistics").
      if (dsmReports.length > 0) writeFileWhole(join(flags.statsDir, DSM_JSON_FILE), `${JSON.stringify({ hosts: dsmReports }, null, 2)}\n`, PRIVATE_FILE_MODE);
    } catch (error) {
      throw new UsageError(`cannot write statistics to '${flags.statsDir}': ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
  }
  return exitStatus(exit);
}

/** Runs `load`; a file it cannot use (BootError, BootImageError) is named in the one line the user sees. */
function namingInput(what: string, load: () => unknown): void {
  try {
    load();
  } catch (error) {
    if (error instanceof BootError || error instanceof BootImageError) throw new UsageError(`${what}: ${error.message}`);
    throw error;
  }
}

function stdinIsStream(): boolean {
  try {
    const stat = fstatSync(0);
    return stat.isFIFO() || stat.isSocket();
  } catch {
    return false;
  }
}

/**
 * One line for --stats; `bench` parses its `instructions=` field (all the machine's, a restored one's from
 * its first boot); MIPS are of the `ran` instructions this run executed.
 */
export function statsLine(machine: Machine, hostSeconds: number, ran = machine.instructions): string {
  const guestSeconds = machine.clock.now() / TIMEBASE_HZ;
  const mips = ran / hostSeconds / 1e6;
  return `mirrorball: stats instructions=${machine.instructions} guest-seconds=${guestSeconds.toFixed(3)} ` +
    `host-seconds=${hostSeconds.toFixed(3)} mips=${mips.toFixed(1)}`;
}

/**
 * MIRRORBALL_THREAD_LAG: how many rounds a worker may run ahead of the slowest (docs/threads.md; 1 makes
 * every round a barrier), to compare on a given host. Unset: the default.
 */
function lagWanted(): number | undefined {
  const text = process.env.MIRRORBALL_THREAD_LAG;
  if (text === undefined || text === '') return undefined;
  return parseCount(text, 'MIRRORBALL_THREAD_LAG', 1, 64);
}

/** Per hart for `--stats` of a threaded run: instructions retired, busy cycles per privilege level, idle cycles. */
function hartLines(machine: Machine): string[] {
  return machine.harts.map((h) => `mirrorball: hart ${h.id}: instructions=${h.instret} user=${h.cyclesAt(0)} supervisor=${h.cyclesAt(1)} ` +
    `machine=${h.cyclesAt(3)} idle=${h.idleCycles}`);
}

function exitStatus(exit: ExitReason): number {
  switch (exit.kind) {
    case 'poweroff': return exit.code;
    case 'htif': return exit.code;
    case 'reboot':
      process.stderr.write('mirrorball: the guest asked for a reboot; stopping\n');
      return 0;
    case 'limit':
      process.stderr.write('mirrorball: instruction limit reached\n');
      return 3;
    case 'quit': return 0;
  }
}
