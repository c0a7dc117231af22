// One injection of the faults campaign (docs/experiments.md, "faults"), on the machine that runs the whole
// campaign: checksummed work started in every VM, one fault at a seeded moment into it, the ground truth read
// from the machine as the fault found it, and the survivors' work, which ran through the fault and the recovery,
// checked. Then the machine is made whole for the next (`makeWhole`): the failed parts repaired, the cells
// rejoined, and the VMs lost made again from the boot's snapshot.

import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { faultName, type Fault } from '../board/faults.js';
import type { AppliedFault } from '../board/hardware.js';
import { CPU_CYCLES_PER_SECOND, topologyPreset } from '../board/topology.js';
import { cachedSession, contentHash } from '../guest/boot-cache.js';
import { MonitorSession, type SessionVm } from '../guest/monitor-session.js';
import type { LoadedMonitorSnapshot } from '../host/monitor-snapshot.js';
import { MONITOR_NODE } from '../monitor/fault-recovery.js';
import { BLOCK_PAGES, FREE, PAGE } from '../monitor/machine-memory.js';
import type { Monitor, MonitorOptions } from '../monitor/monitor.js';

const MiB = 2 ** 20;
export const CYCLES_PER_MS = CPU_CYCLES_PER_SECOND / 1000;

/**
 * The machine: numa4x2 (4 nodes of 2 CPUs on a 2×2 mesh) in 4 cells of one node each (FAULTS_MONITOR), so a
 * cell's failure is its node's.
 */
export const FAULTS_TOPOLOGY = 'numa4x2';
export const FAULTS_MEMORY = 512 * MiB;
export const NODE_MEMORY = FAULTS_MEMORY / 4;

/** How a VM stands to the nodes: memory on its home node only, or spread over every node. */
export type VmShape = 'confined' | 'spanning';

export interface CampaignVm extends SessionVm {
  shape: VmShape;
}

/**
 * Four VMs confined to one node each (their memory fits there, their home is that node) and two spanning VMs,
 * larger than a node, whose pages are spread round-robin over the four nodes after boot. One vCPU each.
 */
export const CAMPAIGN_VMS: readonly CampaignVm[] = [
  ...[0, 1, 2, 3].map((n) => ({ name: `c${n}`, shape: 'confined' as const, vcpus: 1, memoryBytes: 64 * MiB, homeNode: n })),
  ...[0, 1].map((i) => ({ name: `s${i}`, shape: 'spanning' as const, vcpus: 1, memoryBytes: NODE_MEMORY + 32 * MiB, homeNode: 1 + 2 * i })),
];

/**
 * The monitor's options beyond the machine: 4 cells of one node (docs/cells.md), and otherwise the defaults
 * (fast mode, pages from the home node, no sharing scanner, the recovery costs of cell-recovery.ts).
 */
export const FAULTS_MONITOR: Omit<MonitorOptions, 'config'> = { cells: 4 };

export function faultsMachine(): ReturnType<typeof topologyPreset>['config'] {
  return topologyPreset(FAULTS_TOPOLOGY, FAULTS_MEMORY).config;
}

/** Numbers in the checksummed work: VM i's round r of injection k prints `seq first(k, i, r) … + WORK_NUMBERS − 1`. */
export const WORK_NUMBERS = 3000;

export function workFirst(injection: number, vm: number, round: number): number {
  return 1 + ((injection * 64 + vm * 8 + round) % 100_003) * 1000;
}

export function workCommand(first: number): string {
  return `seq ${first} ${first + WORK_NUMBERS - 1} | md5sum`;
}

/** What `workCommand(first)` must print first, computed here. */
export function expectedMd5(first: number): string {
  const hash = createHash('md5');
  for (let n = first; n < first + WORK_NUMBERS; n += 1000) {
    let chunk = '';
    for (let m = n; m < Math.min(n + 1000, first + WORK_NUMBERS); m++) chunk += `${m}\n`;
    hash.update(chunk);
  }
  return hash.digest('hex');
}

