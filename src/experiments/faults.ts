// The faults campaign (docs/experiments.md, "faults"; issue 21's item 4): random hardware faults at random moments
// into checksummed work in six Linux VMs on the 4-node machine, one after another in one long run, the machine
// repaired and the VMs lost made again between injections; per injection the VMs lost against the ground truth
// of which depended, the survivors' checksums and the recovery time.

import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Fault } from '../board/faults.js';
import { linksFromDistances } from '../board/interconnect.js';
import { layoutMachine } from '../board/address-map.js';
import { drawFault, mulberry32 } from '../board/fault-script.js';
import type { GuestArtifacts } from '../guest/artifacts.js';
import { decodeMonitorSnapshot } from '../host/monitor-snapshot.js';
import { sortedJson, writeFileWhole } from '../host/stats-output.js';
import {
  CAMPAIGN_VMS, CYCLES_PER_MS, FAULTS_MEMORY, FAULTS_TOPOLOGY, WORK_NUMBERS, bootedCampaign, campaignSession, faultsMachine, makeWhole, runInjection,
  type InjectionRequest, type InjectionResult,
} from './faults-case.js';
import { faultsHistogramSvg, faultsTable } from './faults-report.js';
import { median } from './report.js';

export const FULL_INJECTIONS = 200;
export const QUICK_INJECTIONS = 6;
/** The fault is due at a moment drawn evenly from the first this many simulated ms of the work (a round takes about 120). */
export const FAULT_WINDOW_MS = 100;
/**
 * The kinds drawn, evenly, on every node: with cells, node 0's loss fails cell 0 alone and the next cell
 * becomes the primary (docs/cells.md).
 */
export const CAMPAIGN_KINDS: readonly Fault['kind'][] = ['node', 'cpu', 'link', 'router', 'page', 'line'];

export const RESULTS_JSON = 'results.json';
export const RESULTS_TABLE = 'results.md';
export const PLOT_SVG = 'faults.svg';

export interface FaultsOptions {
  guest: Pick<GuestArtifacts, 'kernel' | 'initramfs'>;
  outDir: string;
  injections: number;
  seed: number;
  /** Host ms that booting, and then each command, may take. */
  timeoutMs?: number;
  onProgress?: (line: string) => void;
  onStatus?: (text: string) => void;
}

/** A figure over the injections that had one: median and 99th percentile (nearest rank), and how many. */
export interface Spread {
  median: number | null;
  p99: number | null;
  count: number;
}

export interface FaultsResults {
  injections: number;
  seed: number;
  /** VMs lost that the ground truth says did not depend on what failed: must be 0. */
  independentVmsLost: number;
  dependentVmsLost: number;
  /** VMs the ground truth says depended, which the monitor kept (a poisoned page never read again, say). */
  dependentVmsKept: number;
  /** Confined VMs lost to a fault that touched no node of theirs (their vCPU had run on another node's CPU, say). */
  confinedLostAway: number;
  /** VMs running at the end of an injection, and those of them whose every work round printed the right checksum. */
  survivors: number;
  survivorsCorrect: number;
  /** Survivors whose checked work ended after the fault took effect (ran through the recovery). */
  survivorsCheckedAfterFault: number;
  /** Simulated ms from a fault taking effect to the monitor having ended what depended on it. */
  recoveryMs: Spread;
  detectMs: Spread;
  agreementMs: Spread;
  cleanupMs: Spread;
  handleMs: Spread;
  /** Injections after which the monitor read nothing (poison never read, a link with a way round). */
  undetected: number;
  byKind: Record<string, { injections: number; vmsLost: number; dependents: number; recoveryMs: Spread }>;
  /** VMs the campaign made again between injections, and dependent VMs it stopped because the monitor had kept them. */
  vmsReplaced: number;
  keptStopped: number;
  host: { bootSeconds: number; bootCached: boolean; injectionSeconds: Spread; wholeSeconds: Spread; totalSeconds: number };
  runs: InjectionResult[];
}

