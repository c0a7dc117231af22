// The Disco monitor's vCPU scheduler: each round, which virtual CPU every physical CPU (pCPU) runs.
//
// Policy (after Disco, SOSP 1997, and Cellular Disco, SOSP 1999: vCPUs multiplexed on pCPUs, shares between
// VMs, NUMA affinity; the fair-share bookkeeping is Linux CFS's):
// - A runnable vCPU keeps the pCPU it had last round for `quantumRounds` rounds: no world switch, and its
//   cache and TLB stay warm. A vCPU that is not runnable (off, or in WFI with nothing to wake it) gives its
//   pCPU away at once.
// - When its quantum expires the vCPU goes back to the queue with every runnable vCPU that waits. Free pCPUs
//   go, one at a time, to the VM with the smallest virtual time (cycles charged / share; ties: lower VM id),
//   and within it to the vCPU with the fewest cycles charged (ties: lower index). If no more vCPUs are
//   runnable than there are pCPUs, the queue fits and every runnable vCPU runs; an expired vCPU then just
//   goes back to its own pCPU, so nothing switches.
// - A VM that becomes runnable (woken, or just added) has its virtual time lifted to at least the floor:
//   the least virtual time of the VMs that were runnable last round, never decreasing. Otherwise a VM that
//   slept would wake with a huge credit and starve the others for as long as it slept.
// - Placement: a chosen vCPU goes back to the pCPU it ran on last if that is free, else to a free pCPU on its
//   VM's home node (where its memory is), else to the lowest free pCPU. Affinity only orders free pCPUs,
//   so it never leaves a pCPU idle while a runnable vCPU waits.
// - Gang scheduling (`gang`, Cellular Disco's; off by default): a VM's runnable vCPUs run together or not at
//   all, so a guest spinning on a lock held by a descheduled vCPU of its own never waits a whole quantum. A VM
//   keeps its pCPUs only as a whole (every runnable vCPU held, none past its quantum); the others queue as
//   gangs, fairest first, and the first gang that does not fit in the pCPUs left free ends the pick: no smaller
//   gang goes ahead of it, so it runs as soon as enough pCPUs come free (some idle meanwhile: gang scheduling's
//   price). A gang larger than every pCPU in use could never run whole: it runs on what is free.
// - Cells (docs/cells.md) each have a scheduler of their own over their pCPUs (cell-scheduler.ts), so a
//   scheduler never places a vCPU outside the pCPUs it was made with. A VM marked slotted (`setSlotted`: its
//   part of a gang that spans cells) is outside the fair share: it runs only when `pick` is told it is in its
//   slot, and then every runnable vCPU of it goes first, before any other keeps or gets a pCPU.
// - Deterministic: no randomness, no host time; VMs are visited by id and vCPUs by index.

/** What the scheduler needs to know about one virtual CPU. */
export interface SchedVcpu {
  /** The VM's id (small integer) and the vCPU's index in it. */
  readonly vm: number;
  readonly index: number;
  /** True when it has work: not powered off, and not waiting in WFI with nothing to wake it. */
  runnable(): boolean;
}

export interface SchedulerOptions {
  /** The NUMA node of each physical CPU (its length is the number of pCPUs). */
  pcpuNodes: readonly number[];
  /** Rounds a vCPU keeps its pCPU before others that wait may take it (default 64). */
  quantumRounds?: number;
  /** Gang scheduling: each VM's runnable vCPUs run together or not at all (default false). */
  gang?: boolean;
}

export interface SchedVmOptions {
  /** The VM's weight against the others (positive, default 1). */
  share?: number;
  /** The NUMA node its memory prefers; its vCPUs are placed there when they can be. */
  homeNode?: number;
}

export const DEFAULT_QUANTUM_ROUNDS = 64;

/** One VM's part of the scheduler as plain data (snapshots): its virtual time and its vCPUs' cycles and places. */
export interface SchedulerVmState {
  id: number;
  share: number;
  /** -1: none. */
  homeNode: number;
  virtualTime: number;
  runnableLastRound: boolean;
  cycles: Float64Array;
  /** Per vCPU: its last pCPU (-1: none) and its rounds there. */
  lastPcpu: Int32Array;
  roundsHeld: Float64Array;
  /** The pCPUs it holds now and those whose last vCPU is one of its (a vCPU index per pCPU, -1: another's or none). */
  holding: Int32Array;
  lastOn: Int32Array;
}

