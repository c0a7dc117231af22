// The Disco monitor: VMs on one (ccNUMA) machine, their vCPUs scheduled on its CPUs round by round.

import { CpuTimes } from './cpu-time.js';
import { layoutMachine, type MachineLayout } from '../board/address-map.js';
import { SLICE } from '../board/machine.js';
import { attachTimingModel, setExecutionMode, type ExecutionMode } from '../board/timing-mode.js';
import { timingModelFor } from '../board/topology.js';
import { MachineHardware } from '../board/hardware.js';
import { FaultRecovery, HARDWARE_FAULT } from './fault-recovery.js';
import { CellMap, multiCellProblems } from './cells.js';
import { MonitorError } from './monitor-error.js';
import type { TimingModel } from '../timing/timing-model.js';
import { G_STAGE_TLB_ENTRIES } from '../cpu/g-stage-tlb.js';
import { KIND_CELL_MIGRATION, KIND_LENT_MEMORY, KIND_SCANNER, KIND_WORLD_SWITCH } from '../cpu/monitor-kinds.js';
import type { MemoryTiming } from '../cpu/memory-timing.js';
import { MachineMemory, OutOfMachineMemory, PAGE } from './machine-memory.js';
import { MemmapTable } from './monitor-data.js';
import { NumaPolicy, policyProblems, type NumaPolicyParameters, type PolicySignal } from './numa-policy.js';
import { MissCounters } from '../timing/miss-counters.js';
import { mergeIdenticalPages, type SharingResult } from './page-sharing.js';
import { PageCache } from './page-cache.js';
import { PageScanner, scanProblems, type ScanParameters } from './page-scanner.js';
import { accountMemory, SharingLedger, type MemoryAccount } from './sharing-ledger.js';
import { noReadMetrics, type BlockPageHook, type BlockReadMetrics } from '../devices/virtio/blk.js';
import { DEFAULT_QUANTUM_ROUNDS } from './scheduler.js';
import { CELL_MIGRATION, CellScheduler, cellMigrationCycles, type CellMigration } from './cell-scheduler.js';
import { borrowProblems, defaultBorrowParameters, MemoryBorrowing, type BorrowParameters } from './memory-borrowing.js';
import { VcpuRecord } from './vcpu-record.js';
import { Pager, type VmSwapAccount } from './pager.js';
import { DEFAULT_SWAP_COSTS } from './costs.js';
import { VirtioNet, type NetBackend } from '../devices/virtio/net.js';
import { VirtualSwitch, vmMac } from './virtual-switch.js';
import type { BalloonCosts } from './costs.js';
import { DEFAULT_COSTS, VirtualMachine, type MmuMode, type MonitorCosts, type VmOptions } from './vm.js';

import type { MonitorOptions, SubnetOptions, VmSpec } from './monitor-options.js';

export type { MonitorOptions, SubnetOptions, VmSpec };

export { MonitorError };

/**
 * The monitor. Each round (SLICE cycles of machine time) the scheduler gives each physical CPU a vCPU;
 * a CPU that changes vCPU makes a world switch (its first-level TLB emptied, the cost charged). Every VM's
 * time moves with the machine's, so a vCPU without a CPU sees time pass as on a busy real machine. When no
 * vCPU of any VM can run, time jumps to the earliest timer of all VMs. A VM whose run throws (a monitor bug
 * or an impossible request) is ended as crashed; the others go on.
 */
export class Monitor {
  readonly layout: MachineLayout;
  readonly memory: MachineMemory;
  /** Where the memmap lies in machine memory (the monitor's own data, monitor-data.ts). */
  readonly memmap: MemmapTable;
  readonly scheduler: CellScheduler;
  readonly vms: VirtualMachine[] = [];
  readonly costs: MonitorCosts;
  /** The switch every VM's network card is plugged into. */
  readonly subnet = new VirtualSwitch();
  /** Where each shared machine page came from (the memory account's savings by source). */
  readonly ledger: SharingLedger;
  /** The machine's one page cache: disk blocks of shared bases, and boot images when `shareBootImages`. */
  readonly pageCache: PageCache;
  /** Every virtio-blk read's shape, per disk given a hook (`diskHook`): the reads that could map a page. */
  readonly diskReads: BlockReadMetrics[] = [];
  private pageScanner: PageScanner | undefined = undefined;
  /** How guest-physical maps to machine in every VM. */
  get mmu(): MmuMode {
    return this.options.mmu ?? 'software';
  }

  /** Timing mode's model of the machine (its CPUs and nodes, not any VM's), when configured. */
  readonly timingModel: TimingModel | undefined;
  private mode: ExecutionMode = 'fast';
  private readonly ports = new Map<VirtualMachine, NetBackend>();
  /** Machine time in cycles, and instructions run by all vCPUs. */
  cycles = 0;
  instructions = 0;
  /**
   * Idle time never jumps beyond this many cycles past now (a paced runner keeps it at the host's time;
   * 0 holds it, for a host about to give the VMs input).
   */
  idleSkipLimit = Infinity;
  private readonly records = new Map<VirtualMachine, VcpuRecord[]>();
  private numaPolicy: NumaPolicy | undefined = undefined;
  /** Each physical CPU's busy cycles by kind (the dashboard's per-CPU time). */
  readonly cpuTimes: CpuTimes;
  /** The TLB-miss signal's counters, once a policy that reads them is set. */
  private tlbCounters: MissCounters | undefined = undefined;
  /** The TLB-miss signal's misses, to pages on the missing vCPU's node or not (the policy's locality series). */
  private readonly tlbMisses = { local: 0, remote: 0 };
  /** Per node: the memory sizes of the running VMs at home there (where the next VM's home goes). */
  private readonly promisedOnNode: number[];
  private nextId = 0;

