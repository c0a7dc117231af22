// The fuzz harness: runs one surface's target for a time or a number of cases with fast-check, counts cases,
// watches the host process's memory, and shrinks the first failing case (docs/fuzzing.md).

import fc from 'fast-check';
import { performance } from 'node:perf_hooks';

/**
 * What the cases of one target share (a monitor with a canary VM, a control server): made by `FuzzTarget.open`,
 * made again after a case failed (its state may be what failed), closed at the end.
 */
export interface FuzzSession<Case> {
  /** Runs one case; throws (or rejects) when an invariant is broken. */
  run(c: Case): void | Promise<void>;
  /** Invariants over the whole run, checked at the end (and after each batch). */
  check?(): void;
  close?(): void | Promise<void>;
}

/** One surface a hostile guest or host user can reach. */
export interface FuzzTarget<Case = unknown> {
  readonly name: string;
  /** One line: what the fuzzer stands in for. */
  readonly surface: string;
  readonly cases: fc.Arbitrary<Case>;
  open(): FuzzSession<Case> | Promise<FuzzSession<Case>>;
  /** Cases run asynchronously (sockets): each case is awaited. */
  readonly async?: boolean;
}

export interface FuzzOptions {
  /** Stop after this long (seconds); default 5. */
  seconds?: number;
  /** Stop after this many cases (whichever comes first). */
  maxCases?: number;
  seed?: number;
  /** Cases per fast-check run: the seed moves on between batches. */
  batch?: number;
  /** RSS growth allowed after warm-up (MiB); default 64. */
  rssLimitMiB?: number;
}

export interface FuzzFailure {
  /** The shrunk case, as fast-check prints it (paste into a regression test). */
  counterexample: string;
  error: string;
  seed: number;
  path: string | null;
  shrinks: number;
}

export interface FuzzReport {
  target: string;
  cases: number;
  seconds: number;
  casesPerSecond: number;
  /** The slowest case (ms): a case never hangs, so this stays far below a second. */
  slowestCaseMs: number;
  /** RSS after warm-up, at the end, and the growth (MiB). */
  rssStartMiB: number;
  rssEndMiB: number;
  rssGrowthMiB: number;
  failure?: FuzzFailure;
  /** What broke beyond a case: the RSS limit, a whole-run invariant. */
  problems: string[];
}

const MiB = 2 ** 20;
const DEFAULT_BATCH = 200;
/** RSS is first sampled once this share of the time has gone (the JIT's and heaps' warm-up). */
const WARM_UP_SHARE = 0.1;

function rssMiB(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().rss / MiB;
}