/** The whole scheduler as plain data: every VM still scheduled, and per pCPU what it holds and ran last, as (VM id, vCPU index) pairs (-1, -1: none). */
export interface SchedulerState {
  vms: SchedulerVmState[];
  holders: Int32Array;
  lastRun: Int32Array;
  switchCounts: Float64Array;
  virtualTimeFloor: number;
}

interface VmState {
  readonly id: number;
  readonly share: number;
  readonly homeNode: number | undefined;
  /** In index order. */
  readonly vcpus: VcpuState[];
  readonly byIndex: Map<number, VcpuState>;
  /** Cycles charged divided by share. */
  virtualTime: number;
  runnableLastRound: boolean;
}

interface VcpuState {
  readonly vcpu: SchedVcpu;
  readonly vm: VmState;
  cycles: number;
  lastPcpu: number | undefined;
  /** Consecutive rounds on its current pCPU, this one included. */
  roundsHeld: number;
}

export class Scheduler {
  private readonly pcpuNodes: readonly number[];
  private readonly quantumRounds: number;
  readonly gang: boolean;
  /** By id, ascending. */
  private vms: VmState[] = [];
  /** What each pCPU runs this round (from the last pick). */
  private holders: (VcpuState | undefined)[];
  private readonly lastRun: (VcpuState | undefined)[];
  private readonly switchCounts: number[];
  private virtualTimeFloor = 0;

  constructor(options: SchedulerOptions) {
    const quantum = options.quantumRounds ?? DEFAULT_QUANTUM_ROUNDS;
    if (options.pcpuNodes.length === 0) throw new Error('scheduler: there must be at least one pCPU');
    if (!Number.isInteger(quantum) || quantum < 1) {
      throw new Error(`scheduler: quantumRounds must be a positive integer, got ${quantum}`);
    }
    this.pcpuNodes = [...options.pcpuNodes];
    this.quantumRounds = quantum;
    this.gang = options.gang ?? false;
    this.holders = this.pcpuNodes.map(() => undefined);
    this.lastRun = this.pcpuNodes.map(() => undefined);
    this.switchCounts = this.pcpuNodes.map(() => 0);
  }

  addVm(vm: number, vcpus: readonly SchedVcpu[], options: SchedVmOptions = {}): void {
    const share = options.share ?? 1;
    if (this.vms.some((other) => other.id === vm)) throw new Error(`scheduler: VM ${vm} is already added`);
    if (!Number.isFinite(share) || share <= 0) {
      throw new Error(`scheduler: VM ${vm}'s share must be a positive number, got ${share}`);
    }
    if (vcpus.length === 0) throw new Error(`scheduler: VM ${vm} has no vCPUs`);
    const byIndex = new Map<number, VcpuState>();
    const state: VmState = { id: vm, share, homeNode: options.homeNode, vcpus: [], byIndex, virtualTime: 0, runnableLastRound: false };
    for (const vcpu of vcpus) {
      if (vcpu.vm !== vm) throw new Error(`scheduler: vCPU ${vcpu.index} belongs to VM ${vcpu.vm}, not VM ${vm}`);
      if (byIndex.has(vcpu.index)) throw new Error(`scheduler: VM ${vm} has two vCPUs with index ${vcpu.index}`);
      byIndex.set(vcpu.index, { vcpu, vm: state, cycles: 0, lastPcpu: undefined, roundsHeld: 0 });
    }
    state.vcpus.push(...[...byIndex.values()].sort((a, b) => a.vcpu.index - b.vcpu.index));
    this.vms = [...this.vms, state].sort((a, b) => a.id - b.id);
  }