  /**
   * The physical machine. The monitor uses its memory, its failure report and its CPUs' state as the
   * emulator plays them; it never reads the fault injector's state (test/project/fault-isolation.test.ts).
   */
  readonly hardware: MachineHardware;
  /** The monitor's answer to hardware faults (fault-recovery.ts). */
  readonly recovery: FaultRecovery;
  /** The machine's cells: where VMs are placed, and what fails together (cells.ts). */
  readonly cells: CellMap;
  /** Memory borrowing between cells, when asked for (memory-borrowing.ts). */
  readonly borrowing: MemoryBorrowing | undefined;
  /** Monitor-level paging to a swap store, when asked for (pager.ts, MonitorOptions.swap). */
  readonly pager: Pager | undefined;

  constructor(private readonly options: MonitorOptions) {
    this.layout = layoutMachine(options.config);
    this.cpuTimes = new CpuTimes(this.layout.harts);
    this.cells = CellMap.forMonitor(this.layout, options);
    this.hardware = options.hardware ?? new MachineHardware(this.layout);
    if (!this.hardware.fits(this.layout)) throw new Error('the hardware given to the monitor has another layout than its configuration');
    this.memory = new MachineMemory(this.layout, this.hardware.regions);
    // The memmap lives in machine memory, an entry per page on the page's own node.
    this.memmap = new MemmapTable(this.memory);
    this.ledger = new SharingLedger(this.memory);
    this.pageCache = new PageCache(this.memory, this.ledger);
    this.costs = options.costs ?? DEFAULT_COSTS;
    this.promisedOnNode = this.layout.nodes.map(() => 0);
    // Memory running short gives back the replicas first (the masters keep the contents), and only when there
    // are none breaks the VMs' partly touched large pages, before anyone is refused a page.
    this.memory.reclaim = (nodes) => {
      // Pages the page cache alone holds are only a cache.
      const cached = this.pageCache.trim();
      if (cached > 0) return cached;
      const replicas = this.vms.reduce((n, vm) => n + (vm.state === 'running' ? vm.pmap.dropReplicas(nodes) : 0), 0);
      return replicas > 0 ? replicas : this.vms.reduce((n, vm) => n + (vm.state === 'running' ? vm.pmap.giveBackReserved(nodes) : 0), 0);
    };
    this.timingModel = options.timing === undefined ? undefined : timingModelFor(this.layout, options.timing.latencies, options.timing.cache);
    // The physical machine's timing follows its interconnect: a rerouted miss costs its new route.
    if (this.timingModel !== undefined) this.hardware.attachTiming(this.timingModel);
    if (options.scan !== undefined) this.setScan(options.scan);
    this.recovery = new FaultRecovery({
      layout: this.layout, memory: this.memory, vms: this.vms, cells: this.cells,
      delivers: (a, b) => this.hardware.delivers(a, b), cpuRuns: (cpu) => this.hardware.cpuRuns(cpu), now: () => this.cycles,
      heldBy: (cpu) => this.scheduler.lastOn(cpu),
      endVm: (vm, reason) => this.endVm(vm, 'stopped', `${HARDWARE_FAULT}: ${reason}`),
      retireCpu: (cpu) => this.scheduler.retirePcpu(cpu),
      reviveCpu: (cpu) => this.scheduler.revivePcpu(cpu),
      memmapPages: (node) => this.memmap.savePages()[node]!,
      readmitCell: (cell) => {
        this.scheduler.readmitCell(cell);
        this.numaPolicy?.readmitCell(cell);
        this.borrowing?.readmitCell(cell);
      },
      forgetCached: (mpn) => this.pageCache.forget(mpn),
      forgetCachedOn: (nodes) => this.pageCache.forgetOn(nodes),
      log: (message) => this.options.log?.(message),
    }, this.hardware.report, options.recoveryCosts);
    const cellular = this.recovery.cellular;
    if (cellular !== undefined) {
      this.memory.lends = (vm, node) => cellular.lend(vm, node);
      // Each node's page allocator is its cell's state: revocable, so that it dies with the cell.
      this.memory.placePools((node, pool) => cellular.objects.create(this.cells.cellOf(node).id, pool));
    }
    this.borrowing = this.makeBorrowing(options.borrow);
    // Each cell schedules its own CPUs, its run queues among its revocable state (cell-scheduler.ts).
    this.scheduler = new CellScheduler({
      pcpuNodes: this.layout.hartNode, quantumRounds: options.quantumRounds, gang: options.gang, idleBalance: options.idleBalance, balancePeriodRounds: options.balancePeriodRounds,
      nodeDistance: (a, b) => this.layout.distances[a]![b]!, cells: this.cells.cells.map((c) => c.cpus), objects: cellular?.objects,
      bus: cellular?.bus, now: () => this.cycles, roundCycles: SLICE,
    });
    // After the cells' recovery: each cell's policy state is among its revocable objects.
    if (options.policy !== undefined) this.setPolicy(options.policy);
    this.pager = this.makePager(options.swap);
  }

