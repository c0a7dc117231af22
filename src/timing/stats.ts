// The statistics registry: named scalars and vectors with description and unit, written as gem5 stats.txt and as JSON.

/** Units as gem5 names them (src/base/stats/units.hh); any other word is allowed. */
export type StatUnit = 'Count' | 'Cycle' | 'Tick' | 'Second' | 'Byte' | 'Ratio' | 'Unspecified' | (string & {});

/** One statistic's value at the time of a snapshot. */
export type StatSample =
  | { kind: 'scalar'; name: string; description: string; unit: StatUnit; value: number }
  | { kind: 'vector'; name: string; description: string; unit: StatUnit; labels: string[]; values: number[]; total: number };

interface Entry {
  kind: 'scalar' | 'vector';
  name: string;
  description: string;
  unit: StatUnit;
  /** A function for a vector whose labels change (a series that grows): checked at each snapshot. */
  labels: readonly string[] | (() => readonly string[]);
  read: () => number | ArrayLike<number>;
}

/** A statistic the registry owns: code bumps `value`, and `reset()` zeroes it. */
export interface Counter {
  value: number;
}

/** Dotted names of identifiers, as gem5's (`system.cpu0.cache.hits`). */
const NAME = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;
const LABEL = /^[A-Za-z0-9_]+$/;

/** `labels` if they are letters, digits and _, each once; else throws. */
function checkLabels(name: string, labels: readonly string[]): readonly string[] {
  const bad = labels.filter((label) => !LABEL.test(label));
  if (bad.length > 0) throw new Error(`statistic ${name}: labels must be letters, digits and _, not ${bad.map((l) => `'${l}'`).join(', ')}`);
  if (new Set(labels).size !== labels.length) throw new Error(`statistic ${name}: labels must be distinct`);
  return labels;
}

/**
 * Statistics are registered once with a function that reads their current value, so the hot paths keep
 * their counts in their own typed arrays and pay nothing for being observable. Output is ordered by name
 * (code-point order), so two runs that register the same statistics in any order write identical files.
 */
export class StatsRegistry {
  private readonly entries = new Map<string, Entry>();
  private readonly resets: (() => void)[] = [];

  /** A single number, read when a snapshot is taken. */
  scalar(name: string, description: string, unit: StatUnit, read: () => number): void {
    this.add({ kind: 'scalar', name, description, unit, labels: [], read });
  }

  /**
   * Numbers with one label each (e.g. per node); `read` must return `labels.length` values. `labels` may be a
   * function, read at each snapshot, for a vector that grows (a series over time).
   */
  vector(name: string, description: string, unit: StatUnit, labels: readonly string[] | (() => readonly string[]), read: () => ArrayLike<number>): void {
    if (typeof labels !== 'function') checkLabels(name, labels);
    this.add({ kind: 'vector', name, description, unit, labels: typeof labels === 'function' ? labels : [...labels], read });
  }

  /** A scalar the registry holds; `reset()` zeroes it. */
  counter(name: string, description: string, unit: StatUnit): Counter {
    const counter = { value: 0 };
    this.scalar(name, description, unit, () => counter.value);
    this.onReset(() => { counter.value = 0; });
    return counter;
  }

  /** Runs `zero` on `reset()`: the owner of externally kept counts zeroes them there. */
  onReset(zero: () => void): void {
    this.resets.push(zero);
  }

