// `npm run bench`: Mirrorball against QEMU (the reference), side by side in the same run, as ratios.
//
//   cpu   a bare-metal CPU-bound program (src/bench/programs/cpu.c) to its HTIF exit: time, MIPS, peak RSS
//   boot  the built guest from power-on to its agent, then `poweroff -f` typed on the console, 1 hart
//
// Options: --only cpu|boot, --iterations N (cpu rounds, default 100), --json FILE (also write the results).

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
      default: throw new BenchError(`unknown option '${argv[i]}' (options: --only cpu|boot, --iterations N, --json FILE)`);
    }
  }
  if (out.only !== undefined && out.only !== 'cpu' && out.only !== 'boot') throw new BenchError(`--only takes cpu or boot, not '${out.only}'`);
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
  if (!onPath(QEMU)) throw new BenchError(`${QEMU} is not installed (apt-get install qemu-system-misc): it is the reference`);
  const rows: Row[] = [];
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
  process.stdout.write(`${report(rows)}\n`);
  for (const note of notes) process.stdout.write(`${note}\n`);
  process.stdout.write('(MIPS counts host wall time including process start; QEMU uses TCG on one thread.)\n');
  if (args.json !== undefined) writeFileSync(args.json, `${JSON.stringify({ rows, notes }, null, 2)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
