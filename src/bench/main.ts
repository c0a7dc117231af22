// `npm run bench`: Mirrorball against QEMU (the reference), side by side in the same run, as ratios.
//
//   cpu   a bare-metal CPU-bound program (src/bench/programs/cpu.c) to its HTIF exit: time, MIPS, peak RSS
//   boot  the built guest from power-on to its agent, then `poweroff -f` typed on the console, 1 hart
//   timing  the cpu program and a memory-bound one (src/bench/programs/mem.c: a 4 MiB working set, pointer
//         chasing and streaming) in fast mode and in timing mode: the slowdown against the 3x target
//
// Options: --only cpu|boot|timing, --iterations N (cpu rounds, default 100), --json FILE (also write the results).

import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { AgentProtocol } from '../guest/agent-protocol.js';
import { findBuiltGuest } from '../guest/artifacts.js';
import { BenchError, measure, onPath, type Measurement } from './measure.js';
import { buildProgram } from './programs.js';

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
const PARTS = ['cpu', 'boot', 'timing'];

interface Row {
  bench: string;
  mirrorball: Measurement;
  qemu: Measurement;
  /** Guest instructions Mirrorball executed (from --stats), when known. */
  instructions?: number;
}

function parseArgs(argv: string[]): { only?: string; iterations: number; json?: string } {
  const out: { only?: string; iterations: number; json?: string } = { iterations: 100 };
  for (let i = 0; i < argv.length; i++) {
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new BenchError(`${argv[i - 1]} needs a value`);
      return v;
    };
    switch (argv[i]) {
      case '--only': out.only = value(); break;
      case '--iterations': out.iterations = Number.parseInt(value(), 10); break;
      case '--json': out.json = value(); break;
      default: throw new BenchError(`unknown option '${argv[i]}' (options: --only cpu|boot|timing, --iterations N, --json FILE)`);
    }
  }
  if (out.only !== undefined && !PARTS.includes(out.only)) throw new BenchError(`--only takes ${PARTS.join(', ')}, not '${out.only}'`);
  if (!Number.isInteger(out.iterations) || out.iterations < 1) throw new BenchError('--iterations must be a positive integer');
  return out;
}

async function cpuBench(iterations: number): Promise<Row> {
  const elf = buildProgram('cpu', iterations);
  const ours = await measure(process.execPath, [MIRRORBALL, 'run', '--stats', '--elf', elf], { timeoutSeconds: 3600 });
  if (ours.status !== 0) throw new BenchError(`cpu: mirrorball exited with ${ours.status}: ${lastLine(ours.output)}`);
  const qemu = await measure(QEMU, ['-machine', 'spike', '-bios', 'none', '-kernel', elf, '-nographic', '-m', '128M'], { timeoutSeconds: 600 });
  if (qemu.status !== 0) throw new BenchError(`cpu: qemu exited with ${qemu.status}: ${lastLine(qemu.output)}`);
  const match = /instructions=(\d+)/.exec(ours.output);
  return { bench: `cpu (${iterations} rounds)`, mirrorball: ours, qemu, instructions: match === null ? undefined : Number(match[1]) };
}

interface TimingRow {
  bench: string;
  fast: Measurement;
  timing: Measurement;
  instructions: number;
  /** Simulation seconds (the run's own host-seconds, without process start) in each mode. */
  fastSeconds: number;
  timingSeconds: number;
}

/** Runs one program in fast mode and in timing mode, one after the other, and checks both passed. */
async function timingPair(name: string, rounds: number): Promise<TimingRow> {
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
  const [fast, instructions, fastSeconds] = await run(false);
  const [timing, timedInstructions, timingSeconds] = await run(true);
  if (timedInstructions !== instructions) throw new BenchError(`timing: ${name} ran ${instructions} instructions in fast mode, ${timedInstructions} in timing mode`);
  return { bench: `${name} (${rounds} rounds)`, fast, timing, instructions, fastSeconds, timingSeconds };
}