  /** Zeroes every resettable statistic (`mbctl stats reset`, the start of a region of interest). */
  reset(): void {
    for (const zero of this.resets) zero();
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** The current value of one scalar statistic; throws if there is no scalar of that name. */
  read(name: string): number {
    const e = this.entries.get(name);
    if (e === undefined || e.kind !== 'scalar') throw new Error(`no scalar statistic ${name}`);
    return e.read() as number;
  }

  /** Every statistic's current value, sorted by name. */
  snapshot(): StatSample[] {
    const names = [...this.entries.keys()].sort();
    return names.map((name): StatSample => {
      const e = this.entries.get(name)!;
      const value = e.read();
      if (e.kind === 'scalar') return { kind: 'scalar', name, description: e.description, unit: e.unit, value: value as number };
      const values = Array.from(value as ArrayLike<number>);
      const labels = typeof e.labels === 'function' ? checkLabels(name, e.labels()) : e.labels;
      if (values.length !== labels.length) throw new Error(`statistic ${name} read ${values.length} values for ${labels.length} labels`);
      const total = values.reduce((sum, v) => sum + v, 0);
      return { kind: 'vector', name, description: e.description, unit: e.unit, labels: [...labels], values, total };
    });
  }

  private add(entry: Entry): void {
    if (!NAME.test(entry.name)) throw new Error(`statistic name '${entry.name}' must be dotted identifiers (a.b_c.d2)`);
    if (this.entries.has(entry.name)) throw new Error(`statistic ${entry.name} is registered twice`);
    this.entries.set(entry.name, entry);
  }
}

/** gem5's column widths (src/base/stats/text.cc): name 40, value 12, pdf and cdf 10 each. */
const NAME_WIDTH = 40;
const VALUE_WIDTH = 12;
const PERCENT_WIDTH = 10;
/** gem5 prints non-integral values with 6 decimals. */
const PRECISION = 6;
export const STATS_BEGIN = '---------- Begin Simulation Statistics ----------';
export const STATS_END = '---------- End Simulation Statistics   ----------';

/** A value as gem5 prints it: integers plainly, others with 6 decimals, nan and inf spelled out. */
export function formatStatValue(v: number): string {
  if (Number.isNaN(v)) return 'nan';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
  return Number.isInteger(v) ? String(v) : v.toFixed(PRECISION);
}

function percent(part: number, whole: number): string {
  return whole === 0 ? 'nan%' : `${((part / whole) * 100).toFixed(2)}%`;
}

function line(name: string, value: string, pdf: string, cdf: string, description: string, unit: string): string {
  const columns = `${name.padEnd(NAME_WIDTH)} ${value.padStart(VALUE_WIDTH)} ${pdf.padStart(PERCENT_WIDTH)} ${cdf.padStart(PERCENT_WIDTH)}`;
  return `${columns} # ${description} (${unit})`;
}

/**
 * gem5's stats.txt: one line `name value # description (unit)` per scalar; a vector prints one line
 * per label (`name::label value pdf cdf`) and a `name::total` line, all between the begin/end markers.
 */
export function formatStatsText(samples: readonly StatSample[]): string {
  const lines = ['', STATS_BEGIN];
  for (const s of samples) {
    if (s.kind === 'scalar') {
      lines.push(line(s.name, formatStatValue(s.value), '', '', s.description, s.unit));
      continue;
    }
    let running = 0;
    s.labels.forEach((label, i) => {
      const v = s.values[i]!;
      running += v;
      lines.push(line(`${s.name}::${label}`, formatStatValue(v), percent(v, s.total), percent(running, s.total), s.description, s.unit));
    });
    lines.push(line(`${s.name}::total`, formatStatValue(s.total), '', '', s.description, s.unit));
  }
  lines.push('', STATS_END, '');
  return lines.join('\n');
}

/**
 * The same statistics as one JSON object keyed by name (in name order): scalars as
 * `{value, unit, description}`, vectors as `{values: {label: value}, total, unit, description}`.
 * JSON has no NaN or Infinity; they are written as null.
 */
export function formatStatsJson(samples: readonly StatSample[]): string {
  const out: Record<string, unknown> = {};
  for (const s of samples) {
    if (s.kind === 'scalar') {
      out[s.name] = { value: s.value, unit: s.unit, description: s.description };
    } else {
      const values: Record<string, number> = {};
      s.labels.forEach((label, i) => { values[label] = s.values[i]!; });
      out[s.name] = { values, total: s.total, unit: s.unit, description: s.description };
    }
  }
  return `${JSON.stringify(out, null, 2)}\n`;
}