  /** VM `vm`'s part (it must be scheduled). */
  saveVm(vm: number): SchedulerVmState {
    const state = this.vmState(vm);
    const mine = (list: readonly (VcpuState | undefined)[]): Int32Array => Int32Array.from(list, (v) => (v?.vm === state ? v.vcpu.index : -1));
    return {
      id: state.id, share: state.share, homeNode: state.homeNode ?? -1, virtualTime: state.virtualTime, runnableLastRound: state.runnableLastRound,
      cycles: Float64Array.from(state.vcpus, (v) => v.cycles), lastPcpu: Int32Array.from(state.vcpus, (v) => v.lastPcpu ?? -1),
      roundsHeld: Float64Array.from(state.vcpus, (v) => v.roundsHeld), holding: mine(this.holders), lastOn: mine(this.lastRun),
    };
  }

  /**
   * Puts VM `vm`'s part back (a VM restored: `addVm` first, with the saved share and home). Its vCPUs hold
   * again the pCPUs they held, and count as what those ran last, where no other vCPU holds or ran them; the
   * caller has checked the lengths and that every vCPU index and pCPU exists.
   */
  restoreVm(vm: number, s: SchedulerVmState): void {
    const state = this.vmState(vm);
    state.virtualTime = s.virtualTime;
    state.runnableLastRound = s.runnableLastRound;
    state.vcpus.forEach((v, i) => {
      v.cycles = s.cycles[i]!;
      v.lastPcpu = s.lastPcpu[i]! < 0 ? undefined : s.lastPcpu[i]!;
      v.roundsHeld = s.roundsHeld[i]!;
    });
    s.holding.forEach((index, pcpu) => { if (index >= 0 && this.holders[pcpu] === undefined) this.holders[pcpu] = state.byIndex.get(index); });
    s.lastOn.forEach((index, pcpu) => { if (index >= 0 && this.lastRun[pcpu] === undefined) this.lastRun[pcpu] = state.byIndex.get(index); });
  }

  /** Everything (snapshots of the whole monitor). */
  saveState(): SchedulerState {
    const pairs = (list: readonly (VcpuState | undefined)[]): Int32Array => Int32Array.from(list.flatMap((v) => (v === undefined ? [-1, -1] : [v.vm.id, v.vcpu.index])));
    return {
      vms: this.vms.map((vm) => this.saveVm(vm.id)), holders: pairs(this.holders), lastRun: pairs(this.lastRun),
      switchCounts: Float64Array.from(this.switchCounts), virtualTimeFloor: this.virtualTimeFloor,
    };
  }

  /**
   * Puts back what `saveState` returned, into a scheduler with the same VMs added (ids, shares, homes). A pCPU's
   * last vCPU may be one of a VM removed since: `vcpuOf` finds it. The caller has checked every id, index and length.
   */
  restoreState(s: SchedulerState, vcpuOf: (vm: number, index: number) => SchedVcpu): void {
    for (const vm of s.vms) this.restoreVm(vm.id, vm);
    const removed = new Map<string, VcpuState>();
    const find = (vm: number, index: number): VcpuState | undefined => {
      if (vm < 0) return undefined;
      const here = this.vms.find((state) => state.id === vm)?.byIndex.get(index);
      if (here !== undefined) return here;
      const key = `${vm}.${index}`;
      let gone = removed.get(key);
      if (gone === undefined) {
        const owner: VmState = { id: vm, share: 1, homeNode: undefined, vcpus: [], byIndex: new Map(), virtualTime: 0, runnableLastRound: false };
        removed.set(key, gone = { vcpu: vcpuOf(vm, index), vm: owner, cycles: 0, lastPcpu: undefined, roundsHeld: 0 });
      }
      return gone;
    };
    this.holders = this.holders.map((_, p) => find(s.holders[2 * p]!, s.holders[2 * p + 1]!));
    this.lastRun.forEach((_, p) => { this.lastRun[p] = find(s.lastRun[2 * p]!, s.lastRun[2 * p + 1]!); });
    s.switchCounts.forEach((n, p) => { this.switchCounts[p] = n; });
    this.virtualTimeFloor = s.virtualTimeFloor;
  }

  /** The pCPUs' count and nodes (a restore checks a saved scheduler against them). */
  get pcpus(): readonly number[] {
    return this.pcpuNodes;
  }

