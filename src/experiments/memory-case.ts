// One case of the memory experiment (docs/experiments.md, "memory"), run in a child process of its own:
// `count` VMs of 128 MiB with root on one copy-on-write disk, each different (rng seed, hostname, MAC and
// address, a staggered start, its own pmake input seed), run pmake; the machine's memory is sampled over
// the run and read at the end of pmake in every VM.

import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { CPU_CYCLES_PER_SECOND, topologyPreset } from '../board/topology.js';
import { cachedBoot, contentHash } from '../guest/boot-cache.js';
import { MonitorSession, type MonitorSessionOptions, type SessionVm } from '../guest/monitor-session.js';
import { baseIdentity } from '../host/image-hash.js';
import { DEFAULT_SHARING_COSTS, scaleSharingCosts } from '../monitor/costs.js';
import { PAGE } from '../monitor/machine-memory.js';
import type { Monitor, MonitorOptions } from '../monitor/monitor.js';
import type { ScanCounts } from '../monitor/page-scanner.js';
import type { ShareSource } from '../monitor/sharing-ledger.js';
import { BALLOON_ACCOUNT_KEYS, emptyBalloonAccount, type BalloonAccount } from '../monitor/balloon.js';
import { serveCase } from './child-case.js';
import { ExperimentError } from './numa-placement.js';

const MiB = 2 ** 20;
const CYCLES_PER_MS = CPU_CYCLES_PER_SECOND / 1000;
export const MEMORY_TOPOLOGY = 'numa4x2';
export const VM_MEMORY = 128 * MiB;
export const VM_CPUS = 2;

/**
 * How much the monitor shares: nothing; the copy-on-write disk's page cache and the kernel; those and the content
 * scanner; `report`: `content` with a virtio balloon in every VM whose free page reports give the guests' freed
 * memory back (issue 20's memory bar, second reading); `zero-free`: `content` with every guest zeroing the memory it
 * frees (Linux's `init_on_free=1`), so that the scanner merges it as zero pages. The first three are the default.
 */
export const SHARING_CASES = ['off', 'disk', 'content', 'report', 'zero-free'] as const;
export const DEFAULT_SHARING_CASES = ['off', 'disk', 'content'] as const;
export type Sharing = (typeof SHARING_CASES)[number];

/**
 * `report`: the order of the free blocks the guest reports (0: every free page). Linux 6.1.192 sets it when the
 * balloon's driver registers, over the kernel command line, and its default (pageblock_order, 10: 4 MiB) never
 * reports in a 128 MiB VM (a zone must have 32 such blocks free above its low watermark): it is written to
 * /sys after boot (docs/monitor.md, "The balloon").
 */
export const REPORT_ORDER = 0;
const REPORT_ORDER_FILE = '/sys/module/page_reporting/parameters/page_reporting_order';
/** Simulated ms every VM sleeps after pmake before `settled` is read: Linux reports 2 s after memory is freed. */
export const SETTLE_MS = 3000;

export interface PmakeJob {
  files: number;
  lines: number;
}

export interface MemoryCaseRequest {
  guest: { kernel: string; disk: string };
  count: number;
  sharing: Sharing;
  /** Machine memory (bytes), spread over the topology's nodes. */
  machineMemory: number;
  job: PmakeJob;
  /** VM i's pmake input seed and rng seed are `seedBase + i`. */
  seedBase: number;
  /** VM i starts its pmake `i × staggerMs` of simulated time after the first. */
  staggerMs: number;
  /** The content scanner's rate (pages per simulated second) and its cost table's factor. */
  scanRate: number;
  scanCostScale: number;
  /** Its rate while its CPU idles (0: off), and whether it merges at a page's first hash match (page-scanner.ts). */
  idleScanRate: number;
  mergeOnFirstMatch: boolean;
  /** Simulated ms between two samples of the machine's memory. */
  sampleMs: number;
  /** True: a VM stopped for want of memory is a result, not a failure (the overcommit case). */
  allowStopped?: boolean;
}

/** The machine's memory at one moment, in pages (sharing-ledger.ts's account). */
export interface MemorySample {
  /** Simulated ms since the machine started. */
  ms: number;
  /** Machine pages in use: private pages, one copy of each shared page, and pages only the page cache holds. */
  inUse: number;
  /** Guest pages that have a machine page, over every running VM: what they would use with no sharing. */
  mapped: number;
  privatePages: number;
  sharedPages: number;
  cacheOnly: number;
  /** Pages saved (mappings beyond the first of a shared page), by where the sharing came from. */
  savedBy: Record<ShareSource, number>;
  /** Machine pages reserved for VMs' large pages, not touched yet (not in use). */
  reserved: number;
  running: number;
}

