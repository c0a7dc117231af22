// The overhead experiment's exit tables: each way of running the VM against bare, and where the monitor's time went by exit kind.

import { exitsByKind } from '../monitor/accounting.js';
import { causeCost, DEFAULT_COSTS, scaleCosts } from '../monitor/costs.js';
import type { OverheadResult, RunMeasure, VmVariant } from './overhead.js';
import { busy, OVERHEAD_MACHINE } from './overhead.js';
import type { ExecutionMode } from '../board/timing-mode.js';
import { markdownTable, stackedBarsSvg } from './report.js';

/** The VM as it runs by default: Disco's software-refilled TLB and the cost table as committed. */
export const NOMINAL: VmVariant = { mmu: 'software', costScale: 1 };

/** `software`, `nested ×0.5`: how a variant is named in tables and progress lines. */
export function variantName(v: VmVariant): string {
  return v.costScale === 1 ? v.mmu : `${v.mmu} ×${v.costScale}`;
}

/** VM / bare for every workload and every way the VM ran: the median over the input seeds, with the range. */
export function variantsTable(results: readonly OverheadResult[]): string {
  const variants = results[0]?.variants ?? [];
  const headers = ['workload', ...variants.map((v) => `VM / bare, ${variantName(v)}`)];
  const rows = results.map((r) => [
    r.workload,
    ...r.variants.map((v) => `${v.simulatedRatio.toFixed(3)} (${Math.min(...v.ratios).toFixed(3)}–${Math.max(...v.ratios).toFixed(3)})`),
  ]);
  return markdownTable(headers, rows);
}

/** Exit kinds in the order the table shows them. */
const KINDS = ['tlb-refill', 'guest-page-fault', 'sbi', 'mmio', 'interrupt', 'wfi', 'world-switch'] as const;

/** The monitor cycles of a run by exit kind, from its exits' causes and the (scaled) cost table. */
export function monitorCyclesByKind(run: RunMeasure, variant: VmVariant): Map<string, number> {
  const costs = scaleCosts(DEFAULT_COSTS, variant.costScale);
  return exitsByKind(Object.entries(run.exits).map(([cause, n]) => [cause, n * causeCost(costs, cause)] as const));
}

/**
 * For each way the VM ran and each workload, its median run's exits per simulated second by kind and the
 * monitor's cycles by kind as a share of bare's busy cycles (Disco's figure 5 split the monitor's bar so).
 */
export function exitsTable(results: readonly OverheadResult[]): string {
  const headers = ['workload', 'VM', ...KINDS.map((k) => `${k} /s`), ...KINDS.map((k) => `${k} % of bare busy`)];
  const rows: string[][] = [];
  for (const r of results) {
    const bareBusy = busy(r.bare);
    for (const v of r.variants) {
      const counts = exitsByKind(Object.entries(v.vm.exits));
      const cycles = monitorCyclesByKind(v.vm, v);
      rows.push([
        r.workload, variantName(v),
        ...KINDS.map((k) => Math.round((counts.get(k) ?? 0) / v.vm.guestSeconds).toString()),
        ...KINDS.map((k) => ((100 * (cycles.get(k) ?? 0)) / Math.max(1, bareBusy)).toFixed(2)),
      ]);
    }
  }
  return markdownTable(headers, rows);
}

/**
 * Disco's figure 5: per workload, bare Linux and each way the VM ran with the nominal cost table, as busy
 * cycles (user, kernel, the monitor split by exit kind) normalized to bare's busy cycles, with a line at 1.0.
 */
export function figure5Svg(results: readonly OverheadResult[], mode: ExecutionMode): string {
  const names = ['guest user', 'guest kernel', ...KINDS.map((k) => `monitor: ${k}`), 'monitor: other'];
  const bars = results.flatMap((r) => {
    const bare = r.bare.breakdown;
    const bareBusy = Math.max(1, busy(r.bare));
    const rows = [{ label: `${r.workload} bare`, segments: [bare.user / bareBusy, bare.kernel / bareBusy, ...KINDS.map(() => 0), bare.monitor / bareBusy] }];
    for (const v of r.variants.filter((x) => x.costScale === 1)) {
      const b = v.vm.breakdown;
      const cycles = monitorCyclesByKind(v.vm, v);
      const known = [...cycles.values()].reduce((a, c) => a + c, 0);
      rows.push({
        label: `${r.workload} ${variantName(v)}`,
        segments: [b.user / bareBusy, b.kernel / bareBusy, ...KINDS.map((k) => (cycles.get(k) ?? 0) / bareBusy), Math.max(0, b.monitor - known) / bareBusy],
      });
    }
    return rows;
  });
  const cpus = OVERHEAD_MACHINE.harts;
  return stackedBarsSvg(`Monitor overhead (Disco's figure 5): busy cycles normalized to bare Linux, ${mode} mode`, names, bars, {
    reference: 1,
    subtitle: `One VM with the whole machine (${cpus} CPUs, 256 MiB) against bare Linux; the monitor split by exit kind (docs/monitor.md).`,
  });
}
