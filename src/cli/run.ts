// `mirrorball run`: boot a kernel (by default the built guest) or a bare-metal ELF on the emulated machine.

import { fstatSync, readFileSync, statSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { Command } from 'commander';
import { MachineConfigError } from '../board/address-map.js';
import { describePreset, TOPOLOGY_PRESETS } from '../board/topology.js';
import { BootError, bootElf, bootLinux } from '../board/boot.js';
import { BootImageError, parseLinuxImage } from '../board/linux-image.js';
import { Machine, type ExitReason } from '../board/machine.js';
import { Simulation } from '../board/simulation.js';
import { configureTiming, enableTiming } from '../board/timing-mode.js';
import { machineCommands } from '../control/machine-commands.js';
import { ControlServer, ControlSocketError } from '../control/server.js';
import { SeededEntropy, VirtioRng } from '../devices/virtio/rng.js';
import { findBuiltGuest } from '../guest/artifacts.js';
import { DriveError, attachDrives, type DriveSpec } from '../host/drives.js';
import { RunGate, runMachine } from '../host/runner.js';
import { writeStatsOutput } from '../host/stats-output.js';
import { Terminal } from '../host/terminal.js';
import { TIMEBASE_HZ } from '../timing/clock.js';
import type { TimingModel } from '../timing/timing-model.js';
import { UsageError, parseCount, parseDrive, parseSize, translationWanted } from './options.js';
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
  consoleLog?: string;
  time: string;
  maxInstructions?: string;
  stats?: boolean;
  statsDir?: string;
  timing?: string | boolean;
  rng?: string | boolean;
  control?: string;
  cache?: string;
  localMiss?: string;
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
    .option('--drive <spec>', 'virtio-blk disk: file=IMAGE[,readonly=on] (repeatable)', (v: string, all: string[]) => [...all, v], [])
    .option('--bios <file>', 'M-mode firmware such as OpenSBI fw_jump.bin (default: built-in SBI in TypeScript)')
    .option('--elf <file>', 'run a bare-metal ELF in M-mode; exits with its HTIF exit code')
    .option('--console-log <file>', 'also write everything the guest prints to this file')
    .option('--time <mode>', 'guest time from "instructions" (reproducible) or "host" (wall clock)', 'instructions')
    .option('--max-instructions <n>', 'stop after this many instructions')
    .option('--rng [seed]', 'attach a virtio-rng whose bytes come from a seeded generator (reproducible; default seed 0)')
    .option('--stats', 'on exit, print instructions executed, guest time and host time to stderr')
    .option('--timing [from]', 'timing mode: charge every access the ccNUMA cache model\'s cycles (2-3x slower); ' +
      '"start" (default) from the first instruction, "roi" only inside the guest\'s regions of interest (mbctl roi begin/end)')
    .option('--cache <spec>', 'timing mode\'s per-CPU cache: size=BYTES,ways=N,line=BYTES, any of them (default size=1M,ways=2,line=128)')
    .option('--local-miss <cycles>', 'timing mode: cycles of a miss to local memory (default 30, 300 ns at 100 MHz); remote misses scale by distance / 10')
    .option('--stats-dir <dir>', 'on exit, write config.json, stats.txt (gem5 format) and stats.json into this directory')
    .option('--control <socket>', 'listen on this Unix socket for control commands (QMP-shaped JSON, docs/control.md): ' +
      'stop, cont, quit, query-status, set-mode fast|timing, stats-dump, stats-reset, query-stats')
    .action(async (flags: RunFlags) => {
      process.exitCode = await run(flags);
    });
}