export interface VmOutcome {
  name: string;
  seed: number;
  /** pmake's checksum and its elapsed time as the guest measured it (simulated), or why it did not finish. */
  checksum: string | null;
  pmakeMs: number | null;
  stopped: string | null;
}

export interface MemoryCaseResult {
  vms: number;
  sharing: Sharing;
  seedBase: number;
  machineMemory: number;
  outcomes: VmOutcome[];
  /** Simulated ms from the first pmake's start to the end of the last. */
  spanMs: number;
  /** Memory at the end of pmake in every VM (the figure), and the most in use at any sample. */
  end: MemorySample;
  peakInUse: number;
  /** `content`, `report` and `zero-free`: the memory after every VM then slept SETTLE_MS (its freed memory reported, with `report`). */
  settled?: MemorySample | null;
  /** `report`: what the balloons did, summed over the VMs (balloon.ts BalloonAccount), at the end of pmake and once settled. */
  balloon?: { end: BalloonAccount; settled: BalloonAccount } | null;
  /** `content`: the memory after one pass merging every equal page at the end (not part of the figure). */
  afterOnePass?: MemorySample | null;
  series: MemorySample[];
  scan: ScanCounts | null;
  /** Copy-on-write breaks (writes to shared pages, by vCPUs and by DMA), over all VMs. */
  cowBreaks: number;
  hostSeconds: number;
}

export const RESULT_LINE = /^RESULT pmake elapsed=(\S+) checksum=([0-9a-f]{16})\b/m;

/** The pmake command of VM `i` (its seed `seed`), its work tree on the VM's own copy-on-write disk. */
export function pmakeCommand(job: PmakeJob, seed: number): string {
  return `pmake -j ${VM_CPUS} -n ${job.files} -l ${job.lines} -d /root -S ${seed}`;
}

/** The monitor options of a sharing case. */
export function sharingOptions(sharing: Sharing, r: Pick<MemoryCaseRequest, 'scanRate' | 'scanCostScale' | 'idleScanRate' | 'mergeOnFirstMatch'>): Omit<MonitorOptions, 'config'> {
  if (sharing === 'off') return { diskCache: false, shareBootImages: false };
  if (sharing === 'disk') return { diskCache: true, shareBootImages: true };
  // `report` and `zero-free` are `content` to the monitor; the first's VMs have balloons, the second's guests zero what they free.
  return {
    diskCache: true, shareBootImages: true,
    scan: {
      pagesPerSecond: r.scanRate, idlePagesPerSecond: r.idleScanRate, mergeOnFirstMatch: r.mergeOnFirstMatch, cpu: 0,
      costs: scaleSharingCosts(DEFAULT_SHARING_COSTS, r.scanCostScale),
    },
  };
}

function sample(monitor: Monitor): MemorySample {
  const m = monitor.memoryAccount().machine;
  return {
    ms: monitor.cycles / CYCLES_PER_MS, inUse: m.inUse, mapped: m.mapped, privatePages: m.privatePages, sharedPages: m.sharedPages,
    cacheOnly: m.cacheOnly, savedBy: { ...m.savedBy }, reserved: m.reserved, running: monitor.vms.filter((vm) => vm.state === 'running').length,
  };
}

