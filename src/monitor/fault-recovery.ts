// The monitor's answer to hardware faults: read the machine's failure report, and end exactly the VMs that depended on what failed, cell by cell.

import type { FailureRecord, FailureReport } from '../board/failure-report.js';
import { describeRecord } from '../board/failure-report.js';
import type { MachineLayout } from '../board/address-map.js';
import { FREE, PAGE, type MachineMemory } from './machine-memory.js';
import type { Cell, CellMap } from './cells.js';
import { CellRecovery, type CellDecisionWork, type CleanupWork, type RecoveryCosts, type RecoveryEpisode } from './cell-recovery.js';
import type { VirtualMachine } from './vm.js';

/** What the recovery needs of the monitor: its VMs, where their vCPUs last ran, and the means to end them. */
export interface RecoveryHost {
  readonly layout: MachineLayout;
  readonly memory: MachineMemory;
  readonly vms: readonly VirtualMachine[];
  /** The machine's cells (cells.ts): each fails as a whole when its monitor node is lost. */
  readonly cells: CellMap;
  /** With several cells: what the hardware lets through between nodes, and which CPUs run (cell-recovery.ts). */
  delivers(from: number, to: number): boolean;
  cpuRuns(cpu: number): boolean;
  /** Machine time (a round boundary). */
  now(): number;
  /**
   * The vCPU whose registers physical CPU `cpu` holds: the last one to run there (a world switch saves the
   * leaving vCPU's state to its state page when another takes the CPU; an idle CPU keeps its last one's).
   */
  heldBy(cpu: number): { vm: number; index: number } | undefined;
  /** Ends `vm` with `reason` (its pages go back, its CPUs go to the others). */
  endVm(vm: VirtualMachine, reason: string): void;
  /** No vCPU is given physical CPU `cpu` again. */
  retireCpu(cpu: number): void;
  /** Physical CPU `cpu`, retired, is given vCPUs again (its hardware was repaired). */
  reviveCpu(cpu: number): void;
  /** The machine pages of the memmap's own tables on node `node` (monitor-data.ts). */
  memmapPages(node: number): readonly number[];
  /** Cell `cell`, readmitted among the cells' revocable objects, gets its run queues and NUMA policy state afresh. */
  readmitCell(cell: number): void;
  /** The page cache's entry of machine page `mpn` goes (a failed or poisoned page is no cache). */
  forgetCached(mpn: number): void;
  /** The page cache lets go of its pages on `nodes` (it knows them itself: the lost nodes' memmap is not read). */
  forgetCachedOn(nodes: ReadonlySet<number>): void;
  log(message: string): void;
}

/**
 * What the one-cell monitor did about one record of the report, and when (machine cycles). It acts at once
 * and charges no time, so `doneAt` is `detectedAt`; with several cells the recovery takes simulated time and
 * its episodes say how much (cell-recovery.ts `RecoveryEpisode`).
 */
export interface HandledRecord {
  readonly record: FailureRecord;
  /** When the monitor read it: at the round boundary it was made at, or at once for a vCPU's bus error. */
  readonly detectedAt: number;
  /** When every VM that depended on it had been ended. */
  readonly doneAt: number;
  /** The VMs its handling ended (a VM that took a bus error was ended just before, by the exit). */
  readonly ended: readonly string[];
}

/**
 * With one cell, node 0 holds what the monitor cannot lose: the code every CPU runs, and its global state
 * (the scheduler, the page allocator's lists, the VMs' records; in this emulation the TypeScript heap, placed
 * on the boot node as a real monitor's would be). Its failure, or a partition that leaves the monitor without
 * it, fails the machine. With several cells each cell's monitor node (its lowest) plays that part for the
 * cell (cells.ts); node 0 is the first cell's.
 */
export const MONITOR_NODE = 0;

/** True for a record of a part repaired. */
function repaired(record: FailureRecord): boolean {
  return record.kind === 'node-repaired' || record.kind === 'cpu-repaired' || record.kind === 'link-repaired' || record.kind === 'router-repaired';
}

/** How the reason of a VM ended by a hardware fault begins (`up` prints `vm NAME stopped: hardware fault: …`). */
export const HARDWARE_FAULT = 'hardware fault';