/**
 * The booted machine as snapshot bytes: every VM at its first idle moment after boot, the spanning VMs' pages
 * spread. Kept in the boot cache (src/guest/boot-cache.ts), so a second campaign skips the boot.
 */
export async function bootedCampaign(kernel: Uint8Array, initrd: Uint8Array, timeoutMs: number): Promise<{ bytes: Uint8Array; cached: boolean }> {
  const config = faultsMachine();
  const vms = CAMPAIGN_VMS.map(({ shape: _shape, ...vm }) => vm);
  const key = { kind: 'faults-campaign', version: 1, kernel: contentHash(kernel), initrd: contentHash(initrd), config, vms, monitor: FAULTS_MONITOR, spanning: CAMPAIGN_VMS.filter((v) => v.shape === 'spanning').map((v) => v.name) };
  return cachedSession(key, () => MonitorSession.boot({ kernel, initrd, config, vms, monitor: FAULTS_MONITOR, holdIdle: true, timeoutMs }), async (session) => {
    await session.atMachineIdle(() => {
      for (const spec of CAMPAIGN_VMS) if (spec.shape === 'spanning') spreadPages(session.monitor, spec.name);
    });
  });
}

/** VM `name`'s mapped pages moved round-robin over the nodes (page n to node n mod nodes), as a VM larger than a node. */
function spreadPages(monitor: Monitor, name: string): void {
  const vm = monitor.vm(name)!;
  const nodes = monitor.layout.nodes.length;
  for (let gppn = 0; gppn < vm.pmap.pages; gppn++) {
    const mpn = vm.pmap.lookup(gppn);
    if (mpn !== FREE && monitor.memory.nodeOf(mpn) !== gppn % nodes) vm.pmap.migrate(gppn, gppn % nodes);
  }
}

/** Why a VM depended on what failed, as the machine's state said when the fault took effect. */
export interface Dependence {
  vm: string;
  reasons: string[];
}

/** The ground truth of one fault: what it took, and every VM that had vCPU state, pages, devices or the monitor's data there. */
export interface GroundTruth {
  /** Nodes lost: the failed node, or the nodes a router's failure cut off from node 0's side (from the hardware's routes). */
  nodes: number[];
  cpus: number[];
  /** The poisoned machine page, for page and line faults. */
  page: number | null;
  /** Every node the fault touched: lost, holding a failed CPU, or holding the poisoned page (none for a link with a way round). */
  touched: number[];
  dependents: Dependence[];
}

/**
 * Reads the ground truth of `applied` from the machine, at the boundary where it took effect and before the
 * monitor heard of it: the hardware's fault state and routes, each vCPU's CPU (where its registers are), each
 * VM's machine pages (those its large pages' blocks hold for it included), its home node (its devices), and
 * the machine pages of the monitor's data for it.
 */