/**
 * The campaign's injections, a function of `seed` alone: kind evenly from CAMPAIGN_KINDS; any node and router;
 * any CPU; any link; page and line at an address drawn evenly from all machine memory (used by some VM or by
 * none); due a moment drawn evenly from the first FAULT_WINDOW_MS of the work.
 */
export function drawInjections(seed: number, count: number): InjectionRequest[] {
  const layout = layoutMachine(faultsMachine());
  const links = linksFromDistances(layout.distances);
  const random = mulberry32(seed);
  const pick = (n: number): number => Math.floor(random() * n);
  const out: InjectionRequest[] = [];
  for (let index = 0; index < count; index++) {
    const fault = drawFault(CAMPAIGN_KINDS[pick(CAMPAIGN_KINDS.length)]!, layout, links, pick);
    out.push({ index, fault, offset: pick(FAULT_WINDOW_MS * CYCLES_PER_MS) });
  }
  return out;
}

/** The nearest-rank percentile `p` (0–100) of `values`, or null for none. */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function spread(values: readonly (number | null)[]): Spread {
  const present = values.filter((v): v is number => v !== null);
  return { median: present.length === 0 ? null : median(present), p99: percentile(present, 99), count: present.length };
}

/** The figures of a campaign from its injections. */
export function summarize(runs: readonly InjectionResult[], seed: number, host: FaultsResults['host']): FaultsResults {
  let independentVmsLost = 0;
  let dependentVmsLost = 0;
  let dependentVmsKept = 0;
  let confinedLostAway = 0;
  let survivors = 0;
  let survivorsCorrect = 0;
  let survivorsCheckedAfterFault = 0;
  const byKind: FaultsResults['byKind'] = {};
  for (const r of runs) {
    const k = (byKind[r.kind] ??= { injections: 0, vmsLost: 0, dependents: 0, recoveryMs: { median: null, p99: null, count: 0 } });
    k.injections++;
    const rounds = Math.max(...r.vms.map((v) => v.rounds));
    for (const v of r.vms) {
      if (v.dependent) k.dependents++;
      if (v.lost) {
        k.vmsLost++;
        if (v.dependent) dependentVmsLost++;
        else independentVmsLost++;
        const home = CAMPAIGN_VMS.find((s) => s.name === v.name)!.homeNode!;
        if (v.shape === 'confined' && r.truth !== null && !r.truth.touched.includes(home)) confinedLostAway++;
      } else {
        if (v.dependent) dependentVmsKept++;
        survivors++;
        if (v.wrong === 0 && v.rounds === rounds && rounds > 0) survivorsCorrect++;
        if (v.checkedAfterFault) survivorsCheckedAfterFault++;
      }
    }
  }
  for (const kind of Object.keys(byKind)) byKind[kind]!.recoveryMs = spread(runs.filter((r) => r.kind === kind).map((r) => r.recoveryMs));
  return {
    injections: runs.length, seed, independentVmsLost, dependentVmsLost, dependentVmsKept, confinedLostAway, survivors, survivorsCorrect, survivorsCheckedAfterFault,
    recoveryMs: spread(runs.map((r) => r.recoveryMs)), detectMs: spread(runs.map((r) => r.detectMs)),
    agreementMs: spread(runs.map((r) => r.agreementMs)), cleanupMs: spread(runs.map((r) => r.cleanupMs)), handleMs: spread(runs.map((r) => r.handleMs)),
    undetected: runs.filter((r) => r.recoveryMs === null).length, byKind,
    vmsReplaced: runs.reduce((n, r) => n + (r.whole?.replaced.length ?? 0), 0), keptStopped: runs.reduce((n, r) => n + (r.whole?.stopped.length ?? 0), 0),
    host, runs: [...runs],
  };
}

/**
 * Boots once (or takes the boot from the cache), then runs every injection on that one machine, making it
 * whole between them (`makeWhole`), and writes the outputs.
 */
