// `npm run bench`: Mirrorball against QEMU (the reference), side by side in the same run, as ratios.
//
//   cpu   a bare-metal CPU-bound program (src/bench/programs/cpu.c) to its HTIF exit: time, MIPS, peak RSS
//   boot  the built guest from power-on to its agent, then `poweroff -f` typed on the console, 1 hart
//   net   TCP throughput through the user network, both ways, against QEMU's slirp (net.ts; only with --only net)
//   web   the guest to its shell prompt in a browser tab against `run` (web-tab.ts; only with --only web)
//   threads  the parallel raytrace on 1 host thread and on 2, the host calibrated (threads.ts; only with --only threads)
//   hosts  Linux to its prompt on the plain run and on --hosts 2, with the DSM's faults and bounced pages (hosts.ts; only with --only hosts)
//   hosts-disk  a disk read and written from hart 1, plain and on --hosts 2, with the DMA's pages (hosts-disk.ts; only with --only hosts-disk)
//   up-threads  eight VMs under `up` to their shells on 1 host thread and on 2 (up-threads.ts; only with --only up-threads)
//   dashboard  up's CPU time with one dashboard client against none (dashboard.ts; only with --only dashboard)
//   timing  the cpu program and a memory-bound one (src/bench/programs/mem.c: a 4 MiB working set, pointer
//         chasing and streaming) in fast mode and in timing mode: the slowdown against the 3x target
//
// Options (options.ts, `npm run bench -- --help`): --only cpu|boot|timing, --iterations N (rounds of the cpu
// program), --repeat N (each bench N times, alternating, median and range), --json FILE.

import { dashboardBench } from './dashboard.js';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { AgentProtocol } from '../guest/agent-protocol.js';
import { describeGuestKernel, findBuiltGuest } from '../guest/artifacts.js';
import { BenchError, measure, onPath, type Measurement } from './measure.js';
import { BenchUsageError, formatSpread, parseBenchArgs, spread, USAGE, type BenchOptions } from './options.js';
import { buildProgram } from './programs.js';
import { netBench } from './net.js';
import { webTabBench } from './web-tab.js';
import { threadsBench } from './threads.js';
import { hostsBench } from './hosts.js';
import { hostsDiskBench } from './hosts-disk.js';
import { upThreadsBench } from './up-threads.js';

const QEMU = 'qemu-system-riscv64';
const MIRRORBALL = fileURLToPath(new URL('../../bin/mirrorball.js', import.meta.url));
/** Debian's OpenSBI for QEMU's virt board (QEMU's own default firmware is the same build). */
const QEMU_FIRMWARE = 'default';
const READY_MARKER = '@@MB READY';
const BOOT_APPEND = 'console=ttyS0 mb.agent=1';
/** Rounds of the memory program: about as many instructions as the cpu program's 100 rounds. */
const MEM_ROUNDS = 60;
/** Issue 4's target: timing mode at most this many times slower than fast mode. */
const TIMING_TARGET = 3;
/** Exit status of a mistake on the command line. */
const USAGE_STATUS = 2;

/** One bench, Mirrorball and QEMU, each run `repeat` times (alternating). */
interface Row {
  bench: string;
  mirrorball: Measurement[];
  qemu: Measurement[];
  /** Guest instructions Mirrorball executed (from --stats), when known: the same in every run. */
  instructions?: number;
}

/** Runs `ours` and `theirs` `repeat` times, one after the other: a slow moment of the host falls on both. */
async function alternate(what: string, repeat: number, ours: () => Promise<Measurement>, theirs: () => Promise<Measurement>): Promise<[Measurement[], Measurement[]]> {
  const a: Measurement[] = [];
  const b: Measurement[] = [];
  for (let k = 1; k <= repeat; k++) {
    if (repeat > 1) process.stderr.write(`bench: ${what}, run ${k}/${repeat}\n`);
    a.push(await ours());
    b.push(await theirs());
  }
  return [a, b];
}

