// The DSM's counters of a run over hosts as statistics (docs/giantvm.md, "Statistics"): `dsm.*` in the
// run's registry, so that they land in stats.txt and stats.json with the machine's own.

import type { StatsRegistry } from '../timing/stats.js';
import type { HostReport } from './dsm-host.js';

/** Buckets of the round-trip histogram: [0, 2) µs, then [2^i, 2^(i+1)) for i = 1..RTT_BUCKETS-2, then the rest. */
export const RTT_BUCKETS = 26;
/** The most-bounced pages the statistics name. */
export const BOUNCED_PAGES = 16;

/** The histogram bucket of a round trip of `us` microseconds. */
export function rttBucket(us: number): number {
  if (!(us >= 2)) return 0;
  return Math.min(RTT_BUCKETS - 1, Math.floor(Math.log2(us)));
}

/** Counts of `values` per bucket. */
export function rttHistogram(values: readonly number[]): number[] {
  const counts = new Array<number>(RTT_BUCKETS).fill(0);
  for (const v of values) counts[rttBucket(v)]!++;
  return counts;
}

/** The buckets' labels: us_0_2, us_2_4, …, us_16777216_33554432, us_33554432_up. */
export function rttLabels(): string[] {
  return Array.from({ length: RTT_BUCKETS }, (_, i) => {
    const low = i === 0 ? 0 : 2 ** i;
    return i === RTT_BUCKETS - 1 ? `us_${low}_up` : `us_${low}_${2 ** (i + 1)}`;
  });
}

/** The nearest-rank quantile q of the sorted `values` (NaN when there are none). */
function quantileOf(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/**
 * Registers the hosts' counters under `dsm.`: per host `dsm.hostK.*` (faults by kind, bytes sent, requests
 * held by Δ, the round trips' count, median, p99 and histogram, pages per state, the SBI calls relayed;
 * host 0 also its interrupt lines sent, messages passed on and its devices' DMA), and `dsm.bounced` (the
 * most-bounced pages of the VM, by guest physical address). `ramBase` turns page numbers into addresses.
 */
export function registerDsmStats(stats: StatsRegistry, reports: readonly HostReport[], ramBase: number): void {
  for (const r of reports) {
    const p = `dsm.host${r.host}`;
    const sorted = [...r.roundTripsUs].sort((a, b) => a - b);
    stats.vector(`${p}.faults`, `DSM faults of host ${r.host}'s harts and devices, by kind (read of an Invalid page, write of an Invalid page, write of a Shared page)`,
      'Count', ['read', 'write', 'upgrade'], () => [r.readFaults, r.writeFaults, r.upgradeFaults]);
    stats.scalar(`${p}.bytesSent`, `Bytes of DSM messages host ${r.host} sent (pages and protocol)`, 'Byte', () => r.bytesSent);
    stats.scalar(`${p}.held`, `Requests host ${r.host} held back for the hold time (Mirage's delta)`, 'Count', () => r.held);
    stats.scalar(`${p}.roundTrips`, `Fault round trips of host ${r.host}'s harts, from the fault to the page in place`, 'Count', () => r.roundTripCount);
    stats.scalar(`${p}.roundTripMedian`, `Median fault round trip of host ${r.host}'s harts`, 'Microsecond', () => quantileOf(sorted, 0.5));
    stats.scalar(`${p}.roundTripP99`, `99th percentile of the fault round trips of host ${r.host}'s harts`, 'Microsecond', () => quantileOf(sorted, 0.99));
    const histogram = r.rttHistogram ?? rttHistogram(r.roundTripsUs);
    stats.vector(`${p}.roundTripHistogram`, `Fault round trips of host ${r.host}'s harts by duration (powers of two of microseconds)`, 'Count', rttLabels(), () => histogram);
    stats.vector(`${p}.pages`, `Pages of guest memory per DSM state on host ${r.host} at the end`, 'Count', ['invalid', 'shared', 'modified'], () => r.pages);
    stats.scalar(`${p}.instructions`, `Instructions host ${r.host}'s harts ran`, 'Count', () => r.instructions);
    if (r.relay !== undefined) {
      const relay = r.relay;
      stats.vector(`${p}.relayed`, `The built-in SBI's calls host ${r.host} relayed: IPIs and starts sent, remote fences sent and served, HSM states sent`, 'Count',
        ['signalsSent', 'fencesSent', 'fencesServed', 'hsmSent'], () => [relay.signalsSent, relay.fencesSent, relay.fencesServed, relay.hsmSent]);
    }
    if (r.linesSent !== undefined) stats.scalar(`${p}.linesSent`, 'Interrupt lines host 0 sent to harts of other hosts', 'Count', () => r.linesSent!);
    if (r.passedOn !== undefined) stats.scalar(`${p}.passedOn`, 'Messages host 0 passed on between two other hosts', 'Count', () => r.passedOn!);
    if (r.dma !== undefined) {
      const dma = r.dma;
      stats.vector(`${p}.dmaPages`, 'Pages the devices\' DMA asked the DSM for, to read and to write', 'Count', ['read', 'write'], () => [dma.readPages, dma.writePages]);
      stats.scalar(`${p}.dmaWaits`, 'Times a device\'s work waited for pages and was done again', 'Count', () => dma.waits);
      stats.vector(`${p}.dmaBytes`, 'Bytes the devices\' DMA read and wrote through the DSM\'s check', 'Byte', ['read', 'written'], () => [dma.bytesRead, dma.bytesWritten]);
    }
  }
  // Each page's bounces are counted by its manager: the hosts' lists do not overlap.
  const bounced = reports.flatMap((r) => r.bounces).sort((a, b) => b[1] - a[1] || a[0] - b[0]).slice(0, BOUNCED_PAGES);
  stats.vector('dsm.bounced', `The ${BOUNCED_PAGES} pages whose ownership moved between hosts most, by guest physical address`, 'Count',
    bounced.map(([page]) => `p0x${(ramBase + page * 4096).toString(16)}`), () => bounced.map(([, n]) => n));
}