  /** The pager over `swap`'s store (undefined: off). Throws MonitorError. */
  private makePager(swap: MonitorOptions['swap']): Pager | undefined {
    if (swap === undefined) return undefined;
    if (this.cells.count > 1) throw new MonitorError('paging to a swap file needs one cell: a cell\'s pages would go to one store shared by cells that fail apart');
    try {
      return new Pager({
        memory: this.memory, ledger: this.ledger,
        pmapOf: (vm) => (this.vms[vm]?.state === 'running' ? this.vms[vm]!.pmap : undefined),
        forgetCached: (mpn) => this.pageCache.forget(mpn),
        reclaim: () => this.memory.reclaim?.() ?? 0,
      }, swap, swap.costs ?? DEFAULT_SWAP_COSTS);
    } catch (error) {
      if (error instanceof RangeError) throw new MonitorError(`swap: ${error.message}`);
      throw error;
    }
  }

  /** What the pager did for `vm` and what of it is in the swap store now; undefined without paging. */
  swapAccount(vm: VirtualMachine): VmSwapAccount | undefined {
    return this.pager?.account(vm.id);
  }

  /** Borrowing as `borrow` asks (undefined: off), its defaults scaled to the machine. Throws MonitorError. */
  private makeBorrowing(borrow: Partial<BorrowParameters> | undefined): MemoryBorrowing | undefined {
    if (borrow === undefined) return undefined;
    const cellular = this.recovery.cellular;
    if (cellular === undefined) throw new MonitorError('memory borrowing is between cells: it needs several (machine.cells)');
    const parameters = { ...defaultBorrowParameters(this.layout.nodes.reduce((n, node) => n + node.size, 0), this.cells.count), ...borrow };
    const problems = borrowProblems(parameters);
    if (problems.length > 0) throw new MonitorError(`memory borrowing: ${problems.join('; ')}`);
    const borrowing = new MemoryBorrowing({
      memory: this.memory, cells: this.cells, distances: this.layout.distances, bus: cellular.bus, objects: cellular.objects, now: () => this.cycles,
      // A VM still being made depends on its lenders once it is (createVm).
      dependOn: (id, cell) => {
        const vm = this.vms[id];
        if (vm !== undefined && vm.state === 'running' && !vm.cells.includes(cell)) this.vmDependsOn(vm, cell);
      },
      owe: (vm, cycles) => cellular.owe(vm, cycles),
    }, parameters);
    this.memory.loans = borrowing;
    return borrowing;
  }

  /** Why the machine failed (node 0 lost, or every CPU): every VM has been ended with it. Undefined while it runs. */
  get machineFailure(): string | undefined {
    return this.recovery.machineFailure;
  }

  /** The content-sharing scanner, once asked for. */
  get scanner(): PageScanner | undefined {
    return this.pageScanner;
  }

  /** Starts the content-sharing scanner with `parameters` (a new one: it starts over), or stops it (undefined). Throws MonitorError for bad parameters. */
  setScan(parameters: ScanParameters | undefined): void {
    if (parameters === undefined) {
      this.pageScanner = undefined;
      return;
    }
    const problems = [...scanProblems(parameters, this.layout.harts), ...multiCellProblems(this.cells.count, { scan: parameters })];
    if (problems.length > 0) throw new MonitorError(`page scanner: ${problems.join('; ')}`);
    this.pageScanner = new PageScanner(this.memory, this.ledger, parameters);
  }

  /**
   * The page hook for a copy-on-write disk over base `baseId` in `vm` (host/drives.ts calls it while
   * attaching), counting the disk's reads in `metrics`; undefined when the disk cache is off or the VM opted
   * out of sharing (its reads are then copies, still counted).
   */
  diskHook(vm: VirtualMachine, baseId: string, metrics: BlockReadMetrics = noReadMetrics()): BlockPageHook | undefined {
    this.diskReads.push(metrics);
    if (!(this.options.diskCache ?? this.cells.count === 1) || !vm.sharesWithOthers) return undefined;
    return this.pageCache.blockHook(vm.pmap, baseId, () => vm.state === 'running');
  }

  /** The machine's memory and every running VM's, accounted (sharing-ledger.ts): private, shared, reserved, savings by source. */
  memoryAccount(): MemoryAccount {
    return accountMemory(this.memory, this.ledger, this.vms.filter((vm) => vm.state === 'running').map((vm) => vm.pmap),
      (mpn) => this.pageCache.holds(mpn), this.pageCache.size);
  }