export function groundTruth(monitor: Monitor, applied: AppliedFault): GroundTruth {
  const { layout } = monitor;
  const state = monitor.hardware.state;
  const fault = applied.fault;
  let nodes: number[] = [];
  let cpus: number[] = [];
  let page: number | null = null;
  switch (fault.kind) {
    case 'node':
      nodes = [fault.node];
      break;
    case 'cpu':
      cpus = [fault.cpu];
      break;
    case 'link':
    case 'router': {
      // Partitions are fail-stop: the side without node 0, the primary cell's monitor node, stops (docs/cells.md).
      const routes = state.interconnect;
      nodes = layout.nodes.map((n) => n.id).filter((n) => !routes.reaches(MONITOR_NODE, n));
      break;
    }
    case 'page':
    case 'line':
      page = Math.floor((fault.address - layout.nodes[0]!.base) / PAGE);
      break;
  }
  cpus = [...new Set([...cpus, ...nodes.flatMap((n) => layout.nodes[n]!.harts)])];
  const onLost = (mpn: number): boolean => mpn === page || nodes.includes(monitor.memory.nodeOf(mpn));
  const dependents: Dependence[] = [];
  for (const vm of monitor.vms) {
    if (vm.state !== 'running') continue;
    const reasons: string[] = [];
    for (const cpu of cpus) if (monitor.scheduler.lastOn(cpu)?.vm === vm.id) reasons.push(`vCPU on CPU ${cpu}`);
    if (nodes.includes(vm.pmap.homeNode)) reasons.push(`devices on node ${vm.pmap.homeNode}`);
    let pages = 0;
    for (let gppn = 0; gppn < vm.pmap.pages; gppn++) {
      const mpn = vm.pmap.lookup(gppn);
      if (mpn !== FREE && onLost(mpn)) pages++;
    }
    if (pages > 0) reasons.push(`${pages} pages`);
    // Pages of its large pages' blocks not touched yet: bound to its guest pages (guest page k of the group
    // gets block page k, with no write in between), so the VM's memory as much as the pages it touched.
    let reserved = 0;
    for (let group = 0; group < vm.pmap.groups; group++) {
      const block = vm.pmap.blockOf(group);
      if (block < 0) continue;
      for (let k = 0; k < BLOCK_PAGES; k++) if (vm.pmap.lookup(group * BLOCK_PAGES + k) === FREE && onLost(block + k)) reserved++;
    }
    if (reserved > 0) reasons.push(`${reserved} pages reserved for its large pages`);
    const tables = vm.tables.savePages().flat().filter(onLost).length;
    if (tables > 0) reasons.push(`${tables} pages of monitor data`);
    if (reasons.length > 0) dependents.push({ vm: vm.name, reasons });
  }
  const touched = [...new Set([...nodes, ...cpus.map((c) => layout.hartNode[c]!), ...(page === null ? [] : [monitor.memory.nodeOf(page)])])].sort((a, b) => a - b);
  return { nodes, cpus, page, touched, dependents };
}

export interface InjectionRequest {
  index: number;
  fault: Fault;
  /** Cycles after the work starts at which the fault is due. */
  offset: number;
}

/** One VM's fate in one injection. */
export interface VmFate {
  name: string;
  shape: VmShape;
  dependent: boolean;
  lost: boolean;
  reason: string | null;
  /** Work rounds it finished, and how many printed the wrong checksum. */
  rounds: number;
  wrong: number;
  /** Its last round's result came after the fault took effect (read when the host got it: at most a batch of rounds late). */
  checkedAfterFault: boolean;
}

export interface InjectionResult {
  index: number;
  fault: string;
  kind: Fault['kind'];
  offsetMs: number;
  /** Machine cycles when it took effect (null: it never did). */
  appliedAt: number | null;
  truth: GroundTruth | null;
  vms: VmFate[];
  /**
   * Simulated ms from the fault taking effect to the cells having the failure report (the round boundary where
   * the monitor read its first record, plus the report's notice; null: nothing read, no recovery).
   */
  detectMs: number | null;
  /** The survivors' agreement, and the cells' cleanup after it (cell-recovery.ts). */
  agreementMs: number | null;
  cleanupMs: number | null;
  /** agreementMs + cleanupMs. */
  handleMs: number | null;
  /** From the fault taking effect to the VMs running again: detectMs + handleMs. */
  recoveryMs: number | null;
  /** Host seconds of the injection (the work and the fault). */
  hostSeconds: number;
  /** What making the machine whole after it took (`makeWhole`). */
  whole: WholeAgain | null;
}

/** What `makeWhole` did after an injection. */
export interface WholeAgain {
  /** Dependent VMs the monitor kept (a poisoned page never read) that the campaign stopped, so that no fault's effects carry over. */
  stopped: string[];
  /** Parts the hardware's repair replaced. */
  partsRepaired: number;
  /** VMs made again from the boot's snapshot. */
  replaced: string[];
  /** Host seconds it took. */
  hostSeconds: number;
}

const MAX_ROUNDS = 6;

