// Writes a run's output directory: config.json (every parameter), stats.txt (gem5 format) and stats.json.

import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StatsDump } from '../board/simulation.js';
import { formatStatsJson, formatStatsText, type StatSample, type StatsRegistry } from '../timing/stats.js';
import { makePrivateDirectory, PRIVATE_FILE_MODE } from './private-files.js';

export const CONFIG_FILE = 'config.json';
export const STATS_TEXT_FILE = 'stats.txt';
export const STATS_JSON_FILE = 'stats.json';
/** A run over several hosts: each host's DSM and relay counters (docs/giantvm.md). */
export const DSM_JSON_FILE = 'dsm.json';
export const DUMPS_JSON_FILE = 'dumps.json';

/** JSON with object keys sorted at every level, so that equal configurations give identical files. */
export function sortedJson(value: unknown): string {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (v !== null && typeof v === 'object') {
      return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sort((v as Record<string, unknown>)[k])]));
    }
    return v;
  };
  return `${JSON.stringify(sort(value), null, 2)}\n`;
}

/**
 * Creates `directory` if needed and writes the three files from one snapshot of `stats`. The dumps the
 * guest asked for come first in stats.txt, one gem5 Begin/End block each (its first line `dump.tag`), and
 * the snapshot at exit last; they are also in dumps.json (written only when there are dumps), while
 * stats.json holds the snapshot at exit. Each file is written beside its final name and renamed over it,
 * so a reader never sees half a file. A directory it creates is 0700 and the files are 0600: a run's
 * statistics are its user's.
 */
export function writeStatsOutput(directory: string, config: unknown, stats: StatsRegistry, dumps: readonly StatsDump[] = []): void {
  makePrivateDirectory(directory);
  const samples = stats.snapshot();
  const tagged = dumps.map((d): StatSample[] => [
    { kind: 'scalar', name: 'dump.tag', description: 'Tag the guest gave this dump (mbctl stats dump TAG)', unit: 'Count', value: d.tag },
    ...d.samples,
  ]);
  const files: [string, string][] = [
    [CONFIG_FILE, sortedJson(config)],
    [STATS_TEXT_FILE, [...tagged, samples].map(formatStatsText).join('')],
    [STATS_JSON_FILE, formatStatsJson(samples)],
  ];
  if (dumps.length > 0) {
    const entries = dumps.map((d) => ({ tag: d.tag, stats: JSON.parse(formatStatsJson(d.samples)) as unknown }));
    files.push([DUMPS_JSON_FILE, `${JSON.stringify(entries, null, 2)}\n`]);
  }
  for (const [name, text] of files) writeFileWhole(join(directory, name), text, PRIVATE_FILE_MODE);
}

/** Writes `text` beside `path` and renames it over: a reader never sees half a file, and the file is new, of `mode`. */
export function writeFileWhole(path: string, text: string, mode = 0o666): void {
  rmSync(`${path}.partial`, { force: true }); // one left by a crash would keep its own mode
  writeFileSync(`${path}.partial`, text, { mode });
  renameSync(`${path}.partial`, path);
}