  /** How the monitor was made, as plain data (a snapshot records it, to make the same monitor again). */
  get settings(): Required<Pick<MonitorOptions, 'config' | 'costs' | 'quantumRounds' | 'mmu' | 'placement' | 'gStageTlbEntries'>> & Pick<MonitorOptions, 'timing' | 'subnet'> & { cells?: number[][]; diskCache?: false; shareBootImages?: true; gang?: true; idleBalance?: true; balancePeriodRounds?: number; borrow?: BorrowParameters; balloonCosts?: BalloonCosts } {
    const o = this.options;
    return {
      config: o.config, costs: this.costs, quantumRounds: o.quantumRounds ?? DEFAULT_QUANTUM_ROUNDS, mmu: this.mmu,
      placement: o.placement ?? 'home', gStageTlbEntries: o.gStageTlbEntries ?? G_STAGE_TLB_ENTRIES, timing: o.timing, subnet: o.subnet,
      // Only with several cells, so that a one-cell monitor's settings are what they were before cells; the page
      // cache's two switches only when not as by default, likewise.
      ...(this.cells.count > 1 ? { cells: this.cells.spec } : {}),
      ...(this.options.diskCache === false && this.cells.count === 1 ? { diskCache: false as const } : {}),
      ...(this.options.shareBootImages === true ? { shareBootImages: true as const } : {}),
      ...(this.options.gang === true ? { gang: true as const } : {}),
      ...(this.options.idleBalance === true ? { idleBalance: true as const } : {}),
      ...((this.options.balancePeriodRounds ?? 0) > 0 ? { balancePeriodRounds: this.options.balancePeriodRounds } : {}),
      ...(this.borrowing !== undefined ? { borrow: { ...this.borrowing.parameters } } : {}),
      ...(this.options.balloonCosts !== undefined ? { balloonCosts: { ...this.options.balloonCosts } } : {}),
    };
  }

  /** Disco's NUMA policy, once asked for (on the cache-miss signal it acts in timing mode only; never while disabled). */
  get policy(): NumaPolicy | undefined {
    return this.numaPolicy;
  }

  /**
   * Turns Disco's NUMA policy on with `parameters` (from the next round), or off (undefined). Throws
   * MonitorError for bad parameters, or on the cache-miss signal without a timing configuration (the policy
   * then reads timing mode's miss counters).
   */
  setPolicy(parameters: NumaPolicyParameters | undefined): void {
    if (parameters === undefined) {
      this.numaPolicy?.disable();
      return;
    }
    const tlb = this.policySignal === 'tlb-misses';
    if (!tlb && this.timingModel === undefined) {
      throw new MonitorError('the NUMA policy needs a timing configuration: it reads the miss counters of timing mode (or give it the TLB-miss signal)');
    }
    const problems = policyProblems(parameters);
    if (problems.length > 0) throw new MonitorError(`NUMA policy: ${problems.join('; ')}`);
    if (this.numaPolicy !== undefined) {
      this.numaPolicy.setParameters(parameters);
      return;
    }
    let counters = this.timingModel?.counters;
    if (tlb) counters = this.tlbCounters = new MissCounters(this.memory.addressOf(0), this.memory.totalPages * PAGE, this.layout.nodes.length);
    this.numaPolicy = new NumaPolicy({
      memory: this.memory, memmap: this.memmap, costs: this.costs, vms: this.vms,
      cellOfNode: this.layout.nodes.map((n) => this.cells.cellOf(n.id).id), objects: this.recovery.cellular?.objects, paused: () => this.recovery.paused,
      nodeOfCpu: (cpu) => this.layout.hartNode[cpu]!,
      lastCpu: (vm, h) => this.records.get(vm)?.[h.id]?.lastPcpu ?? -1,
      now: () => this.cycles,
      signalMisses: () => {
        if (tlb) return { local: this.tlbMisses.local, remote: this.tlbMisses.remote };
        const sum = (a: ArrayLike<number>): number => {
          let n = 0;
          for (let i = 0; i < a.length; i++) n += a[i]!;
          return n;
        };
        return { local: sum(this.timingModel!.missesLocal), remote: sum(this.timingModel!.missesRemote) };
      },
    }, counters!, parameters, this.policySignal);
  }

  /** What the policy counts (MonitorOptions.policySignal). */
  get policySignal(): PolicySignal {
    return this.options.policySignal ?? 'cache-misses';
  }

  /** Fast mode (instructions only) or timing mode (every access charged to the machine's model). */
  get executionMode(): ExecutionMode {
    return this.mode;
  }

  /**
   * Switches every VM between fast and timing mode (between rounds). Each VM's machine has the physical
   * machine's model attached, so a vCPU charges the cache of the physical CPU it runs on, and misses cost by
   * the machine node that holds the machine page: VMs share the CPUs' caches as they share the CPUs (and a
   * device's DMA drops the lines it wrote, as on the bare machine). Throws without a timing configuration.
   */
  setExecutionMode(mode: ExecutionMode): void {
    if (this.timingModel === undefined) throw new MonitorError('timing mode needs a timing configuration of the machine');
    this.mode = mode;
    for (const vm of this.vms) if (vm.state === 'running') setExecutionMode(vm.machine, mode);
  }

  get cpus(): number {
    return this.layout.harts;
  }