/** Runs one case in this process. */
export async function runMemoryCase(r: MemoryCaseRequest): Promise<MemoryCaseResult> {
  const started = performance.now();
  const { config } = topologyPreset(MEMORY_TOPOLOGY, r.machineMemory);
  const names = Array.from({ length: r.count }, (_, i) => `vm${i}`);
  const vms: SessionVm[] = names.map((name, i) => ({
    name, vcpus: VM_CPUS, memoryBytes: VM_MEMORY, net: true, rng: r.seedBase + i,
    append: `root=/dev/vda rw mb.ip=10.0.2.${i + 1}/24${r.sharing === 'zero-free' ? ' init_on_free=1' : ''}`,
    drives: [{ file: r.guest.disk, readOnly: false, snapshot: true }],
    ...(r.sharing === 'report' ? { balloon: true } : {}),
  }));
  // The memory sampled after every round, from the boot on: what a boot's snapshot keeps, so a restore goes on sampling as the boot would have.
  let sampler: Sampler = { series: [], nextSample: 0, peakInUse: 0 };
  let monitorSeen: Monitor | undefined;
  const kernel = readFileSync(r.guest.kernel);
  const options: MonitorSessionOptions = {
    kernel, config, vms,
    monitor: sharingOptions(r.sharing, r),
    timeoutMs: 20 * 60_000,
    afterRound: (monitor) => {
      monitorSeen = monitor;
      const inUse = monitor.memory.pagesInUse();
      if (inUse > sampler.peakInUse) sampler.peakInUse = inUse;
      if (monitor.cycles < sampler.nextSample) return;
      sampler.nextSample = monitor.cycles + r.sampleMs * CYCLES_PER_MS;
      sampler.series.push(sample(monitor));
    },
  };
  const failed = (error: unknown): { failedBoot: string; monitor: Monitor } => {
    const message = error instanceof Error ? error.message : String(error);
    // Overcommitted, a VM may be stopped before its shell is up: MonitorSession.boot then gives up on all of
    // them, and nothing ran pmake. That is this case's result.
    const stopped = monitorSeen?.vms.filter((vm) => vm.state === 'stopped') ?? [];
    if (r.allowStopped === true && monitorSeen !== undefined && stopped.length > 0) return { failedBoot: message, monitor: monitorSeen };
    throw new ExperimentError(`${r.count} VMs, sharing ${r.sharing}: ${message}`);
  };
  // Commands are given at a moment every VM idles, all at once: given when the host learns that the VMs
  // booted (or that a command ended), a VM idle earlier would get its command at a moment that depends on
  // the host's speed, and two runs with the same seeds differed (by 0.5 % in pmake's time).
  const atOnce = <T>(s: MonitorSession, commands: (name: string, i: number) => Promise<T>): Promise<T[]> =>
    s.atMachineIdle(() => names.map(commands)).then((started) => Promise.all(started));
  // Each VM its own name (its root disk is its own copy-on-write one), before anything is measured.
  // With free page reporting, the order reports are made at too (the kernel sets its own when the balloon registers).
  const order = r.sharing === 'report' ? `echo ${REPORT_ORDER} > ${REPORT_ORDER_FILE} && ` : '';
  const name = (s: MonitorSession): Promise<unknown> => atOnce(s, (vmName) => s.exec(vmName, `${order}hostname ${vmName} && echo ${vmName} > /etc/hostname`));
  let session: MonitorSession | { failedBoot: string; monitor: Monitor };
  if (r.allowStopped === true) {
    // Overcommitted, the boot itself may be the result (a VM stopped): booted here, as it always was.
    session = await MonitorSession.boot(options).catch(failed);
    if (session instanceof MonitorSession) await name(session);
  } else {
    // Booted and named once per configuration and kept (boot-cache.ts), the sampler's state with it; every
    // run restores it, so a run is the same whether the boot is kept from before or made now.
    const key = {
      experiment: 'memory', kernel: contentHash(kernel), disk: baseIdentity(r.guest.disk), config, sharing: sharingOptions(r.sharing, r), sampleMs: r.sampleMs,
      vms: vms.map((vm) => ({ ...vm, drives: vm.drives?.map((d) => ({ ...d, file: undefined })) })), step: 'hostname',
    };
    const { bytes } = await cachedBoot(key, async () => {
      const booted = await MonitorSession.boot(options).catch(failed) as MonitorSession;
      try {
        await name(booted);
        return await booted.snapshot(() => structuredClone(sampler));
      } finally {
        await booted.kill();
      }
    });
    session = await MonitorSession.boot({ ...options, restore: bytes, restored: (kept) => { sampler = readSampler(kept); } });
  }
  if (!(session instanceof MonitorSession)) {
    const stoppedNames = new Set(session.monitor.vms.filter((vm) => vm.state === 'stopped').map((vm) => vm.name));
    return {
      vms: r.count, sharing: r.sharing, seedBase: r.seedBase, machineMemory: r.machineMemory,
      outcomes: names.map((vmName, i) => ({
        name: vmName, seed: r.seedBase + i, checksum: null, pmakeMs: null,
        stopped: stoppedNames.has(vmName) ? `during boot: ${session.monitor.vm(vmName)?.reason ?? ''}` : 'not run: another VM was stopped during boot',
      })),
      spanMs: 0, end: sampler.series.at(-1)!, peakInUse: sampler.peakInUse, series: sampler.series, scan: null, cowBreaks: 0, hostSeconds: (performance.now() - started) / 1000,
    };
  }
  const { series } = sampler;
  try {
    const start = await session.atMachineIdle(() => session.monitor.cycles);
    const outcomes: VmOutcome[] = await atOnce(session, async (name, i): Promise<VmOutcome> => {
      const seed = r.seedBase + i;
      const delay = i * r.staggerMs;
      const command = `${delay > 0 ? `sleep ${(delay / 1000).toFixed(3)} && ` : ''}${pmakeCommand(r.job, seed)}`;
      try {
        const result = await session.exec(name, command);
        const m = RESULT_LINE.exec(result.output);
        if (result.status !== 0 || m === null) throw new ExperimentError(`${name}: pmake failed (status ${result.status}): ${result.output.trim().split('\n').slice(-3).join(' / ')}`);
        return { name, seed, checksum: m[2]!, pmakeMs: Number(m[1]) * 1000, stopped: null };
      } catch (error) {
        const vm = session.monitor.vm(name);
        if (r.allowStopped !== true || vm === undefined || vm.state !== 'stopped') throw error;
        return { name, seed, checksum: null, pmakeMs: null, stopped: vm.reason };
      }
    });
    const end = await session.atMachineIdle(() => ({ sample: sample(session.monitor), scan: session.monitor.scanner === undefined ? null : { ...session.monitor.scanner.counts } }));
    series.push(end.sample);
    const balloons = (): BalloonAccount => {
      const sum = emptyBalloonAccount();
      for (const vm of session.monitor.vms) for (const k of BALLOON_ACCOUNT_KEYS) sum[k] += vm.balloon?.account[k] ?? 0;
      return sum;
    };
    const balloonAtEnd = balloons();
    // Not the figure: the memory once the guests had time to report what they freed at pmake's end.
    let settled: MemorySample | null = null;
    if (r.sharing === 'content' || r.sharing === 'report' || r.sharing === 'zero-free') {
      await atOnce(session, (name) => session.exec(name, `sleep ${SETTLE_MS / 1000}`));
      settled = await session.atMachineIdle(() => sample(session.monitor));
    }
    const balloon = r.sharing === 'report' ? { end: balloonAtEnd, settled: balloons() } : null;
    // After the figure is read: what one pass merging every equal page (Monitor.sharePages) would leave, to
    // tell what of the private memory is still mergeable and what is each VM's own.
    const afterOnePass = r.sharing === 'content' || r.sharing === 'report' || r.sharing === 'zero-free' ? await session.atMachineIdle(() => {
      session.monitor.sharePages();
      return sample(session.monitor);
    }) : null;
    const cowBreaks = session.monitor.vms.reduce((n, vm) => n + [...vm.exits].reduce((k, [key, c]) => k + (key.endsWith('copy-on-write') ? c : 0), 0), 0);
    return {
      vms: r.count, sharing: r.sharing, seedBase: r.seedBase, machineMemory: r.machineMemory, outcomes,
      spanMs: end.sample.ms - start / CYCLES_PER_MS, end: end.sample, settled, balloon, afterOnePass, peakInUse: sampler.peakInUse, series, scan: end.scan, cowBreaks,
      hostSeconds: (performance.now() - started) / 1000,
    };
  } finally {
    await session.kill();
  }
}

/** What the memory sampler has seen so far: kept with a boot's snapshot. */
interface Sampler {
  series: MemorySample[];
  nextSample: number;
  peakInUse: number;
}

/** A sampler's state as a boot's snapshot kept it (the cache's own file, checksummed: checked only for its shape). */
function readSampler(kept: unknown): Sampler {
  const k = kept as Partial<Sampler> | undefined;
  if (!Array.isArray(k?.series) || typeof k.nextSample !== 'number' || typeof k.peakInUse !== 'number') throw new ExperimentError('a kept boot has no memory samples: remove the boot cache\'s snapshots');
  return { series: k.series, nextSample: k.nextSample, peakInUse: k.peakInUse };
}

/** Pages as MiB. */
export function pagesMiB(pages: number): number {
  return (pages * PAGE) / MiB;
}

/** This module: what `runCaseInChild` runs. */
export const CASE_MODULE = import.meta.url;

// The child's side: run the case given on the command line and send the result back.
serveCase(import.meta.url, (r: MemoryCaseRequest) => runMemoryCase(r));