async function cpuBench(iterations: number, repeat: number): Promise<Row> {
  const elf = buildProgram('cpu', iterations);
  let instructions: number | undefined;
  const [ours, qemu] = await alternate('cpu', repeat, async () => {
    const m = await measure(process.execPath, [MIRRORBALL, 'run', '--stats', '--elf', elf], { timeoutSeconds: 3600 });
    if (m.status !== 0) throw new BenchError(`cpu: mirrorball exited with ${m.status}: ${lastLine(m.output)}`);
    const match = /instructions=(\d+)/.exec(m.output);
    instructions = match === null ? undefined : Number(match[1]);
    return m;
  }, async () => {
    const m = await measure(QEMU, ['-machine', 'spike', '-bios', 'none', '-kernel', elf, '-nographic', '-m', '128M'], { timeoutSeconds: 600 });
    if (m.status !== 0) throw new BenchError(`cpu: qemu exited with ${m.status}: ${lastLine(m.output)}`);
    return m;
  });
  return { bench: `cpu (${iterations} rounds)`, mirrorball: ours, qemu, instructions };
}

interface TimingRow {
  bench: string;
  instructions: number;
  /** Simulation seconds (each run's own host-seconds, without process start) in each mode, run by run. */
  fastSeconds: number[];
  timingSeconds: number[];
}

/** Runs one program in fast mode and in timing mode, alternating `repeat` times, and checks every run passed. */
async function timingPair(name: string, rounds: number, repeat: number): Promise<TimingRow> {
  const elf = buildProgram(name, rounds);
  const run = async (timing: boolean): Promise<[Measurement, number, number]> => {
    const args = [MIRRORBALL, 'run', '--stats', '--elf', elf, ...(timing ? ['--timing'] : [])];
    const m = await measure(process.execPath, args, { timeoutSeconds: 3600 });
    const mode = timing ? 'timing' : 'fast';
    if (m.status !== 0) throw new BenchError(`timing: ${name} in ${mode} mode exited with ${m.status}: ${lastLine(m.output)}`);
    const instructions = /instructions=(\d+)/.exec(m.output);
    const seconds = /host-seconds=([\d.]+)/.exec(m.output);
    if (instructions === null || seconds === null) throw new BenchError(`timing: ${name} in ${mode} mode printed no stats line`);
    return [m, Number(instructions[1]), Number(seconds[1])];
  };
  const row: TimingRow = { bench: `${name} (${rounds} rounds)`, instructions: 0, fastSeconds: [], timingSeconds: [] };
  for (let k = 1; k <= repeat; k++) {
    if (repeat > 1) process.stderr.write(`bench: timing ${name}, run ${k}/${repeat}\n`);
    const [, instructions, fastSeconds] = await run(false);
    const [, timedInstructions, timingSeconds] = await run(true);
    if (timedInstructions !== instructions) throw new BenchError(`timing: ${name} ran ${instructions} instructions in fast mode, ${timedInstructions} in timing mode`);
    row.instructions = instructions;
    row.fastSeconds.push(fastSeconds);
    row.timingSeconds.push(timingSeconds);
  }
  return row;
}

function timingReport(rows: TimingRow[]): string {
  const lines = [
    `| workload | instructions | fast s | timing s | fast MIPS | timing MIPS | slowdown (timing/fast) | target ≤ ${TIMING_TARGET}× |`,
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const fast = spread(r.fastSeconds).median;
    const timing = spread(r.timingSeconds).median;
    const slowdown = timing / fast;
    const mips = (seconds: number): string => (r.instructions / seconds / 1e6).toFixed(1);
    lines.push(`| ${r.bench} | ${r.instructions} | ${formatSpread(r.fastSeconds, 2)} | ${formatSpread(r.timingSeconds, 2)} | ${mips(fast)} | ` +
      `${mips(timing)} | ${slowdown.toFixed(2)}× | ${slowdown <= TIMING_TARGET ? 'met' : 'MISSED'} |`);
  }
  return lines.join('\n');
}

/**
 * Boots `command` to the agent's READY, asks the guest to power off, and measures until the process ends:
 * the "boot to the shell and power off", the same for Mirrorball and QEMU.
 */