/** Runs `target` under `options`; never throws for a failing case (the report says), only for a broken harness. */
export async function runFuzz<Case>(target: FuzzTarget<Case>, options: FuzzOptions = {}): Promise<FuzzReport> {
  const seconds = options.seconds ?? 5;
  const maxCases = options.maxCases ?? Infinity;
  const batch = options.batch ?? DEFAULT_BATCH;
  const baseSeed = options.seed ?? Date.now() % 2 ** 31;
  const start = performance.now();
  const deadline = start + seconds * 1000;
  let session: FuzzSession<Case> | undefined;
  let cases = 0;
  let counting = true;
  let slowest = 0;
  let rssStart: number | undefined;
  const problems: string[] = [];
  const open = async (): Promise<FuzzSession<Case>> => (session ??= await target.open());
  const discard = async (): Promise<void> => {
    const old = session;
    session = undefined;
    await old?.close?.();
  };
  const timed = (began: number): void => {
    if (counting) {
      cases++;
      slowest = Math.max(slowest, performance.now() - began);
    }
  };
  // A failing case may leave the session broken: the next case (a shrink) starts from a fresh one.
  const asyncProperty = fc.asyncProperty(target.cases, async (c) => {
    const s = await open();
    const began = performance.now();
    try {
      await s.run(c);
    } catch (error) {
      await discard();
      throw error;
    } finally {
      timed(began);
    }
  });
  const syncProperty = fc.property(target.cases, (c) => {
    const s = (session ??= openSync(target));
    const began = performance.now();
    try {
      s.run(c);
    } catch (error) {
      session = undefined;
      void s.close?.();
      throw error;
    } finally {
      timed(began);
    }
  });
  let failure: FuzzFailure | undefined;
  for (let round = 0; performance.now() < deadline && cases < maxCases; round++) {
    // Batches fit the time left at the rate so far (slow targets run a few cases a batch, fast ones `batch`).
    const elapsedMs = performance.now() - start;
    const rate = cases / Math.max(1, elapsedMs);
    const fit = round === 0 ? 1 : Math.ceil(rate * (deadline - performance.now()) / 2);
    const runs = Math.max(1, Math.min(batch, maxCases - cases, fit));
    const seed = (baseSeed + round) | 0;
    const details: fc.RunDetails<[Case]> = target.async === true
      ? await fc.check(asyncProperty, { seed, numRuns: runs })
      : fc.check(syncProperty, { seed, numRuns: runs });
    if (details.failed) {
      counting = false;
      failure = {
        counterexample: details.counterexample === null ? '(none)' : fc.stringify(details.counterexample[0]),
        error: errorText(details.errorInstance),
        seed,
        path: details.counterexamplePath,
        shrinks: details.numShrinks,
      };
      break;
    }
    try {
      session?.check?.();
    } catch (error) {
      problems.push(`after ${cases} cases: ${errorText(error)}`);
      break;
    }
    if (rssStart === undefined && performance.now() - start >= WARM_UP_SHARE * seconds * 1000) rssStart = rssMiB();
  }
  await discard();
  const elapsed = (performance.now() - start) / 1000;
  const rssEnd = rssMiB();
  const rssGrowth = rssEnd - (rssStart ?? rssEnd);
  const limit = options.rssLimitMiB ?? 64;
  if (rssGrowth > limit) problems.push(`RSS grew by ${rssGrowth.toFixed(1)} MiB after warm-up (limit ${limit} MiB)`);
  return {
    target: target.name, cases, seconds: elapsed, casesPerSecond: cases / elapsed, slowestCaseMs: slowest,
    rssStartMiB: rssStart ?? rssEnd, rssEndMiB: rssEnd, rssGrowthMiB: rssGrowth, failure, problems,
  };
}

/** A synchronous target's session (its `open` must not be async). */
function openSync<Case>(target: FuzzTarget<Case>): FuzzSession<Case> {
  const s = target.open();
  if (s instanceof Promise) throw new Error(`target ${target.name}: a synchronous target's open() returned a promise`);
  return s;
}

function errorText(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}${error.stack === undefined ? '' : `\n${error.stack.split('\n').slice(1, 6).join('\n')}`}`;
  return String(error);
}

/** One line per report: cases, rate, slowest case, RSS. */
export function formatReport(r: FuzzReport): string {
  const head = `${r.target}: ${r.cases} cases in ${r.seconds.toFixed(1)} s (${Math.round(r.casesPerSecond)}/s), slowest ${r.slowestCaseMs.toFixed(1)} ms, ` +
    `RSS ${r.rssStartMiB.toFixed(0)} → ${r.rssEndMiB.toFixed(0)} MiB (${r.rssGrowthMiB >= 0 ? '+' : ''}${r.rssGrowthMiB.toFixed(1)})`;
  const lines = [head];
  if (r.failure !== undefined) {
    lines.push(`  FAILED (seed ${r.failure.seed}, path ${r.failure.path}, ${r.failure.shrinks} shrinks): ${r.failure.error}`);
    lines.push(`  shrunk case: ${r.failure.counterexample}`);
  }
  for (const p of r.problems) lines.push(`  PROBLEM: ${p}`);
  return lines.join('\n');
}