  private vmState(vm: number): VmState {
    const state = this.vms.find((v) => v.id === vm);
    if (state === undefined) throw new Error(`scheduler: there is no VM ${vm}`);
    return state;
  }

  /** pCPUs taken out of use (failed hardware): never given a vCPU again. */
  private readonly retired = new Set<number>();

  /** pCPU `pcpu` failed: no vCPU runs there again (what it held is the monitor's to deal with). */
  retirePcpu(pcpu: number): void {
    this.retired.add(this.checkPcpu(pcpu));
    this.holders[pcpu] = undefined;
  }

  /** pCPU `pcpu`, retired, is given vCPUs again (its hardware was repaired); it holds none. */
  revivePcpu(pcpu: number): void {
    this.retired.delete(this.checkPcpu(pcpu));
  }

  /** pCPUs still in use. */
  get pcpusInUse(): number {
    return this.pcpuNodes.length - this.retired.size;
  }

  /**
   * Adds vCPU `vcpu` to VM `vm` here (a vCPU moved from another cell's scheduler), the VM too if it has no
   * vCPU here yet (with `options`). It waits for a pCPU as any other.
   */
  addVcpu(vcpu: SchedVcpu, options: SchedVmOptions = {}): void {
    const state = this.vms.find((v) => v.id === vcpu.vm);
    if (state === undefined) {
      this.addVm(vcpu.vm, [vcpu], options);
      return;
    }
    if (state.byIndex.has(vcpu.index)) throw new Error(`scheduler: VM ${vcpu.vm} already has vCPU ${vcpu.index} here`);
    const added: VcpuState = { vcpu, vm: state, cycles: 0, lastPcpu: undefined, roundsHeld: 0 };
    state.byIndex.set(vcpu.index, added);
    state.vcpus.push(added);
    state.vcpus.sort((a, b) => a.vcpu.index - b.vcpu.index);
  }

  /** Takes vCPU `index` of VM `vm` out (it moves to another cell's scheduler); the VM goes with its last vCPU here. */
  removeVcpu(vm: number, index: number): void {
    const state = this.vmState(vm);
    const gone = state.byIndex.get(index);
    if (gone === undefined) throw new Error(`scheduler: VM ${vm} has no vCPU ${index} here`);
    // Its state goes with it (the move copies it): no pCPU here holds it any more.
    this.holders = this.holders.map((h) => (h === gone ? undefined : h));
    this.lastRun.forEach((v, pcpu) => { if (v === gone) this.lastRun[pcpu] = undefined; });
    if (state.vcpus.length === 1) {
      this.removeVm(vm);
      return;
    }
    state.byIndex.delete(index);
    state.vcpus.splice(state.vcpus.indexOf(gone), 1);
  }

  /** The runnable vCPUs the last pick left waiting, by VM id and index. */
  get waiting(): readonly SchedVcpu[] {
    return this.lastWaiting;
  }

  private lastWaiting: SchedVcpu[] = [];

  removeVm(vm: number): void {
    if (!this.vms.some((state) => state.id === vm)) throw new Error(`scheduler: there is no VM ${vm} to remove`);
    // Its vCPUs lose their pCPUs at once: the next pick asks only the VMs still here.
    this.vms = this.vms.filter((state) => state.id !== vm);
    this.slotted.delete(vm);
  }

  /** VMs scheduled by slot from outside (cell-scheduler.ts), not by fair share. */
  private readonly slotted = new Set<number>();

  /**
   * VM `vm` is (or no longer is) slotted: its vCPUs run only in the rounds `pick` is told are its slot, and then
   * all its runnable ones together, first. Its virtual time then plays no part in the others' (the floor).
   */
  setSlotted(vm: number, on: boolean): void {
    this.vmState(vm);
    if (on) this.slotted.add(vm);
    else this.slotted.delete(vm);
  }