function bootAndPowerOff(command: string, args: string[], timeoutSeconds: number): Promise<Measurement> {
  let agent: AgentProtocol | undefined;
  return measure(command, args, {
    timeoutSeconds,
    interact: (output, type) => {
      agent ??= new AgentProtocol({ send: type });
      const asked = agent.ready;
      agent.feed(output);
      if (!asked && agent.ready) agent.exec('poweroff -f').catch(() => {});
    },
  });
}

async function bootBench(repeat: number): Promise<Row | string> {
  const guest = findBuiltGuest();
  if (guest === undefined) return 'boot: skipped, no guest built (run `mirrorball guest build`)';
  const reached = (who: string, m: Measurement): Measurement => {
    if (!m.output.includes(READY_MARKER)) throw new BenchError(`boot: ${who} never reached the agent: ${lastLine(m.output)}`);
    return m;
  };
  const [ours, qemu] = await alternate('boot', repeat,
    async () => reached('mirrorball', await bootAndPowerOff(process.execPath, [MIRRORBALL, 'run', '--kernel', guest.kernel, '--initrd', guest.initramfs, '--append', BOOT_APPEND], 1800)),
    async () => reached('qemu', await bootAndPowerOff(QEMU, ['-machine', 'virt', '-smp', '1', '-m', '512M', '-bios', QEMU_FIRMWARE, '-kernel', guest.kernel,
      '-initrd', guest.initramfs, '-append', BOOT_APPEND, '-nographic'], 600)));
  return { bench: `boot to agent, power off (1 hart; ${describeGuestKernel(guest.dir)})`, mirrorball: ours, qemu };
}

function lastLine(text: string): string {
  return text.trim().split('\n').pop() ?? '';
}

function kib(value: number | undefined): string {
  return value === undefined ? 'n/a' : `${(value / 1024).toFixed(0)} MiB`;
}