export async function runFaults(o: FaultsOptions): Promise<FaultsResults> {
  const timeoutMs = o.timeoutMs ?? 10 * 60_000;
  const started = performance.now();
  o.onStatus?.('booting six VMs (once)');
  const boot = await bootedCampaign(readFileSync(o.guest.kernel), readFileSync(o.guest.initramfs), timeoutMs);
  const bootSeconds = (performance.now() - started) / 1000;
  o.onProgress?.(`booted machine ${boot.cached ? 'from the boot cache' : 'booted'} in ${bootSeconds.toFixed(1)} s (${(boot.bytes.length / 2 ** 20).toFixed(0)} MiB snapshot)`);
  const loaded = decodeMonitorSnapshot(boot.bytes);
  const session = await campaignSession(boot.bytes, timeoutMs);
  const runs: InjectionResult[] = [];
  const results = (): FaultsResults => summarize(runs, o.seed, {
    bootSeconds, bootCached: boot.cached, injectionSeconds: spread(runs.map((r) => r.hostSeconds)), wholeSeconds: spread(runs.map((r) => r.whole?.hostSeconds ?? null)),
    totalSeconds: (performance.now() - started) / 1000,
  });
  try {
    for (const request of drawInjections(o.seed, o.injections)) {
      o.onStatus?.(`injection ${request.index + 1}/${o.injections}`);
      const r = await runInjection(session, request);
      r.whole = await makeWhole(session, loaded, r.truth);
      runs.push(r);
      const lost = r.vms.filter((v) => v.lost).map((v) => `${v.name}${v.dependent ? '' : ' (INDEPENDENT)'}`);
      const kept = r.vms.filter((v) => v.dependent && !v.lost).map((v) => v.name);
      o.onProgress?.(`${request.index + 1}/${o.injections} ${r.fault} at +${r.offsetMs.toFixed(1)} ms: lost ${lost.join(' ') || 'none'}` +
        `${kept.length > 0 ? `, kept dependent ${kept.join(' ')}` : ''}; recovery ${r.recoveryMs === null ? 'nothing read' : `${r.recoveryMs.toFixed(3)} ms`}; ` +
        `${r.hostSeconds.toFixed(1)} s host, ${r.whole.replaced.length > 0 ? `${r.whole.replaced.join(' ')} made again` : 'nothing to make again'} in ${r.whole.hostSeconds.toFixed(1)} s`);
      // A long campaign keeps what it has so far: stopped midway, its outputs say how far it got.
      if (runs.length % PARTIAL_EVERY === 0 && runs.length < o.injections) writeFaultsOutputs(o.outDir, results(), o.injections);
    }
  } finally {
    await session.kill();
  }
  const done = results();
  writeFaultsOutputs(o.outDir, done, o.injections);
  return done;
}

/** Injections between two writes of a campaign's outputs so far. */
export const PARTIAL_EVERY = 10;

/**
 * Writes a campaign's outputs: `results.json` (with `planned`, and `complete` false while fewer than the
 * planned injections are in), the table and the histogram.
 */
export function writeFaultsOutputs(outDir: string, results: FaultsResults, planned: number): void {
  mkdirSync(outDir, { recursive: true });
  writeFileWhole(join(outDir, RESULTS_JSON), sortedJson({
    experiment: 'faults', topology: FAULTS_TOPOLOGY, machineMemory: FAULTS_MEMORY, workNumbers: WORK_NUMBERS, faultWindowMs: FAULT_WINDOW_MS,
    kinds: CAMPAIGN_KINDS, vms: CAMPAIGN_VMS.map((v) => ({ name: v.name, shape: v.shape, memoryBytes: v.memoryBytes, vcpus: v.vcpus, homeNode: v.homeNode })),
    planned, complete: results.injections === planned,
    ...results,
  }));
  const table = faultsTable(results, true);
  writeFileWhole(join(outDir, RESULTS_TABLE), results.injections === planned ? table : `So far: ${results.injections} of ${planned} injections (the campaign is still running, or was stopped).\n\n${table}`);
  writeFileWhole(join(outDir, PLOT_SVG), faultsHistogramSvg(results));
}