/**
 * Reads the failure report after each round (`poll`) and the bus errors the VMs' vCPUs take, and ends every
 * VM that depended on failed hardware, each with a line saying why; the others run on. What a VM depends on:
 * - the CPUs that hold its vCPUs' registers (a vCPU's stay in the CPU it last ran on until another vCPU's
 *   world switch there saves them);
 * - the machine pages its pmap maps (the memmap; pages shared with other VMs or the page cache included);
 * - its home node, where its devices and the monitor's data for it (pmap tables, vCPU state pages,
 *   second-level TLBs; monitor-data.ts) lie: a device belongs to its VM's home node;
 * - the cells it depends on (docs/cells.md): a cell fails when its monitor node is lost or cut off from the
 *   primary cell's, and every VM depending on it ends; its nodes and CPUs are given up;
 * - for a partition, all of that on the nodes cut off from the primary cell's monitor node, node 0 until
 *   that cell fails (partitions are fail-stop: the other side stops, and this side treats its nodes as failed).
 * Replicas on a failed node are dropped (the master keeps the contents); the nodes and CPUs lost are never
 * used again, and a poisoned page is retired.
 */
export class FaultRecovery {
  private read = 0;
  /** Nodes and CPUs the monitor has given up, as the report told it. */
  readonly lostNodes = new Set<number>();
  readonly lostCpus = new Set<number>();
  /**
   * What the report says is broken now, as the monitor has read it: nodes and CPUs that failed and were not
   * repaired since, and the interconnect's groups (undefined: one group). A repair brings back only what these
   * no longer hold.
   */
  private readonly brokenNodes = new Set<number>();
  private readonly brokenCpus = new Set<number>();
  private groups: readonly (readonly number[])[] | undefined = undefined;
  /** Failed cells that rejoin in the recovery under way (the agreement decides whether they are in). */
  private readonly joining = new Set<number>();
  /** Set when the machine cannot go on (node 0 lost): every VM has been ended with it. */
  machineFailure: string | undefined = undefined;
  /** Every record read, with when it was read and handled, in order. */
  readonly handled: HandledRecord[] = [];

  /**
   * With several cells, the cells' recovery (cell-recovery.ts): records start an episode in simulated time,
   * the survivors agree over the cell bus, and only then is the decision carried out, here (`carryOut`).
   */
  readonly cellular: CellRecovery | undefined;
  /** While a decision is carried out: the VMs the live cells' own states hold (recovery reads no other). */
  private scope: Set<number> | undefined = undefined;
  private ended: { vm: VirtualMachine; why: string }[] | undefined = undefined;

  constructor(private readonly host: RecoveryHost, private readonly report: FailureReport, costs?: RecoveryCosts) {
    this.cellular = host.cells.count === 1 ? undefined : new CellRecovery({
      cells: host.cells, delivers: (a, b) => host.delivers(a, b), cpuRuns: (cpu) => host.cpuRuns(cpu), carryOut: (work) => this.carryOut(work), now: () => host.now(),
    }, { costs });
  }

  /** True while the cells recover: no vCPU runs. */
  get paused(): boolean {
    return this.cellular?.paused ?? false;
  }

  /** True when the report has records the monitor has not read (a repair made between rounds, say). */
  get unread(): boolean {
    return this.report.count > this.read;
  }

  /** Acts on the report's new records (with several cells, hands them to the cells' recovery). Call at a round boundary. */
  poll(): void {
    if (this.report.count === this.read) return;
    const records = this.report.since(this.read);
    this.read = this.report.count;
    for (const record of records) this.note(record);
    if (this.cellular !== undefined && this.machineFailure === undefined) {
      for (const record of records) this.host.log(`hardware: ${describeRecord(record)}`);
      // A failed cell whose hardware works again rejoins: the agreement this report starts takes it in.
      if (records.some(repaired)) this.rejoinReturned();
      this.cellular.received(records, this.host.now());
      return;
    }
    for (const record of records) {
      const detectedAt = this.host.now();
      const before = new Set(this.running());
      this.handle(record);
      const ended = [...before].filter((vm) => vm.state !== 'running').map((vm) => vm.name);
      this.handled.push({ record, detectedAt, doneAt: this.host.now(), ended });
    }
    if (records.some(repaired)) this.takeBack();
  }