  /** Bytes of machine memory neither in use nor reserved for a VM's large page. */
  get memoryFree(): number {
    return this.layout.nodes.reduce((sum, n) => sum + this.memory.pagesFree(n.id), 0) * PAGE;
  }

  /**
   * Creates a VM (not yet booted). Nothing is reserved: the VM takes machine pages as it touches them, so
   * the VMs' sizes may add up to more than the machine has (overcommit); a VM that finds the machine full
   * is stopped alone. Its home node is the one with the least memory of other VMs at home there.
   */
  createVm(spec: VmSpec): VirtualMachine {
    if (this.vms.some((vm) => vm.name === spec.name && vm.state === 'running')) throw new MonitorError(`a VM named '${spec.name}' is already running`);
    if (spec.memoryBytes % PAGE !== 0 || spec.memoryBytes <= 0) throw new MonitorError(`VM ${spec.name}: memory must be a positive number of 4 KiB pages`);
    // With paging, a VM may be larger than the machine, as far as the swap store reaches.
    const machineBytes = (this.memory.totalPages + (this.pager?.store.slots ?? 0)) * PAGE;
    if (spec.memoryBytes > machineBytes) {
      throw new MonitorError(`VM ${spec.name}: ${mib(spec.memoryBytes)} MiB is more than the machine's ${mib(machineBytes)} MiB${this.pager === undefined ? '' : ' with its swap store'}`);
    }
    if (spec.homeNode !== undefined && (!Number.isInteger(spec.homeNode) || spec.homeNode < 0 || spec.homeNode >= this.layout.nodes.length)) {
      throw new MonitorError(`VM ${spec.name}: the machine has no node ${spec.homeNode}`);
    }
    if (this.machineFailure !== undefined) throw new MonitorError(`VM ${spec.name}: the machine failed (${this.machineFailure})`);
    if (spec.homeNode !== undefined && this.memory.nodeLost(spec.homeNode)) throw new MonitorError(`VM ${spec.name}: node ${spec.homeNode} has failed`);
    const place = this.cells.place(spec, { promised: (n) => this.promisedOnNode[n]!, nodeLost: (n) => this.memory.nodeLost(n), cpuLost: (p) => this.recovery.lostCpus.has(p) });
    const homeNode = place.homeNode;
    const options: VmOptions = {
      id: this.nextId, name: spec.name, vcpus: spec.vcpus, memoryBytes: spec.memoryBytes, homeNode, cells: place.cells,
      console: spec.console, log: spec.log ?? this.options.log, translate: this.options.translate, costs: this.costs,
      secondLevelEntries: spec.secondLevelEntries, mmu: this.options.mmu, memmap: this.memmap, placement: this.options.placement,
      gStageTlbEntries: this.options.gStageTlbEntries,
      hardware: this.hardware,
      sharesWithOthers: spec.sharing ?? true,
      // With `shareBootImages`, the pages of the kernel and initrd go through the page cache.
      onBoot: (v, images) => {
        if (this.options.shareBootImages === true && v.sharesWithOthers) this.pageCache.shareBootImages(v.pmap, images);
      },
      tlbMissSignal: (mpn, node, write) => {
        if (node < 0 || this.tlbCounters === undefined) return;
        this.tlbCounters.recordPage(mpn, node, write);
        if (this.memory.nodeOf(mpn) === node) this.tlbMisses.local++;
        else this.tlbMisses.remote++;
      },
    };
    let vm: VirtualMachine;
    // Its pages, and the monitor's data for it, come from its cell's nodes only; its cells know it before it
    // takes any (a spanning VM's pages on another cell's nodes are that cell's to lend).
    this.memory.confine(this.nextId, place.nodes);
    // A VM confined to one of several cells translates its code into that cell's registry.
    this.memory.code.assign(this.nextId, this.cells.count > 1 && place.cells.length === 1 ? place.cells[0] : undefined);
    this.recovery.cellular?.register(this.nextId, spec.name, place.cells, this.cells.cellOf(homeNode).id);
    try {
      vm = new VirtualMachine(this.memory, options);
    } catch (error) {
      this.memory.confine(this.nextId, undefined);
      this.recovery.cellular?.unregister(this.nextId, place.cells);
      this.borrowing?.forget(this.nextId);
      if (error instanceof OutOfMachineMemory) throw new MonitorError(`VM ${spec.name}: ${error.message}`);
      throw error;
    }
    // Ids are the VMs' places in `vms`: only a VM made takes one.
    this.nextId++;
    this.promisedOnNode[homeNode]! += spec.memoryBytes;
    this.vms.push(vm);
    if (this.pager !== undefined) {
      vm.pager = this.pager;
      this.pager.attach(vm.pmap);
    }
    // Pages it took while being made from memory its cell borrowed: it depends on their lenders.
    for (const cell of this.borrowing?.lendersOf(vm.id) ?? []) if (!vm.cells.includes(cell)) this.vmDependsOn(vm, cell);
    if (spec.net === true) {
      const port = this.subnet.port();
      vm.machine.attachVirtio(new VirtioNet(port, { mac: vmMac(vm.id), ...this.options.subnet }));
      this.ports.set(vm, port);
    }
    if (spec.balloon === true) vm.attachBalloon(this.options.balloonCosts, spec.log ?? this.options.log);
    if (this.timingModel !== undefined) {
      attachTimingModel(vm.machine, this.timingModel);
      setExecutionMode(vm.machine, this.mode);
    }
    const records = vm.vcpus.map((h, i) => new VcpuRecord(vm.id, i, h, vm));
    this.records.set(vm, records);
    this.scheduler.addVm(vm.id, records, { share: spec.share, homeNode, cells: place.cells });
    return vm;
  }

