// `npm run fuzz -- --target T --seconds N`: runs fuzz targets long and prints cases, rate, RSS and any shrunk failure.

import { formatReport, runFuzz, type FuzzReport } from './harness.js';
import { TARGETS } from './targets/index.js';

const USAGE = `usage: npm run fuzz -- [--target NAME[,NAME…]|all] [--seconds N] [--cases N] [--seed N] [--json]
targets: ${TARGETS.map((t) => t.name).join(', ')}`;

function parse(argv: string[]): { targets: string[]; seconds: number; cases?: number; seed?: number; json: boolean } {
  const options = { targets: ['all'], seconds: 60, cases: undefined as number | undefined, seed: undefined as number | undefined, json: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    const number = (text: string): number => {
      const n = Number(text);
      if (!Number.isFinite(n) || n < 0) throw new Error(`${arg}: not a number: '${text}'`);
      return n;
    };
    if (arg === '--target') options.targets = next().split(',');
    else if (arg === '--seconds') options.seconds = number(next());
    else if (arg === '--cases') options.cases = number(next());
    else if (arg === '--seed') options.seed = number(next());
    else if (arg === '--json') options.json = true;
    else if (arg === '--help' || arg === '-h') { process.stdout.write(`${USAGE}\n`); process.exit(0); }
    else throw new Error(`unknown argument '${arg}'`);
  }
  return options;
}

async function main(): Promise<void> {
  let options;
  try {
    options = parse(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`fuzz: ${(error as Error).message}\n${USAGE}\n`);
    process.exitCode = 2;
    return;
  }
  const names = options.targets.includes('all') ? TARGETS.map((t) => t.name) : options.targets;
  const unknown = names.filter((n) => !TARGETS.some((t) => t.name === n));
  if (unknown.length > 0) {
    process.stderr.write(`fuzz: no target ${unknown.join(', ')}\n${USAGE}\n`);
    process.exitCode = 2;
    return;
  }
  const reports: FuzzReport[] = [];
  for (const name of names) {
    const target = TARGETS.find((t) => t.name === name)!;
    process.stderr.write(`${name}: ${target.surface} (${options.seconds} s)\n`);
    const report = await runFuzz(target, { seconds: options.seconds, maxCases: options.cases, seed: options.seed });
    reports.push(report);
    process.stdout.write(`${formatReport(report)}\n`);
  }
  if (options.json) process.stdout.write(`${JSON.stringify(reports, null, 2)}\n`);
  const failed = reports.filter((r) => r.failure !== undefined || r.problems.length > 0);
  const total = reports.reduce((n, r) => n + r.cases, 0);
  process.stdout.write(`${total} cases over ${reports.length} targets; ${failed.length === 0 ? 'no failure' : `FAILED: ${failed.map((r) => r.target).join(', ')}`}\n`);
  if (failed.length > 0) process.exitCode = 1;
}

await main();