  /**
   * Every failed cell whose monitor node works again and reaches the primary's, with a CPU that works, rejoins
   * (cell-recovery.ts `rejoin`): it counts as live again while the agreement decides whether it is in. Returns
   * whether any did.
   */
  private rejoinReturned(): boolean {
    let any = false;
    for (const cell of this.host.cells.cells) {
      if (cell.failure === undefined || this.joining.has(cell.id) || !this.mayReturn(cell.monitorNode) || !cell.cpus.some((cpu) => !this.brokenCpus.has(cpu))) continue;
      this.host.log(`hardware: cell ${cell.id} rejoins (it had failed: ${cell.failure})`);
      this.cellular!.rejoin(cell.id);
      // Its run queues afresh (its CPUs still retired until it is in), so no one reaches its old ones.
      this.host.readmitCell(cell.id);
      cell.failure = undefined;
      this.joining.add(cell.id);
      any = true;
    }
    return any;
  }

  /** What a record says is broken, or works again. */
  private note(record: FailureRecord): void {
    switch (record.kind) {
      case 'node-failed':
        this.brokenNodes.add(record.node);
        return;
      case 'cpu-stopped':
        this.brokenCpus.add(record.cpu);
        return;
      case 'node-repaired':
        this.brokenNodes.delete(record.node);
        return;
      case 'cpu-repaired':
        this.brokenCpus.delete(record.cpu);
        return;
      case 'partition':
        this.groups = record.groups.length === 1 ? undefined : record.groups;
        return;
      default:
        return;
    }
  }

  /** True when node `node` works, as far as the report says, and reaches the primary cell's monitor node. */
  private mayReturn(node: number): boolean {
    if (this.brokenNodes.has(node)) return false;
    const primary = this.host.cells.primary?.monitorNode ?? MONITOR_NODE;
    return this.groups === undefined || this.groups.some((g) => g.includes(node) && g.includes(primary));
  }

  /**
   * After a repair: the nodes and CPUs given up that work again, in live cells, are taken back (a node's
   * memory is new; nothing depended on it any more, since what did has ended). A machine that failed stays so.
   */
  private takeBack(): void {
    if (this.machineFailure !== undefined) return;
    const live = (node: number): boolean => this.host.cells.cellOf(node).failure === undefined;
    const nodes = [...this.lostNodes].filter((n) => this.mayReturn(n) && live(n)).sort((a, b) => a - b);
    for (const node of nodes) {
      try {
        this.host.memory.reviveNode(node, this.host.memmapPages(node));
      } catch (error) {
        this.host.log(`hardware: node ${node} is not taken back: ${error instanceof Error ? error.message : String(error)}`);
        continue;
      }
      this.lostNodes.delete(node);
    }
    const layout = this.host.layout;
    const cpus = [...this.lostCpus].filter((c) => !this.brokenCpus.has(c) && !this.lostNodes.has(layout.hartNode[c]!) && live(layout.hartNode[c]!)).sort((a, b) => a - b);
    for (const cpu of cpus) {
      this.lostCpus.delete(cpu);
      this.host.reviveCpu(cpu);
    }
    if (nodes.length + cpus.length === 0) return;
    const left = layout.nodes.filter((n) => !this.lostNodes.has(n.id)).map((n) => n.id);
    const cells = this.host.cells.count === 1 ? '' : ` (cell${this.host.cells.live.length === 1 ? '' : 's'} ${this.host.cells.live.map((c) => c.id).join(', ')})`;
    this.host.log(`hardware: repaired${nodes.length > 0 ? ` node${nodes.length > 1 ? 's' : ''} ${nodes.join(', ')}` : ''}${cpus.length > 0 ? `${nodes.length > 0 ? ',' : ''} CPU${cpus.length > 1 ? 's' : ''} ${cpus.join(', ')}` : ''} taken back; the monitor goes on with node${left.length === 1 ? '' : 's'} ${left.join(', ')}${cells}`);
  }

  /** With several cells, moves a running recovery to the round boundary `now`; returns it once it has ended. */
  advance(now: number): RecoveryEpisode | undefined {
    const episode = this.cellular?.advance(now);
    if (episode !== undefined) {
      const ms = (cycles: number): string => (cycles / 100_000).toFixed(3);
      const what = episode.failedCells.length === 0 && episode.vmsEnded.length === 0 && episode.joined.length > 0
        ? `cell${episode.joined.length > 1 ? 's' : ''} ${episode.joined.join(', ')} rejoined in` : 'recovery took';
      this.host.log(`hardware: ${what} ${ms(episode.total)} ms (detection ${ms(episode.detection)}, agreement ${ms(episode.agreement)}, cleanup ${ms(episode.cleanup)}); cells ${episode.live.join(', ') || 'none'} go on`);
      // A cell that failed in it although the report says its hardware works (a repair read in the same
      // recovery as the fault it repaired) rejoins at once, in an agreement of its own.
      if (this.machineFailure === undefined && this.rejoinReturned()) this.cellular!.received([], now, true);
    }
    return episode;
  }