  /**
   * Asks `vm`'s guest to make its balloon `pages` 4 KiB pages big (`balloon` on up's socket): the guest inflates
   * towards it, and the monitor takes the machine pages it gives (or deflates, taking pages back). Throws
   * MonitorError for a VM without a balloon, one not running, or a size not in [0, its pages].
   */
  setBalloon(vm: VirtualMachine, pages: number): void {
    if (vm.state !== 'running') throw new MonitorError(`VM ${vm.name} is not running`);
    if (vm.balloonDevice === undefined) throw new MonitorError(`VM ${vm.name} has no balloon (balloon: true in its machine file entry)`);
    if (!Number.isInteger(pages) || pages < 0 || pages > vm.pmap.pages) throw new MonitorError(`VM ${vm.name}: a balloon of ${pages} pages (it has ${vm.pmap.pages})`);
    vm.balloonDevice.setTarget(pages);
  }

  /** The VM called `name` (the running one if a stopped one had the name before). */
  vm(name: string): VirtualMachine | undefined {
    const named = this.vms.filter((vm) => vm.name === name);
    return named.find((vm) => vm.state === 'running') ?? named[named.length - 1];
  }

  /** Stops a VM from outside (`mirrorball stop`): its CPUs and memory go to the others at once. */
  stopVm(vm: VirtualMachine, reason = 'stopped by the monitor'): void {
    this.endVm(vm, 'stopped', reason);
  }

  private endVm(vm: VirtualMachine, state: 'off' | 'crashed' | 'stopped', reason: string): void {
    if (vm.state !== 'running') return;
    vm.end(state, reason);
    // Its slots in the swap store go with its pages (a slot it shared stays for the others).
    this.pager?.forgetVm(vm.id);
    const port = this.ports.get(vm);
    if (port !== undefined) this.subnet.unplug(port);
    this.scheduler.removeVm(vm.id);
    this.promisedOnNode[vm.pmap.homeNode]! -= vm.pmap.size;
    this.recovery.cellular?.unregister(vm.id, vm.cells);
    this.borrowing?.forget(vm.id);
  }

  /**
   * Merges the running VMs' pages of equal contents into shared copy-on-write machine pages (content-based
   * sharing, page-sharing.ts). Call between rounds.
   */
  sharePages(): SharingResult {
    const running = this.vms.filter((vm) => vm.state === 'running');
    const optedOut = new Set(running.filter((vm) => !vm.sharesWithOthers).map((vm) => vm.pmap));
    // Pages merge only within a cell (a spanning VM's with other spanning VMs'): no VM comes to depend on another cell.
    const group = new Map(running.map((vm) => [vm.pmap, vm.cells.length === 1 ? -1 - vm.cells[0]! : -1 - this.cells.count]));
    return mergeIdenticalPages(this.memory, running.map((vm) => vm.pmap), this.ledger, (pmap) => (optedOut.has(pmap) ? pmap.vm + 1 : this.cells.count === 1 ? 0 : group.get(pmap)!));
  }

  /** True while some VM runs. */
  get running(): boolean {
    return this.vms.some((vm) => vm.state === 'running');
  }

  /**
   * True when no vCPU of any VM can run until a timer or input wakes one, and the monitor has no work of its
   * own: while the cells recover, or the failure report has records it has not read (a repair made between
   * rounds), time must flow for them even if every VM waits (a runner held at idle would otherwise hold it
   * forever).
   */
  get idle(): boolean {
    return !this.recovery.paused && !this.recovery.unread && (this.pager?.sleeping ?? 0) === 0 && this.vms.every((vm) => this.vmIdle(vm));
  }

  /** True when no vCPU of `vm` can run until a timer or input wakes one. */
  vmIdle(vm: VirtualMachine): boolean {
    const records = this.records.get(vm);
    return records === undefined || !records.some((r) => r.runnable());
  }

  /** The monitor's record of vCPU `index` of `vm`: world switches and ready time. */
  vcpuRecord(vm: VirtualMachine, index: number): Omit<VcpuRecord, 'hart' | 'runnable' | 'movedCell' | 'movedCpu' | 'takeOwed'> {
    return this.records.get(vm)![index]!;
  }

  /**
   * A vCPU moved to another cell (a balancer): its VM depends on that cell from now on, and the move
   * is the vCPU's to pay when it next runs (`cellMigrationCycles`).
   */
  private migrated(m: CellMigration): void {
    const vm = this.vms[m.vm]!;
    const perKiB = this.costs.cellMigrationPerKiB ?? CELL_MIGRATION.cyclesPerKiB;
    this.records.get(vm)![m.index]!.movedCell(cellMigrationCycles(vm.tables.secondLevelEntries, m.handoff, { ...CELL_MIGRATION, cyclesPerKiB: perKiB }));
    this.vmDependsOn(vm, m.to);
  }