async function run(flags: RunFlags): Promise<number> {
  const memory = parseSize(flags.memory, '-m');
  const topology = chooseTopology(flags, memory);
  if (flags.time !== 'instructions' && flags.time !== 'host') throw new UsageError(`--time must be "instructions" or "host", not '${flags.time}'`);
  const maxInstructions = flags.maxInstructions === undefined ? undefined : parseCount(flags.maxInstructions, '--max-instructions', 1, Number.MAX_SAFE_INTEGER);
  const drives: DriveSpec[] = flags.drive.map(parseDrive);
  const timingFrom = flags.timing === undefined ? undefined : flags.timing === true ? 'start' : flags.timing;
  if (timingFrom !== undefined && timingFrom !== 'start' && timingFrom !== 'roi') {
    throw new UsageError(`--timing takes "start" or "roi", not '${timingFrom}'`);
  }
  if (timingFrom === undefined && (flags.cache !== undefined || flags.localMiss !== undefined)) {
    throw new UsageError(`${flags.cache !== undefined ? '--cache' : '--local-miss'} configures timing mode: add --timing or --timing roi`);
  }
  const cache = flags.cache === undefined ? undefined : parseCacheSpec(flags.cache);
  const rngSeed = flags.rng === undefined ? undefined : flags.rng === true ? 0 : parseCount(String(flags.rng), '--rng', 0, 2 ** 32 - 1);

  let machine: Machine;
  let model: TimingModel | undefined;
  let terminal: Terminal | undefined;
  const output = (bytes: Uint8Array): void => { terminal === undefined ? process.stdout.write(bytes) : terminal.write(bytes); };
  try {
    machine = new Machine({
      config: topology.config,
      time: flags.time as 'instructions' | 'host',
      hostMilliseconds: () => performance.now(),
      console: output,
      builtinSbi: flags.bios === undefined && flags.elf === undefined,
      log: (message) => process.stderr.write(`mirrorball: ${message}\n`),
      translate: translationWanted(),
    });
    if (timingFrom === 'start') model = enableTiming(machine, topology.latencies, cache);
    else if (timingFrom === 'roi') model = configureTiming(machine, topology.latencies, cache);
  } catch (error) {
    if (error instanceof MachineConfigError) throw new UsageError(error.problems.join('; '));
    throw error;
  }
  // Statistics, and the answers to the guest's requests (mbctl): from the first instruction.
  const simulation = new Simulation(machine, model);
  let disks;
  try {
    disks = attachDrives(machine, drives);
  } catch (error) {
    if (error instanceof DriveError) throw new UsageError(error.message);
    throw error;
  }

  if (rngSeed !== undefined) machine.attachVirtio(new VirtioRng(new SeededEntropy(rngSeed)));

  try {
    if (flags.elf !== undefined) {
      const elf = flags.elf;
      namingInput(`ELF program '${elf}'`, () => bootElf(machine, readInput(elf, 'ELF program')));
    } else {
      let kernelPath = flags.kernel;
      let initrdPath = flags.initrd;
      if (kernelPath === undefined) {
        const guest = findBuiltGuest();
        if (guest === undefined) throw new UsageError('no kernel given and no guest built yet: run `mirrorball guest build` or pass --kernel');
        kernelPath = guest.kernel;
        initrdPath ??= guest.initramfs;
      }
      const kernel = readInput(kernelPath, 'kernel');
      // A file that is not a kernel is named: the user may have mixed up --kernel and --initrd.
      namingInput(`kernel '${kernelPath}'`, () => parseLinuxImage(kernel));
      bootLinux(machine, {
        kernel,
        initrd: initrdPath === undefined ? undefined : readInput(initrdPath, 'initrd'),
        append: flags.append ?? DEFAULT_APPEND,
        firmware: flags.bios === undefined ? undefined : readInput(flags.bios, 'firmware'),
      });
    }
  } catch (error) {
    for (const disk of disks) disk.close();
    // A kernel, initrd, ELF or firmware we cannot place is the user's input, not our bug: one line.
    if (error instanceof BootError) throw new UsageError(error.message);
    throw error;
  }

  // Someone (a person or a program on a pipe) may type: keep guest time from racing ahead while the guest
  // idles waiting for them. With no input possible (stdin from a file or /dev/null), idle time is skipped.
  const interactive = process.stdin.isTTY === true || stdinIsStream();
  terminal = new Terminal({
    logFile: flags.consoleLog,
    onInput: (bytes) => machine.uart.input(bytes),
    onQuit: () => machine.stopWith({ kind: 'quit' }),
  });
  const gate = new RunGate();
  let control: ControlServer | undefined;
  if (flags.control !== undefined) {
    try {
      control = await ControlServer.listen(flags.control, machineCommands({
        machine, simulation, gate, event: (name, data) => control?.event(name, data),
      }), GREETING);
    } catch (error) {
      terminal.close();
      for (const disk of disks) disk.close();
      if (error instanceof ControlSocketError) throw new UsageError(error.message);
      throw error;
    }
  }
  let exit: ExitReason;
  const started = performance.now();
  try {
    exit = await runMachine(machine, { maxInstructions, pace: interactive, gate });
  } finally {
    terminal.close();
    for (const disk of disks) disk.close();
  }
  if (control !== undefined) {
    control.event('SHUTDOWN', { reason: exit.kind === 'quit' ? 'host-quit' : exit.kind === 'poweroff' ? 'guest-shutdown' : exit.kind === 'reboot' ? 'guest-reset' : exit.kind });
    await control.close();
  }
  if (flags.stats === true) process.stderr.write(`${statsLine(machine, (performance.now() - started) / 1000)}\n`);
  if (flags.statsDir !== undefined) {
    const config = {
      topology: topology.name,
      machine: topology.config,
      memoryBytes: memory,
      mode: model === undefined ? 'fast' : timingFrom === 'roi' ? 'timing in regions of interest' : 'timing',
      timing: model?.parameters() ?? null,
      time: flags.time,
      maxInstructions: maxInstructions ?? null,
      program: flags.elf !== undefined ? { elf: flags.elf } : { kernel: flags.kernel ?? 'built guest', initrd: flags.initrd ?? null, append: flags.append ?? DEFAULT_APPEND },
    };
    try {
      writeStatsOutput(flags.statsDir, config, simulation.stats, simulation.dumps);
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

/** One line for --stats; `bench` parses its `instructions=` field. */
export function statsLine(machine: Machine, hostSeconds: number): string {
  const guestSeconds = machine.clock.now() / TIMEBASE_HZ;
  const mips = machine.instructions / hostSeconds / 1e6;
  return `mirrorball: stats instructions=${machine.instructions} guest-seconds=${guestSeconds.toFixed(3)} ` +
    `host-seconds=${hostSeconds.toFixed(3)} mips=${mips.toFixed(1)}`;
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