  /**
   * The survivors' decision: the cells outside the live set fail (with the VMs that depended on them), then
   * the records are handled as without cells, over the VMs the live cells' own states hold.
   */
  private carryOut(work: CellDecisionWork): CleanupWork {
    const failedCells: number[] = [];
    const liveBefore = this.host.cells.live.map((c) => c.id);
    const ended: { vm: VirtualMachine; why: string }[] = [];
    let joined: number[] = [];
    this.ended = ended;
    this.scope = new Set([...work.states.values()].flatMap((state) => [...state.vms.keys()]));
    try {
      const leaving = this.host.cells.live.filter((c) => !work.live.includes(c.id));
      // Their states are revoked already: no VM that ends with one may touch another's allocators either.
      for (const cell of leaving) this.host.memory.letGoPools(cell.nodes, cell.id);
      for (const cell of leaving) {
        failedCells.push(cell.id);
        const why = this.whyFailed(cell, work.records);
        this.failCell(cell, why);
        if (this.host.cells.live.length === 0) {
          this.failMachine(`cell ${cell.id} failed (${why}): every cell has failed`);
          break;
        }
        this.releaseNodes(cell.nodes.filter((n) => !this.lostNodes.has(n)), `cell ${cell.id} failed`);
      }
      for (const record of work.records) if (record.kind !== 'node-failed' || !this.lostNodes.has(record.node)) this.handle(record, false);
      // The cells that rejoined and are in: their nodes and CPUs back.
      joined = [...this.joining].filter((cell) => work.live.includes(cell) && this.host.cells.cells[cell]!.failure === undefined);
      this.joining.clear();
      if (joined.length > 0 || work.records.some(repaired)) this.takeBack();
    } finally {
      this.scope = undefined;
      this.ended = undefined;
    }
    // Cells the records' handling failed too (their monitor node among the nodes lost, or their last CPU).
    for (const id of liveBefore) if (this.host.cells.cells[id]!.failure !== undefined && !failedCells.includes(id)) failedCells.push(id);
    // Each live cell's cleanup: the guest pages of the VMs at home in it, checked; the VMs among them ended.
    // Only repairs (a cell rejoining): nothing failed, so nothing is checked.
    const check = failedCells.length > 0 || work.records.some((r) => !repaired(r));
    const perCell = new Map<number, { pages: number; ended: number }>();
    for (const [cell, state] of work.states) {
      let pages = 0;
      let count = 0;
      for (const [id, entry] of state.vms) {
        if (!entry.home || !check) continue;
        pages += this.host.vms[id]?.pmap.pages ?? 0;
        if (ended.some((e) => e.vm.id === id)) count++;
      }
      perCell.set(cell, { pages, ended: count });
    }
    return { failedCells, joined, vmsEnded: ended.map((e) => e.vm.name), perCell };
  }

  /** Why cell `cell` is not in the survivors' live set, from what the records say. */
  private whyFailed(cell: Cell, records: readonly FailureRecord[]): string {
    const node = cell.monitorNode;
    if (records.some((r) => r.kind === 'node-failed' && r.node === node)) return `node ${node}, which held its monitor state, failed`;
    const primary = this.host.cells.primary;
    const partition = [...records].reverse().find((r) => r.kind === 'partition');
    if (partition?.kind === 'partition' && primary !== undefined && !partition.groups.some((g) => g.includes(node) && g.includes(primary.monitorNode))) {
      return `node ${node}, which held its monitor state, was cut off from node ${primary.monitorNode} by a partition`;
    }
    if (cell.cpus.every((cpu) => this.lostCpus.has(cpu) || records.some((r) => r.kind === 'cpu-stopped' && r.cpu === cpu))) return 'no CPU is left in it';
    return 'it did not answer the other cells';
  }