  /** `vm` depends on cell `cell` too (a vCPU of it moved there): it and every cell's record of it say so. */
  vmDependsOn(vm: VirtualMachine, cell: number): void {
    vm.dependOn(cell);
    this.recovery.cellular?.dependOn(vm.id, vm.name, cell);
  }

  /** One round: pick, run each CPU's vCPU for the slice, then move every VM's time (or skip idle time). */
  runRound(): void {
    const end = this.cycles + SLICE;
    // What each CPU ran last, before the scheduler's pick makes it this round's.
    const previous = Array.from({ length: this.cpus }, (_, p) => this.scheduler.lastOn(p) as VcpuRecord | undefined);
    // While the cells recover (cell-recovery.ts) no vCPU runs; time moves a round at a time.
    const paused = this.recovery.paused;
    const picks = (paused ? [] : this.scheduler.pick()) as (VcpuRecord | undefined)[];
    for (const m of this.scheduler.takeMigrations()) this.migrated(m);
    const ran = new Set<VcpuRecord>();
    const scanner = this.pageScanner;
    const cellular = this.recovery.cellular;
    // The vCPU on the scanner's CPU, and its busy time (instructions and stalls) before the round.
    const scanPick = scanner === undefined ? undefined : picks[scanner.parameters.cpu];
    const scanBusyBefore = scanPick?.hart.simulatedCycles ?? 0;
    if (scanner !== undefined && scanner.owed > 0) {
      // The scanner's work on its CPU delays whoever runs there now; on an idle CPU it took idle time.
      if (scanPick === undefined || this.vms[scanPick.vm]!.state !== 'running') scanner.idled();
      else {
        scanPick.hart.chargeMonitor(scanner.owed, KIND_SCANNER);
        scanner.charged(scanner.owed);
      }
    }
    for (let p = 0; p < picks.length; p++) {
      const r = picks[p];
      if (r === undefined) continue;
      const vm = this.vms[r.vm]!;
      if (vm.state !== 'running') continue;
      // A stopped CPU executes nothing (until the report tells the monitor, the scheduler may still pick it).
      if (!this.hardware.cpuRuns(p)) continue;
      ran.add(r);
      const h = r.hart;
      this.cpuTimes.mark(h);
      h.timingCpu = p;
      const moves = r.takeOwed();
      if (moves > 0) h.chargeMonitor(moves, KIND_CELL_MIGRATION);
      // What its VM's memory lent by other cells cost in messages (cell-recovery.ts), since it last ran.
      if (cellular !== undefined) {
        const owed = cellular.takeOwed(vm.id);
        if (owed > 0) h.chargeMonitor(owed, KIND_LENT_MEMORY);
      }
      const node = this.layout.hartNode[p]!;
      // A vCPU that comes to another node reads its new node's replicas: what its second-level TLB holds of
      // the old node's copies must go (the first level goes with the world switch below).
      if (r.lastPcpu >= 0 && this.layout.hartNode[r.lastPcpu] !== node && vm.pmap.replicatedPages > 0) h.secondLevel?.flush();
      vm.pmap.readerNode = node;
      let switchCycles = 0;
      if (previous[p] !== r || r.lastPcpu !== p) {
        // The CPU's TLB held someone else's entries (or this vCPU's were on another CPU).
        h.flushFirstLevel();
        h.chargeMonitor(this.costs.worldSwitch, KIND_WORLD_SWITCH);
        switchCycles = this.costs.worldSwitch;
        const timing = h.memoryTiming;
        if (timing !== undefined) {
          const references = this.switchReferences(timing, p, previous[p], r, vm);
          h.chargeMonitor(references, KIND_WORLD_SWITCH);
          switchCycles += references;
        }
        r.worldSwitches++;
      }
      // A move to another CPU, by kind, with what its switch cost (one to another cell was counted, with its
      // handoff and copies, when the balancer made it).
      if (r.lastPcpu >= 0 && r.lastPcpu !== p && this.scheduler.cellOfCpu(r.lastPcpu) === this.scheduler.cellOfCpu(p)) {
        r.movedCpu(this.layout.hartNode[r.lastPcpu] === node, switchCycles);
      }
      r.lastPcpu = p;
      const before = h.localCycles;
      const instret = h.instret;
      const stop = vm.runVcpu(h, vm.machine.cycles + SLICE);
      this.instructions += h.instret - instret;
      switch (stop.kind) {
        case 'crashed':
          this.endVm(vm, 'crashed', `monitor error: ${stop.error}`);
          continue;
        case 'out-of-memory':
          // The machine had no page for it: this VM alone stops; the others keep what they have.
          this.endVm(vm, 'stopped', stop.reason);
          continue;
        case 'hardware-error':
          // A bus error from failed hardware; the hardware logged it, and the report says who else depended
          // on what failed (read at once, before any page this VM lets go can be handed out again).
          this.endVm(vm, 'stopped', `${HARDWARE_FAULT}: ${stop.reason}`);
          this.recovery.poll();
          continue;
        case 'slice':
        case 'idle':
        case 'waiting':
        case 'ended':
          // The guest powered off or rebooted ('ended'): reapEnded ends it after the round.
          break;
      }
      this.cpuTimes.charge(p, h);
      this.scheduler.charge(r, Math.max(0, h.localCycles - before));
    }
    for (const vm of this.vms) {
      if (vm.state !== 'running') continue;
      for (const r of this.records.get(vm)!) {
        if (ran.has(r)) continue;
        if (r.runnable()) r.readyCycles += SLICE;
        vm.machine.idleUntil(r.hart, vm.machine.cycles + SLICE);
      }
    }
    // Only when no vCPU can run does time skip. A vCPU that ran into WFI after waking another (an IPI) leaves
    // one that can: the woken one runs next round instead of at the next timer.
    if (!this.idle || paused) {
      for (const vm of this.vms) if (vm.state === 'running') vm.machine.closeRound(vm.machine.cycles + SLICE);
      this.cycles = end;
    } else this.skipIdle();
    this.reapEnded();
    // vCPUs whose swap I/O is done run again, and room is made for the next round's DMA (pager.ts).
    this.pager?.afterRound();
    // The hardware's time moves with the machine's: faults due apply at this boundary, and the monitor reads
    // what the failure report says of them before the next round.
    this.hardware.advanceTo(this.cycles);
    this.recovery.poll();
    this.recovery.advance(this.cycles);
    // Chunks unused by a cell well above its threshold go back; loans of failed cells go.
    this.borrowing?.afterRound();
    // A safe point: every vCPU is between instructions. In timing mode its references go through its CPU's
    // cache, as the vCPUs' do. Its idle time: the round's (a skip's too) that no vCPU used on its CPU, none on
    // a stopped CPU, none when the vCPU can still run at the end (what its slice fell short is its next one's).
    scanner?.afterRound(this.cycles, this.vms.filter((vm) => vm.state === 'running').map((vm) => ({ pmap: vm.pmap, sharesWithOthers: vm.sharesWithOthers, tables: vm.tables })),
      this.mode === 'timing' && this.timingModel !== undefined ? { timing: this.timingModel, memmap: this.memmap } : undefined,
      !this.hardware.cpuRuns(scanner.parameters.cpu) ? 0 : scanPick === undefined || !ran.has(scanPick) ? this.cycles - (end - SLICE)
        : scanPick.runnable() ? 0 : Math.max(0, this.cycles - (end - SLICE) - (scanPick.hart.simulatedCycles - scanBusyBefore)));
    if (this.mode === 'timing' || this.tlbCounters !== undefined) this.numaPolicy?.afterRound();
  }