function timingReport(rows: TimingRow[]): string {
  const lines = [
    `| workload | instructions | fast s | timing s | fast MIPS | timing MIPS | slowdown (timing/fast) | target ≤ ${TIMING_TARGET}× |`,
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const slowdown = r.timingSeconds / r.fastSeconds;
    const mips = (seconds: number): string => (r.instructions / seconds / 1e6).toFixed(1);
    lines.push(`| ${r.bench} | ${r.instructions} | ${r.fastSeconds.toFixed(2)} | ${r.timingSeconds.toFixed(2)} | ${mips(r.fastSeconds)} | ` +
      `${mips(r.timingSeconds)} | ${slowdown.toFixed(2)}× | ${slowdown <= TIMING_TARGET ? 'met' : 'MISSED'} |`);
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

async function bootBench(): Promise<Row | string> {
  const guest = findBuiltGuest();
  if (guest === undefined) return 'boot: skipped, no guest built (run `mirrorball guest build`)';
  const ours = await bootAndPowerOff(process.execPath, [MIRRORBALL, 'run', '--kernel', guest.kernel, '--initrd', guest.initramfs, '--append', BOOT_APPEND], 1800);
  const qemu = await bootAndPowerOff(QEMU, ['-machine', 'virt', '-smp', '1', '-m', '512M', '-bios', QEMU_FIRMWARE, '-kernel', guest.kernel,
    '-initrd', guest.initramfs, '-append', BOOT_APPEND, '-nographic'], 600);
  for (const [who, m] of [['mirrorball', ours], ['qemu', qemu]] as const) {
    if (!m.output.includes(READY_MARKER)) throw new BenchError(`boot: ${who} never reached the agent: ${lastLine(m.output)}`);
  }
  return { bench: 'boot to agent, power off (1 hart)', mirrorball: ours, qemu };
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
    const mips = r.instructions === undefined ? 'n/a' : (r.instructions / r.mirrorball.seconds / 1e6).toFixed(1);
    const rss = r.mirrorball.peakKiB !== undefined && r.qemu.peakKiB !== undefined ? (r.mirrorball.peakKiB / r.qemu.peakKiB).toFixed(2) : 'n/a';
    lines.push(`| ${r.bench} | ${r.mirrorball.seconds.toFixed(2)} | ${r.qemu.seconds.toFixed(2)} | ${(r.mirrorball.seconds / r.qemu.seconds).toFixed(1)} | ` +
      `${mips} | ${kib(r.mirrorball.peakKiB)} | ${kib(r.qemu.peakKiB)} | ${rss} |`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const wants = (part: string): boolean => args.only === undefined || args.only === part;
  if ((wants('cpu') || wants('boot')) && !onPath(QEMU)) {
    throw new BenchError(`${QEMU} is not installed (apt-get install qemu-system-misc): it is the reference`);
  }
  const rows: Row[] = [];
  const timingRows: TimingRow[] = [];
  const notes: string[] = [];
  if (args.only === undefined || args.only === 'cpu') {
    process.stderr.write('bench: cpu...\n');
    rows.push(await cpuBench(args.iterations));
  }
  if (args.only === undefined || args.only === 'boot') {
    process.stderr.write('bench: boot...\n');
    const row = await bootBench();
    if (typeof row === 'string') notes.push(row); else rows.push(row);
  }
  if (wants('timing')) {
    process.stderr.write('bench: timing vs fast...\n');
    timingRows.push(await timingPair('cpu', args.iterations));
    timingRows.push(await timingPair('mem', MEM_ROUNDS));
  }
  if (rows.length > 0) {
    process.stdout.write(`${report(rows)}\n`);
    process.stdout.write('(MIPS counts host wall time including process start; QEMU uses TCG on one thread.)\n');
  }
  for (const note of notes) process.stdout.write(`${note}\n`);
  if (timingRows.length > 0) {
    process.stdout.write(`${timingReport(timingRows)}\n`);
    process.stdout.write('(timing mode against fast mode, same program and machine; seconds are the run\'s own host-seconds, without process start.)\n');
  }
  if (args.json !== undefined) writeFileSync(args.json, `${JSON.stringify({ rows, timing: timingRows, notes }, null, 2)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