  private handle(record: FailureRecord, log = true): void {
    if (this.machineFailure !== undefined) return;
    if (log) this.host.log(`hardware: ${describeRecord(record)}`);
    switch (record.kind) {
      case 'node-failed':
        this.loseNodes([record.node], `node ${record.node} failed`);
        return;
      case 'cpu-stopped':
        this.loseCpus([record.cpu], `CPU ${record.cpu} stopped`);
        return;
      case 'partition': {
        const primary = this.host.cells.primary!.monitorNode;
        const kept = record.groups.find((g) => g.includes(primary)) ?? [];
        const cut = this.host.layout.nodes.map((n) => n.id).filter((n) => !kept.includes(n) && !this.lostNodes.has(n));
        if (cut.length > 0) this.loseNodes(cut, `node${cut.length > 1 ? 's' : ''} ${cut.join(', ')} cut off from node ${primary} by a partition`);
        return;
      }
      case 'bus-error':
        if (record.syndrome === 'poisoned') this.losePage(Math.floor((record.address - this.host.memory.addressOf(0)) / PAGE));
        return;
      case 'link-failed':
      case 'router-failed':
        // Routes changed; what they cut off comes as a partition record.
        return;
      case 'node-repaired':
      case 'cpu-repaired':
      case 'link-repaired':
      case 'router-repaired':
        // Parts back: taken back once every record is handled (`takeBack`).
        return;
    }
  }

  /**
   * Nodes `nodes` are gone: their CPUs and memory, and every VM that depended on them. A cell whose monitor
   * node is among them fails whole first; with one cell that is the machine.
   */
  private loseNodes(nodes: readonly number[], why: string): void {
    const cells = this.host.cells;
    if (cells.count === 1) {
      if (nodes.includes(MONITOR_NODE)) {
        this.failMachine(`${why}: node ${MONITOR_NODE} held the monitor's code and global state, so the machine stops`);
        return;
      }
    } else {
      const failing = cells.live.filter((c) => nodes.includes(c.monitorNode));
      if (failing.length > 0) {
        for (const cell of failing) this.host.memory.letGoPools(cell.nodes, cell.id);
        for (const cell of failing) this.failCell(cell, `node ${cell.monitorNode}, which held its monitor state, ${this.lostHow(why, cell.monitorNode)}`);
        nodes = [...new Set([...nodes, ...failing.flatMap((c) => c.nodes)])].filter((n) => !this.lostNodes.has(n)).sort((a, b) => a - b);
      }
      if (cells.live.length === 0) {
        this.failMachine(`${why}: every cell has failed`);
        return;
      }
    }
    this.releaseNodes(nodes, why);
  }

  /** How node `node` went, from `why` ("node 2 failed" → "failed"; a partition: "was cut off …"). */
  private lostHow(why: string, node: number): string {
    return why === `node ${node} failed` ? 'failed' : `was lost (${why})`;
  }

  /** Cell `cell` fails: every VM that depends on it ends (its nodes and CPUs go with the rest, `releaseNodes`). */
  private failCell(cell: Cell, why: string): void {
    cell.failure = why;
    // Its nodes' page allocators and its registry of translated code were its state: gone with it.
    this.host.memory.letGoPools(cell.nodes, cell.id);
    this.host.memory.code.drop(cell.id);
    this.host.log(`hardware: cell ${cell.id} failed: ${why}`);
    // Its VMs end with it: what they ran on is gone (the host's list of VMs, not the dead cell's state, says which).
    for (const vm of this.host.vms) if (vm.state === 'running' && vm.cells.includes(cell.id)) this.endVm(vm, `cell ${cell.id} failed: ${why}`);
  }

