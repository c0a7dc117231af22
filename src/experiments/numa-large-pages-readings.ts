// What the numa experiment's runs read of large pages (numa-large-pages.ts): TLB refills, groups large, moved and broken.

import type { Monitor } from '../monitor/monitor.js';
import type { VirtualMachine } from '../monitor/vm.js';

/** Counts since the monitor started (or, from `since`, during a run); `largeGroups` is a state, the run's end. */
export interface LargePageReadings {
  /** TLB refills of the physical CPUs (`machine.cpuN.tlb.refills`, summed). */
  tlbRefills: number;
  /** The VM's 2 MiB groups that are one large page (at the end), and at the start. */
  largeGroups: number;
  largeGroupsAtStart: number;
  /** Large groups scattered (by anything), groups moved whole, scattered groups made one block again. */
  groupsBroken: number;
  blocksMoved: number;
  blocksCoalesced: number;
  /** Cycles the policy spent on block moves and re-coalescing, and on the 4 KiB moves that broke a large group. */
  blockCycles: number;
  breakCycles: number;
  /** Copy blocks made of groups replicated whole, such groups whose copies went, and groups replicated whole (at the end). */
  groupCopies: number;
  groupsCollapsed: number;
  groupsReplicated: number;
  /** Cycles the whole-group copies cost. */
  groupCycles: number;
}

const sum = (a: ArrayLike<number>): number => Array.from(a).reduce((x, y) => x + y, 0);

export function largePageReadings(monitor: Monitor, vm: VirtualMachine): LargePageReadings {
  const large = monitor.policy?.large.counts;
  return {
    tlbRefills: sum(monitor.timingModel?.tlbRefills ?? []), largeGroups: vm.pmap.largeGroups, largeGroupsAtStart: vm.pmap.largeGroups, groupsBroken: vm.pmap.groupsBroken,
    blocksMoved: large === undefined ? 0 : sum(large.blocksMovedTo), blocksCoalesced: large === undefined ? 0 : sum(large.coalescedOn),
    blockCycles: large === undefined ? 0 : large.moveCycles + large.coalesceCycles, breakCycles: large?.breakCycles ?? 0,
    groupCopies: large === undefined ? 0 : sum(large.groupsReplicatedOn), groupsCollapsed: large?.groupsCollapsed ?? 0,
    groupsReplicated: vm.pmap.replicatedGroups, groupCycles: large?.replicateCycles ?? 0,
  };
}

/** The counts of a run (`after` − `before`), with the large groups at its end. */
largePageReadings.since = (before: LargePageReadings, after: LargePageReadings): LargePageReadings => ({
  tlbRefills: after.tlbRefills - before.tlbRefills, largeGroups: after.largeGroups, largeGroupsAtStart: before.largeGroups, groupsBroken: after.groupsBroken - before.groupsBroken,
  blocksMoved: after.blocksMoved - before.blocksMoved, blocksCoalesced: after.blocksCoalesced - before.blocksCoalesced,
  blockCycles: after.blockCycles - before.blockCycles, breakCycles: after.breakCycles - before.breakCycles,
  groupCopies: after.groupCopies - before.groupCopies, groupsCollapsed: after.groupsCollapsed - before.groupsCollapsed,
  groupsReplicated: after.groupsReplicated, groupCycles: after.groupCycles - before.groupCycles,
});
