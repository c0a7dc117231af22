// `npm run bench` options, and the median and range of repeated runs.

export const PARTS = ['cpu', 'boot', 'timing', 'net', 'web', 'threads', 'up-threads', 'dashboard', 'hosts', 'hosts-disk'] as const;
export type Part = (typeof PARTS)[number];

export const DEFAULT_ITERATIONS = 100;
const MAX_REPEAT = 99;

export const USAGE = `Usage: npm run bench -- [options]

Mirrorball against qemu-system-riscv64, side by side in the same run: time and memory ratios.
  cpu      a CPU-bound bare-metal program to its exit (with Mirrorball's MIPS)
  boot     the built guest from power-on to its agent, then power-off (1 hart)
  timing   timing mode against fast mode: the CPU-bound program and a memory-bound one
  net      TCP throughput through the user network against QEMU's slirp, both ways (only with --only net)
  web      the built guest to its shell prompt in a browser tab against \`mirrorball run\`, 1 and 2 harts
           (only with --only web; Debian's chromium)
  threads  the parallel raytrace in Linux on 2 harts, on 1 host thread and on 2, with the host's cores
           calibrated (no QEMU; only with --only threads)
  hosts    Linux on 2 harts to its shell prompt, plain and over 2 host processes (--hosts 2), with the
           DSM's faults, round trips and most-bounced pages (no QEMU; only with --only hosts)
  hosts-disk  a disk read and written by a process on hart 1, plain and over 2 host processes, with what
           the DMA asked of the DSM (no QEMU; only with --only hosts-disk)

  up-threads  eight VMs of the built guest under \`up\` to their shells, on 1 host thread and on 2
           (\`--threads\`), with the host's cores calibrated (only with --only up-threads)

Options:
  --only cpu|boot|timing|net|web|threads|up-threads|dashboard|hosts|hosts-disk  run one bench (default: cpu, boot and timing)
  --iterations N          rounds of the CPU-bound program, in cpu and in timing (default ${DEFAULT_ITERATIONS});
                          it makes that program longer, it does not repeat anything
  --repeat N              run each bench N times (Mirrorball and QEMU, or fast and timing mode,
                          alternating) and report the median with the range (default 1)
  --json FILE             also write every run's figures to FILE
  -h, --help              this text
`;

export interface BenchOptions {
  only?: Part;
  iterations: number;
  repeat: number;
  json?: string;
}

/** A mistake on the command line: one line, exit status 2. */
export class BenchUsageError extends Error {}

function positive(text: string, option: string, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < 1 || n > max) {
    throw new BenchUsageError(`${option} takes an integer from 1${max === Number.MAX_SAFE_INTEGER ? '' : ` to ${max}`}, not '${text}'`);
  }
  return n;
}

/** The command line after `npm run bench --`; `'help'` for -h/--help. */
export function parseBenchArgs(argv: readonly string[]): BenchOptions | 'help' {
  const out: BenchOptions = { iterations: DEFAULT_ITERATIONS, repeat: 1 };
  for (let i = 0; i < argv.length; i++) {
    const option = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new BenchUsageError(`${option} needs a value`);
      return v;
    };
    switch (option) {
      case '-h':
      case '--help':
        return 'help';
      case '--only': {
        const part = value();
        if (!(PARTS as readonly string[]).includes(part)) throw new BenchUsageError(`--only takes ${PARTS.join(', ')}, not '${part}'`);
        out.only = part as Part;
        break;
      }
      case '--iterations': out.iterations = positive(value(), '--iterations'); break;
      case '--repeat': out.repeat = positive(value(), '--repeat', MAX_REPEAT); break;
      case '--json': out.json = value(); break;
      default: throw new BenchUsageError(`unknown option '${option}' (see npm run bench -- --help)`);
    }
  }
  return out;
}

export interface Spread {
  median: number;
  min: number;
  max: number;
}

/** The median (the mean of the middle two for an even count) and the range of some runs. */
export function spread(values: readonly number[]): Spread {
  if (values.length === 0) throw new RangeError('no runs');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]! };
}

/** "1.23" for one run, "1.23 (1.20–1.31)" for several: the median and the range. */
export function formatSpread(values: readonly number[], digits: number): string {
  const s = spread(values);
  return values.length === 1 ? s.median.toFixed(digits) : `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;
}