function report(rows: Row[]): string {
  const lines = [
    '| bench | mirrorball s | qemu s | time ratio (mirrorball/qemu) | mirrorball MIPS | mirrorball RSS | qemu RSS | RSS ratio |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const ours = spread(r.mirrorball.map((m) => m.seconds)).median;
    const theirs = spread(r.qemu.map((m) => m.seconds)).median;
    const peak = (runs: Measurement[]): number | undefined => (runs.every((m) => m.peakKiB !== undefined) ? spread(runs.map((m) => m.peakKiB!)).median : undefined);
    const [ourPeak, theirPeak] = [peak(r.mirrorball), peak(r.qemu)];
    const mips = r.instructions === undefined ? 'n/a' : (r.instructions / ours / 1e6).toFixed(1);
    const rss = ourPeak !== undefined && theirPeak !== undefined ? (ourPeak / theirPeak).toFixed(2) : 'n/a';
    lines.push(`| ${r.bench} | ${formatSpread(r.mirrorball.map((m) => m.seconds), 2)} | ${formatSpread(r.qemu.map((m) => m.seconds), 2)} | ${(ours / theirs).toFixed(1)} | ` +
      `${mips} | ${kib(ourPeak)} | ${kib(theirPeak)} | ${rss} |`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const parsed = parseBenchArgs(process.argv.slice(2));
  if (parsed === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  const args: BenchOptions = parsed;
  const wants = (part: string): boolean => args.only === undefined || args.only === part;
  if (args.only === 'net') {
    const guest = findBuiltGuest();
    if (guest === undefined) throw new BenchError('net: no guest built (run `mirrorball guest build`)');
    if (!onPath(QEMU) || !onPath('curl')) throw new BenchError(`net needs ${QEMU} and curl`);
    process.stderr.write('bench: net...\n');
    process.stdout.write(`${await netBench(guest, MIRRORBALL, QEMU, QEMU_FIRMWARE, args.repeat)}\n`);
    process.stdout.write(`(each figure the median of ${args.repeat} transfer${args.repeat === 1 ? '' : 's'} in one boot, with the range; loopback; the guest's are timed from the host, less an empty command's round trip)\n`);
    return;
  }
  if (args.only === 'web') {
    if (findBuiltGuest() === undefined) throw new BenchError('web: no guest built (run `mirrorball guest build`)');
    process.stderr.write('bench: web...\n');
    process.stdout.write(`${await webTabBench(MIRRORBALL, args.repeat)}\n`);
    process.stdout.write(`(the built guest from a cold start to its shell prompt; each figure the median of ${args.repeat} run${args.repeat === 1 ? '' : 's'}, with the range, ` +
      'the two sides alternating; `run` timed from its spawn, the tab from opening the page in a fresh browser context)\n');
    return;
  }
  if (args.only === 'threads') {
    const guest = findBuiltGuest();
    if (guest === undefined) throw new BenchError('threads: no guest built (run `mirrorball guest build`)');
    process.stdout.write(`${await threadsBench(guest, MIRRORBALL, args.repeat)}\n`);
    return;
  }
  if (args.only === 'hosts') {
    const guest = findBuiltGuest();
    if (guest === undefined) throw new BenchError('hosts: no guest built (run `mirrorball guest build`)');
    process.stdout.write(`${await hostsBench(guest, args.repeat)}\n`);
    return;
  }
  if (args.only === 'hosts-disk') {
    const guest = findBuiltGuest();
    if (guest === undefined) throw new BenchError('hosts-disk: no guest built (run `mirrorball guest build`)');
    process.stdout.write(`${await hostsDiskBench(MIRRORBALL, guest, args.repeat)}\n`);
    return;
  }
  if (args.only === 'up-threads') {
    if (findBuiltGuest() === undefined) throw new BenchError('up-threads: no guest built (run `mirrorball guest build`)');
    process.stdout.write(`${await upThreadsBench(MIRRORBALL, args.repeat)}\n`);
    return;
  }
  if (args.only === 'dashboard') {
    if (findBuiltGuest() === undefined) throw new BenchError('dashboard: no guest built (run `mirrorball guest build`)');
    process.stdout.write(`${await dashboardBench(args.repeat)}\n`);
    return;
  }
  if ((wants('cpu') || wants('boot')) && !onPath(QEMU)) {
    throw new BenchError(`${QEMU} is not installed (apt-get install qemu-system-misc): it is the reference`);
  }
  const rows: Row[] = [];
  const timingRows: TimingRow[] = [];
  const notes: string[] = [];
  if (args.only === undefined || args.only === 'cpu') {
    process.stderr.write('bench: cpu...\n');
    rows.push(await cpuBench(args.iterations, args.repeat));
  }
  if (args.only === undefined || args.only === 'boot') {
    process.stderr.write('bench: boot...\n');
    const row = await bootBench(args.repeat);
    if (typeof row === 'string') notes.push(row); else rows.push(row);
  }
  if (wants('timing')) {
    process.stderr.write('bench: timing vs fast...\n');
    timingRows.push(await timingPair('cpu', args.iterations, args.repeat));
    timingRows.push(await timingPair('mem', MEM_ROUNDS, args.repeat));
  }
  const runs = args.repeat === 1 ? '' : ` Each figure is the median of ${args.repeat} runs, with the range; the two sides ran alternately.`;
  if (rows.length > 0) {
    process.stdout.write(`${report(rows)}\n`);
    process.stdout.write(`(MIPS counts host wall time including process start; QEMU uses TCG on one thread.${runs})\n`);
  }
  for (const note of notes) process.stdout.write(`${note}\n`);
  if (timingRows.length > 0) {
    process.stdout.write(`${timingReport(timingRows)}\n`);
    process.stdout.write(`(timing mode against fast mode, same program and machine; seconds are the run's own host-seconds, without process start.${runs})\n`);
  }
  if (args.json !== undefined) writeFileSync(args.json, `${JSON.stringify({ repeat: args.repeat, rows, timing: timingRows, notes }, null, 2)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = error instanceof BenchUsageError ? USAGE_STATUS : 1;
});
