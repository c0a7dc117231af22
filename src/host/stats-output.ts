// Writes a run's output directory: config.json (every parameter), stats.txt (gem5 format) and stats.json.

import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatStatsJson, formatStatsText, type StatsRegistry } from '../timing/stats.js';

export const CONFIG_FILE = 'config.json';
export const STATS_TEXT_FILE = 'stats.txt';
export const STATS_JSON_FILE = 'stats.json';

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
 * Creates `directory` if needed and writes the three files from one snapshot of `stats`. Each file is
 * written beside its final name and renamed over it, so a reader never sees half a file.
 */
export function writeStatsOutput(directory: string, config: unknown, stats: StatsRegistry): void {
  mkdirSync(directory, { recursive: true });
  const samples = stats.snapshot();
  const files: [string, string][] = [
    [CONFIG_FILE, sortedJson(config)],
    [STATS_TEXT_FILE, formatStatsText(samples)],
    [STATS_JSON_FILE, formatStatsJson(samples)],
  ];
  for (const [name, text] of files) {
    const path = join(directory, name);
    writeFileSync(`${path}.partial`, text);
    renameSync(`${path}.partial`, path);
  }
}