  /** The nodes are given up: the VMs still running that depended on them end, then their CPUs, replicas, cache entries go. */
  private releaseNodes(nodes: readonly number[], why: string): void {
    const memory = this.host.memory;
    for (const node of nodes) {
      this.lostNodes.add(node);
      memory.retireNode(node);
    }
    const cpus = nodes.flatMap((n) => this.host.layout.nodes[n]!.harts);
    const onLost = (mpn: number): boolean => this.lostNodes.has(memory.nodeOf(mpn));
    for (const vm of this.running()) {
      const reasons: string[] = [];
      for (const cpu of cpus) {
        const held = this.host.heldBy(cpu);
        if (held?.vm === vm.id) reasons.push(`vCPU ${held.index}'s state was on CPU ${cpu}`);
      }
      if (nodes.includes(vm.pmap.homeNode)) reasons.push(`its home node ${vm.pmap.homeNode} held its devices and the monitor's data for it`);
      let pages = 0;
      for (let gppn = 0; gppn < vm.pmap.pages; gppn++) {
        const mpn = vm.pmap.lookup(gppn);
        if (mpn !== FREE && onLost(mpn)) pages++;
      }
      if (pages > 0) reasons.push(`${pages} of its pages were there`);
      const tables = vm.tables.savePages().flat().filter(onLost).length;
      if (tables > 0) reasons.push(`${tables} pages of the monitor's data for it were there`);
      if (reasons.length > 0) this.endVm(vm, `${why}: ${reasons.join('; ')}`);
    }
    this.loseCpus(cpus, why);
    // What survives must not come to lean on the lost nodes: their replicas go (the masters hold the
    // contents), and pages only reserved for large pages there go back (a later touch would land there).
    for (const vm of this.running()) {
      if (vm.pmap.replicatedPages > 0) vm.pmap.dropReplicas(this.lostNodes);
      vm.pmap.giveBackReserved(this.lostNodes);
    }
    this.host.forgetCachedOn(this.lostNodes);
    const left = this.host.layout.nodes.filter((n) => !this.lostNodes.has(n.id)).map((n) => n.id);
    const cells = this.host.cells.count === 1 ? '' : ` (cell${this.host.cells.live.length === 1 ? '' : 's'} ${this.host.cells.live.map((c) => c.id).join(', ')})`;
    this.host.log(`hardware: ${why}; the monitor goes on with node${left.length === 1 ? '' : 's'} ${left.join(', ')}${cells}`);
  }

  /** CPUs `cpus` stopped: the VMs whose vCPU state was on one of them go; nothing runs there again. */
  private loseCpus(cpus: readonly number[], why: string): void {
    for (const cpu of cpus) {
      if (this.lostCpus.has(cpu)) continue;
      this.lostCpus.add(cpu);
      this.host.retireCpu(cpu);
      const held = this.host.heldBy(cpu);
      const vm = held === undefined ? undefined : this.running().find((v) => v.id === held.vm);
      if (vm !== undefined) this.endVm(vm, `${why}: vCPU ${held!.index}'s state was on CPU ${cpu}`);
    }
    if (this.machineFailure !== undefined) return;
    if (this.lostCpus.size === this.host.layout.harts) {
      this.failMachine(`${why}: no CPU is left`);
      return;
    }
    // With several cells, a cell left with no CPU can run none of its VMs: it fails, and gives its nodes up.
    if (this.host.cells.count === 1) return;
    for (const cell of this.host.cells.live) {
      if (!cell.cpus.every((cpu) => this.lostCpus.has(cpu))) continue;
      this.failCell(cell, `no CPU is left in it (${why})`);
      if (this.host.cells.live.length === 0) {
        this.failMachine(`${why}: every cell has failed`);
        return;
      }
      this.releaseNodes(cell.nodes.filter((n) => !this.lostNodes.has(n)), `cell ${cell.id} failed`);
    }
  }

  /** Machine page `mpn` is poisoned: every VM that maps it goes, and it is never used again. */
  private losePage(mpn: number): void {
    const memory = this.host.memory;
    if (mpn < 0 || mpn >= memory.totalPages) return;
    const address = memory.addressOf(mpn);
    // On a failed cell's node its memmap entry is gone, and whoever mapped it has ended with the cell.
    const users = new Set(memory.pageGone(mpn) ? [] : memory.usersOf(mpn).map((u) => u.vm));
    for (const vm of this.running()) {
      if (users.has(vm.id)) this.endVm(vm, `machine page 0x${address.toString(16)} is poisoned and the VM mapped it`);
    }
    this.host.forgetCached(mpn);
    memory.retirePage(mpn);
  }

  private failMachine(why: string): void {
    this.machineFailure = why;
    this.host.log(`hardware: the machine failed: ${why}`);
    for (const vm of this.host.vms) if (vm.state === 'running') this.endVm(vm, `the machine failed: ${why}`);
  }

  /** The running VMs recovery may act on: with several cells, while a decision is carried out, those the live cells hold. */
  private running(): VirtualMachine[] {
    const scope = this.scope;
    return this.host.vms.filter((vm) => vm.state === 'running' && (scope === undefined || scope.has(vm.id)));
  }

  private endVm(vm: VirtualMachine, why: string): void {
    this.ended?.push({ vm, why });
    this.host.endVm(vm, why);
  }
}