/** The campaign's machine, from the booted machine `bytes`: one session for every injection. */
export function campaignSession(bytes: Uint8Array, timeoutMs: number): Promise<MonitorSession> {
  return MonitorSession.boot({ kernel: new Uint8Array(), config: faultsMachine(), vms: CAMPAIGN_VMS.map(({ shape: _s, ...vm }) => vm), monitor: FAULTS_MONITOR, restore: bytes, timeoutMs });
}

/**
 * One injection on the campaign's machine, every VM running: each runs the work, and the fault is due `offset`
 * cycles into it (another round if it has not taken effect by the end). Lost VMs are those the monitor ended;
 * which depended comes from `groundTruth`, read as the fault took effect.
 */
export async function runInjection(session: MonitorSession, r: InjectionRequest): Promise<InjectionResult> {
  const started = performance.now();
  const monitor = session.monitor;
  const notRunning = CAMPAIGN_VMS.filter((spec) => monitor.vm(spec.name)?.state !== 'running').map((spec) => spec.name);
  if (notRunning.length > 0) throw new Error(`injection ${r.index + 1}: ${notRunning.join(', ')} not running at its start`);
  // Set as the fault takes effect (a holder: the listener runs inside the monitor's rounds).
  const seen: { applied?: AppliedFault; truth?: GroundTruth } = {};
  const stop = monitor.hardware.injector.onApply((a) => {
    seen.applied = a;
    seen.truth = groundTruth(monitor, a);
  });
  const appliedAt = (): number | undefined => seen.applied?.appliedAt;
  const fates = CAMPAIGN_VMS.map((spec) => ({ name: spec.name, shape: spec.shape, dependent: false, lost: false, reason: null as string | null, rounds: 0, wrong: 0, checkedAfterFault: false }));
  try {
    // The work spans the fault and the monitor's recovery: a round's checksums come from work that ran through
    // both. Rounds go on only while the fault has not taken effect (time stands still while every VM waits).
    for (let round = 0; round < MAX_ROUNDS && appliedAt() === undefined; round++) {
      const running = CAMPAIGN_VMS.map((spec, i) => ({ spec, i })).filter(({ spec }) => monitor.vm(spec.name)?.state === 'running');
      if (running.length === 0) break;
      const work = running.map(({ spec, i }) => {
        const first = workFirst(r.index, i, round);
        return session.exec(spec.name, workCommand(first)).then(
          (result) => ({ i, ok: result.status === 0 && result.output.split(/\s+/)[0] === expectedMd5(first), done: true, at: monitor.cycles }),
          // The VM ended during the command (lost), or the command failed in a VM still running (wrong).
          () => ({ i, ok: false, done: monitor.vm(spec.name)?.state === 'running', at: monitor.cycles }),
        );
      });
      if (round === 0) await session.atMachineIdle(() => monitor.hardware.injector.schedule(monitor.cycles + r.offset, r.fault));
      for (const w of await Promise.all(work)) {
        if (!w.done) continue;
        fates[w.i]!.rounds++;
        if (!w.ok) fates[w.i]!.wrong++;
        fates[w.i]!.checkedAfterFault = w.at > (appliedAt() ?? Infinity);
      }
    }
  } finally {
    stop();
  }
  for (const [i, spec] of CAMPAIGN_VMS.entries()) {
    const vm = monitor.vm(spec.name)!;
    const fate = fates[i]!;
    fate.lost = vm.state !== 'running';
    fate.reason = fate.lost ? vm.reason : null;
    fate.dependent = seen.truth?.dependents.some((d) => d.vm === spec.name) ?? false;
  }
  // Recovery: the cells' recoveries that began once the fault took effect (one fault per machine: one, or a
  // second if a later record, such as a poisoned line found by a read, started another).
  const { applied, truth } = seen;
  const episodes = applied === undefined ? [] : (monitor.recovery.cellular?.episodes ?? []).filter((e) => e.start >= applied.appliedAt);
  const ms = (cycles: number): number => cycles / CYCLES_PER_MS;
  const first = episodes[0];
  const detectMs = first === undefined ? null : ms(first.start + first.detection - applied!.appliedAt);
  const sum = (f: (e: (typeof episodes)[number]) => number): number | null => (first === undefined ? null : ms(episodes.reduce((n, e) => n + f(e), 0)));
  const agreementMs = sum((e) => e.agreement);
  const cleanupMs = sum((e) => e.cleanup);
  const last = episodes[episodes.length - 1];
  const recoveryMs = last === undefined ? null : ms(last.start + last.total - applied!.appliedAt);
  return {
    index: r.index, fault: faultName(r.fault), kind: r.fault.kind, offsetMs: ms(r.offset), appliedAt: applied?.appliedAt ?? null, truth: truth ?? null,
    vms: fates, detectMs, agreementMs, cleanupMs, handleMs: recoveryMs === null ? null : recoveryMs - detectMs!, recoveryMs,
    hostSeconds: (performance.now() - started) / 1000, whole: null,
  };
}