  /** `inSlot`: the slotted VMs whose slot this round is (the other slotted VMs run nothing). */
  pick(inSlot?: ReadonlySet<number>): (SchedVcpu | undefined)[] {
    // Ask each vCPU once, so that the whole pick sees one consistent answer.
    const runnable = new Set<VcpuState>();
    for (const vm of this.vms) for (const state of vm.vcpus) if (state.vcpu.runnable()) runnable.add(state);
    this.liftWokenVms(runnable);

    const next: (VcpuState | undefined)[] = this.pcpuNodes.map(() => undefined);
    // Slotted VMs first: in their slot every runnable vCPU (as many as there are pCPUs in use), else none. They
    // are neither in the fair share's queue nor waiting: they wait for their slot, not for a pCPU.
    let placed = 0;
    if (this.slotted.size > 0) {
      const slotRun: VcpuState[] = [];
      for (const vm of this.vms) {
        if (!this.slotted.has(vm.id)) continue;
        for (const state of vm.vcpus) {
          if (!runnable.has(state)) continue;
          runnable.delete(state);
          if (inSlot?.has(vm.id) === true) slotRun.push(state);
        }
      }
      placed = Math.min(slotRun.length, this.pcpusInUse);
      this.place(slotRun.slice(0, placed), next);
    }
    const kept = new Set<VcpuState>();
    const keeps = (holder: VcpuState | undefined, pcpu: number): holder is VcpuState => holder !== undefined && next[pcpu] === undefined && runnable.has(holder) && holder.roundsHeld < this.quantumRounds;
    // With gangs, a VM keeps its pCPUs only if it keeps them all: every runnable vCPU held, none past its quantum.
    const held = new Set(this.holders.filter(keeps));
    const whole = (vm: VmState): boolean => vm.vcpus.every((state) => !runnable.has(state) || held.has(state));
    this.holders.forEach((holder, pcpu) => {
      if (keeps(holder, pcpu) && (!this.gang || whole(holder.vm))) {
        next[pcpu] = holder;
        holder.roundsHeld++;
        kept.add(holder);
      }
    });
    const queue = [...runnable].filter((state) => !kept.has(state));
    const free = this.pcpusInUse - placed - kept.size;
    this.place(this.gang ? this.chooseGangs(queue, free) : this.chooseFairly(queue, free), next);

    next.forEach((state, pcpu) => {
      if (state === undefined) return;
      const previous = this.lastRun[pcpu];
      if (previous !== undefined && previous !== state) this.switchCounts[pcpu]++;
      this.lastRun[pcpu] = state;
      state.lastPcpu = pcpu;
    });
    this.holders = next;
    const picked = new Set(next);
    this.lastWaiting = [...runnable].filter((state) => !picked.has(state)).sort((a, b) => a.vm.id - b.vm.id || a.vcpu.index - b.vcpu.index).map((state) => state.vcpu);
    return next.map((state) => state?.vcpu);
  }

  charge(v: SchedVcpu, cycles: number): void {
    if (!Number.isFinite(cycles) || cycles < 0) throw new Error(`scheduler: cannot charge ${cycles} cycles`);
    const vm = this.vms.find((state) => state.id === v.vm);
    // A VM removed during the round has nothing left to account to.
    if (vm === undefined) return;
    const state = vm.byIndex.get(v.index);
    if (state === undefined) throw new Error(`scheduler: VM ${v.vm} has no vCPU ${v.index}`);
    state.cycles += cycles;
    vm.virtualTime += cycles / vm.share;
  }

  switches(pcpu: number): number {
    return this.switchCounts[this.checkPcpu(pcpu)]!;
  }

  /** The vCPU whose state the pCPU holds; it stays so while the pCPU idles, and after its VM is removed. */
  lastOn(pcpu: number): SchedVcpu | undefined {
    return this.lastRun[this.checkPcpu(pcpu)]?.vcpu;
  }

  private checkPcpu(pcpu: number): number {
    if (!Number.isInteger(pcpu) || pcpu < 0 || pcpu >= this.pcpuNodes.length) {
      throw new RangeError(`scheduler: there is no pCPU ${pcpu} (there are ${this.pcpuNodes.length})`);
    }
    return pcpu;
  }