  /**
   * Timing mode: a world switch's references on CPU `cpu`: the state of the vCPU it ran before (`out`, if one of
   * a running VM) saved to its state page, and `r`'s loaded from its own, each on its VM's home node.
   */
  private switchReferences(timing: MemoryTiming, cpu: number, out: VcpuRecord | undefined, r: VcpuRecord, vm: VirtualMachine): number {
    const from = out === undefined || out === r ? undefined : this.vms[out.vm];
    const saved = from !== undefined && from.state === 'running' ? from.tables.switchState(timing, cpu, out!.index, true) : 0;
    return saved + vm.tables.switchState(timing, cpu, r.index, false);
  }

  /** No vCPU could run on: every VM's time jumps by the same amount, to the earliest timer among them. */
  private skipIdle(): void {
    let skip = Infinity;
    for (const vm of this.vms) if (vm.state === 'running') skip = Math.min(skip, vm.machine.cyclesToDeadline());
    skip = Math.ceil(Math.min(skip === Infinity ? SLICE : Math.max(1, skip), this.idleSkipLimit));
    // Idle time does not jump past a scheduled fault: it happens at its time, not at the next timer.
    const fault = this.hardware.nextFaultTime;
    if (fault > this.cycles) skip = Math.min(skip, Math.ceil(fault - this.cycles));
    // A limit of 0 holds time where it is (a host that drives the VMs has something for them soon).
    if (skip <= 0) return;
    for (const vm of this.vms) if (vm.state === 'running') vm.machine.skipCycles(skip);
    this.cycles += skip;
  }

  /** VMs whose guest powered off or rebooted end, alone; so does one whose device found no machine page. */
  private reapEnded(): void {
    for (const vm of this.vms) {
      if (vm.state === 'running' && vm.outOfMemory !== undefined) {
        this.endVm(vm, 'stopped', vm.outOfMemory);
        continue;
      }
      const exit = vm.state === 'running' ? vm.exit : undefined;
      if (exit === undefined) continue;
      const why = exit.kind === 'poweroff' ? `powered off (code ${exit.code})` : exit.kind === 'reboot' ? 'asked for a reboot' : exit.kind;
      this.endVm(vm, 'off', why);
    }
  }

  /** Every world switch of the machine's CPUs together. */
  get worldSwitches(): number {
    let n = 0;
    for (const records of this.records.values()) for (const r of records) n += r.worldSwitches;
    return n;
  }
}

function mib(bytes: number): number {
  return Math.floor(bytes / 2 ** 20);
}