/**
 * Makes the campaign's machine whole after an injection, at the machine's idle moments (so the campaign stays
 * reproducible): the dependent VMs the monitor kept are stopped (a kept VM may hold a poisoned page it has not
 * read yet, which would end it in a later injection for a fault not that injection's); every failed part is
 * repaired (`MachineFaults.repair`: a node with new memory, routes whole), and the monitor takes it back, a
 * failed cell rejoining through the survivors' agreement; then each VM not running is made again from the
 * boot's snapshot `boot`, where the campaign placed it (a confined VM in its node's cell, a spanning one spread
 * again). Throws if the machine is not whole after it: every cell live, no node or CPU given up, every VM running.
 */
export async function makeWhole(session: MonitorSession, boot: LoadedMonitorSnapshot, truth: GroundTruth | null): Promise<WholeAgain> {
  const started = performance.now();
  const monitor = session.monitor;
  if (monitor.hardware.injector.pending.length > 0) throw new Error('a fault is still due: the injection ended before it took effect');
  const stopped: string[] = [];
  const partsRepaired = await session.atMachineIdle(() => {
    for (const d of truth?.dependents ?? []) {
      const vm = monitor.vm(d.vm);
      if (vm?.state !== 'running') continue;
      monitor.stopVm(vm, `stopped by the faults campaign: it depended on the fault (${d.reasons.join('; ')}) and was kept`);
      stopped.push(d.vm);
    }
    return monitor.hardware.state.repair();
  });
  // The repair's records are read, and a rejoin agreed, in the rounds before the machine is next idle.
  const problems = await session.atMachineIdle(() => {
    const p: string[] = [];
    for (const cell of monitor.cells.cells) if (cell.failure !== undefined) p.push(`cell ${cell.id} has failed (${cell.failure})`);
    if (monitor.recovery.lostNodes.size > 0) p.push(`nodes ${[...monitor.recovery.lostNodes].join(', ')} are given up`);
    if (monitor.recovery.lostCpus.size > 0) p.push(`CPUs ${[...monitor.recovery.lostCpus].join(', ')} are given up`);
    if (monitor.machineFailure !== undefined) p.push(`the machine failed (${monitor.machineFailure})`);
    return p;
  });
  if (problems.length > 0) throw new Error(`the machine is not whole after its repair: ${problems.join('; ')}`);
  const replaced: string[] = [];
  for (const spec of CAMPAIGN_VMS) {
    if (monitor.vm(spec.name)?.state === 'running') continue;
    await session.replaceVm(spec.name, boot, { homeNode: spec.homeNode, cell: spec.shape === 'confined' ? monitor.cells.cellOf(spec.homeNode!).id : undefined });
    if (spec.shape === 'spanning') await session.atMachineIdle(() => spreadPages(monitor, spec.name));
    replaced.push(spec.name);
  }
  return { stopped, partsRepaired, replaced, hostSeconds: (performance.now() - started) / 1000 };
}