  /** CFS's answer to banked credit: a VM that becomes runnable starts no further behind than the floor. */
  private liftWokenVms(runnable: ReadonlySet<VcpuState>): void {
    const contenders = this.vms.filter((vm) => vm.runnableLastRound && !this.slotted.has(vm.id));
    if (contenders.length > 0) {
      const least = Math.min(...contenders.map((vm) => vm.virtualTime));
      this.virtualTimeFloor = Math.max(this.virtualTimeFloor, least);
    }
    for (const vm of this.vms) {
      const isRunnable = vm.vcpus.some((state) => runnable.has(state));
      if (isRunnable && !vm.runnableLastRound) vm.virtualTime = Math.max(vm.virtualTime, this.virtualTimeFloor);
      vm.runnableLastRound = isRunnable;
    }
  }

  /**
   * Whole VMs of the queue, fairest first (least virtual time; ties: lower id), while each fits in the `count`
   * pCPUs left; the first that does not fit ends the choice, unless it could never fit (more runnable vCPUs
   * than pCPUs in use), when it takes what is left.
   */
  private chooseGangs(queue: readonly VcpuState[], count: number): VcpuState[] {
    const gangs = new Map<VmState, VcpuState[]>();
    for (const state of queue) gangs.set(state.vm, [...(gangs.get(state.vm) ?? []), state]);
    const order = [...gangs.keys()].sort((a, b) => a.virtualTime - b.virtualTime || a.id - b.id);
    const chosen: VcpuState[] = [];
    let left = count;
    for (const vm of order) {
      const gang = gangs.get(vm)!.sort((a, b) => a.cycles - b.cycles || a.vcpu.index - b.vcpu.index);
      if (gang.length <= left) {
        chosen.push(...gang);
        left -= gang.length;
        continue;
      }
      if (gang.length > this.pcpusInUse) chosen.push(...gang.slice(0, left));
      break;
    }
    return chosen;
  }

  /** Up to `count` of the queue: each from the VM furthest behind, and within it the vCPU that ran least. */
  private chooseFairly(queue: readonly VcpuState[], count: number): VcpuState[] {
    const waiting = new Map<VmState, VcpuState[]>();
    for (const state of queue) waiting.set(state.vm, [...(waiting.get(state.vm) ?? []), state]);
    for (const list of waiting.values()) list.sort((a, b) => a.cycles - b.cycles || a.vcpu.index - b.vcpu.index);
    const chosen: VcpuState[] = [];
    while (chosen.length < count && waiting.size > 0) {
      let best: VmState | undefined;
      for (const vm of waiting.keys()) {
        const behind = best === undefined || vm.virtualTime < best.virtualTime;
        if (behind || (vm.virtualTime === best!.virtualTime && vm.id < best!.id)) best = vm;
      }
      const list = waiting.get(best!)!;
      chosen.push(list.shift()!);
      if (list.length === 0) waiting.delete(best!);
    }
    return chosen;
  }

  /** Puts each chosen vCPU on a free pCPU of `next`: its last one, else one on its home node, else the lowest. */
  private place(chosen: readonly VcpuState[], next: (VcpuState | undefined)[]): void {
    const assign = (state: VcpuState, pcpu: number): void => {
      next[pcpu] = state;
      state.roundsHeld = 1;
    };
    const free = (held: VcpuState | undefined, pcpu: number): boolean => held === undefined && !this.retired.has(pcpu);
    // Returning vCPUs first, so that one placed by node cannot take the pCPU another would come back to.
    const elsewhere: VcpuState[] = [];
    for (const state of chosen) {
      const last = state.lastPcpu;
      if (last !== undefined && free(next[last], last)) assign(state, last);
      else elsewhere.push(state);
    }
    for (const state of elsewhere) {
      const onHome = next.findIndex((held, pcpu) => free(held, pcpu) && this.pcpuNodes[pcpu] === state.vm.homeNode);
      const pcpu = onHome >= 0 ? onHome : next.findIndex((held, p) => free(held, p));
      // chooseFairly chose no more than the pCPUs in use left free, so there is always one.
      if (pcpu < 0) throw new Error(`scheduler: no free pCPU for vCPU ${state.vcpu.index} of VM ${state.vm.id}`);
      assign(state, pcpu);
    }
  }
}
