// The faults campaign's table (the campaign's figures, per kind of fault, and per injection) and its SVG histogram of recovery times.

import type { FaultsResults, Spread } from './faults.js';
import { barChartSvg, markdownTable } from './report.js';

const ms = (v: number | null): string => (v === null ? 'n/a' : v.toFixed(3));
const spreadText = (s: Spread): string => (s.count === 0 ? 'none' : `${ms(s.median)} / ${ms(s.p99)} (${s.count})`);

/** The campaign's figures, then per kind; with `perInjection`, one row per injection too. */
export function faultsTable(r: FaultsResults, perInjection = false): string {
  const summary = markdownTable(['figure', 'value'], [
    ['injections (seed)', `${r.injections} (${r.seed})`],
    ['independent VMs lost (must be 0)', r.independentVmsLost],
    ['dependent VMs lost', r.dependentVmsLost],
    ['dependent VMs kept', r.dependentVmsKept],
    ['confined VMs lost to a fault away from their node', r.confinedLostAway],
    ['survivors correct / survivors', `${r.survivorsCorrect} / ${r.survivors}`],
    ['  survivors whose checked work ended after the fault', r.survivorsCheckedAfterFault],
    ['recovery ms, median / p99 (injections)', spreadText(r.recoveryMs)],
    ['  detection ms, median / p99', spreadText(r.detectMs)],
    ['  agreement ms, median / p99', spreadText(r.agreementMs)],
    ['  cleanup ms, median / p99', spreadText(r.cleanupMs)],
    ['injections after which the monitor read nothing', r.undetected],
    ['VMs made again between injections (kept dependents stopped)', `${r.vmsReplaced} (${r.keptStopped})`],
    ['host s: boot (cached?)', `${r.host.bootSeconds.toFixed(1)} (${r.host.bootCached ? 'yes' : 'no'})`],
    ['host s per injection, median / p99 (making whole after it, median)', `${r.host.injectionSeconds.median?.toFixed(1)} / ${r.host.injectionSeconds.p99?.toFixed(1)} (${r.host.wholeSeconds.median?.toFixed(2)})`],
    ['host s in all', r.host.totalSeconds.toFixed(0)],
  ]);
  const kinds = markdownTable(['fault', 'injections', 'dependent VMs', 'VMs lost', 'recovery ms, median / p99 (detected)'],
    Object.entries(r.byKind).sort(([a], [b]) => a.localeCompare(b)).map(([kind, k]) => [kind, k.injections, k.dependents, k.vmsLost, spreadText(k.recoveryMs)]));
  let text = `${summary}\n${kinds}`;
  if (perInjection) {
    text += `\n${markdownTable(['#', 'fault', 'at (ms into work)', 'dependent (ground truth)', 'lost', 'survivors ok', 'recovery ms', 'host s'],
      r.runs.map((x) => {
        const survivors = x.vms.filter((v) => !v.lost);
        const rounds = Math.max(...x.vms.map((v) => v.rounds));
        return [x.index + 1, x.fault, x.offsetMs.toFixed(1), x.vms.filter((v) => v.dependent).map((v) => v.name).join(' ') || 'none',
          x.vms.filter((v) => v.lost).map((v) => `${v.name}${v.dependent ? '' : '!'}`).join(' ') || 'none',
          `${survivors.filter((v) => v.wrong === 0 && v.rounds === rounds).length}/${survivors.length}`, ms(x.recoveryMs), x.hostSeconds.toFixed(1)];
      }))}\nA lost VM marked ! did not depend on what failed, by the ground truth.\n`;
  }
  return text;
}

/** Upper ends of the histogram's bins (ms); the first bin is exactly 0 (within the round boundary the fault took effect at). */
const BINS = [0, 0.1, 1, 10, 100, Infinity];

function binLabel(i: number): string {
  if (i === 0) return '0 (same boundary)';
  const [lo, hi] = [BINS[i - 1]!, BINS[i]!];
  return hi === Infinity ? `> ${lo}` : `${lo} – ${hi}`;
}

/** Injections per bin of recovery time (simulated ms), and those after which nothing was read. */
export function faultsHistogramSvg(r: FaultsResults): string {
  const counts = BINS.map(() => 0);
  for (const x of r.runs) {
    if (x.recoveryMs === null) continue;
    counts[BINS.findIndex((b) => x.recoveryMs! <= b)]!++;
  }
  const bars = [...counts.map((value, i) => ({ label: binLabel(i), value, text: String(value) })), { label: 'nothing read', value: r.undetected, text: String(r.undetected) }];
  return barChartSvg(`Recovery time of ${r.injections} injected faults (seed ${r.seed})`, [
    { title: 'Injections per simulated ms from the fault to the VMs ended', bars },
  ], 'Recovery costs are the documented parameters of cell-recovery.ts; poison is found when read.');
}
