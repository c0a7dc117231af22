// The memory experiment's table and figure (Disco's figure 6: per number of VMs, what the VMs map against
// the machine memory it takes, split by where the savings came from).

import { pagesMiB, type MemoryCaseResult } from './memory-case.js';
import type { MemoryCaseSummary, MemoryResults } from './memory.js';
import { markdownTable, stackedBarsSvg } from './report.js';

const f1 = (v: number): string => v.toFixed(1);
const withRange = (v: number, r: [number, number], digits: number): string =>
  r[0] === r[1] ? v.toFixed(digits) : `${v.toFixed(digits)} (${r[0].toFixed(digits)}–${r[1].toFixed(digits)})`;

function label(c: MemoryCaseSummary): string {
  return `${c.sharing}${c.scanCostScale === 1 ? '' : ` (scanner costs ×${c.scanCostScale})`}`;
}

export function memoryTable(results: MemoryResults): string {
  const one = (c: MemoryCaseSummary): MemoryCaseSummary | undefined =>
    results.cases.find((o) => o.sharing === c.sharing && o.scanCostScale === 1 && o.vms === Math.min(...results.cases.map((x) => x.vms)));
  const table = markdownTable(
    ['VMs', 'sharing', 'machine memory (MiB)', '× smallest', 'mapped by VMs', 'private', 'shared (one copy)', 'cache only',
      'saved: zero', 'disk', 'kernel', 'content', 'peak (MiB)', 'pmake per VM (ms)', 'vs off', 'COW breaks', 'scanner (Mcycles)', 'charged', 'idle rate\'s'],
    results.cases.map((c) => [
      c.vms, label(c), withRange(c.machineMiB, c.machineMiBRange, 1), (c.machineMiB / (one(c)?.machineMiB ?? NaN)).toFixed(2),
      f1(c.mappedMiB), f1(c.privateMiB), f1(c.sharedMiB), f1(c.cacheOnlyMiB),
      f1(c.savedMiB.zero), f1(c.savedMiB.disk), f1(c.savedMiB.kernel), f1(c.savedMiB.content), f1(c.peakMiB),
      withRange(c.pmakeMs, c.pmakeMsRange, 1), c.pmakeVsOff === undefined ? '' : withRange(c.pmakeVsOff, c.pmakeVsOffRange!, 3),
      c.cowBreaks, (c.scannerCycles / 1e6).toFixed(1), (c.scannerCharged / 1e6).toFixed(1), (c.scannerIdleCycles / 1e6).toFixed(1),
    ]),
  );
  const extra = Object.entries(results.perExtraVm).map(([s, v]) => `${s} ${v.toFixed(1)}`).join(', ');
  return table + (extra === '' ? '' : `\nMiB per extra VM, (M_max − M_min) / (max − min): ${extra}.\n`);
}

export function overcommitTable(o: NonNullable<MemoryResults['overcommit']>): string {
  const row = (r: MemoryCaseResult): (string | number)[] => {
    const finished = r.outcomes.filter((v) => v.checksum !== null).length;
    return [r.sharing, `${finished} of ${r.vms}`, r.outcomes.filter((v) => v.stopped !== null).map((v) => v.name).join(' ') || 'none',
      f1(pagesMiB(r.peakInUse)), f1(pagesMiB(r.end.inUse))];
  };
  return `Overcommit: ${o.off.vms} VMs on a machine of ${o.machineMiB} MiB\n\n` +
    markdownTable(['sharing', 'pmake finished', 'stopped (out of memory)', 'peak (MiB)', 'at the end (MiB)'], [row(o.off), row(o.content)]);
}

export const FIGURE_SEGMENTS = ['private', 'shared (one copy)', 'cache only', 'saved: zero', 'saved: disk', 'saved: kernel', 'saved: content'] as const;

/** Disco's figure 6 in our terms: per case a bar of what the VMs map; its first three parts are the machine memory in use. */
export function memoryFigureSvg(results: MemoryResults): string {
  const bars = results.cases.map((c) => ({
    label: `${c.vms} VM${c.vms === 1 ? '' : 's'}, ${label(c)}: ${c.machineMiB.toFixed(1)}`,
    segments: [c.privateMiB, c.sharedMiB, c.cacheOnlyMiB, c.savedMiB.zero, c.savedMiB.disk, c.savedMiB.kernel, c.savedMiB.content],
  }));
  return stackedBarsSvg('Memory of VMs running pmake (MiB), at the end of pmake in every VM', FIGURE_SEGMENTS, bars, {
    subtitle: 'Machine memory in use after each label: the first three parts. The savings make up the rest of what the VMs map (the bar\'s end).', digits: 1,
  });
}
