// What the NUMA policy did, for the statistics: pages moved and copied, hot pages left alone, whole groups, cycles,
// in all and per VM. Every cell's policy state adds to it (docs/numa-policy.md, "Cells").

import { noLargePageCounts, type LargePageCounts } from './large-pages.js';

/** What the policy did, per VM and in all. */
export interface PolicyCounts {
  /** Pages moved, by destination node. */
  migratedTo: number[];
  /** Copies made of read-shared pages, by the node of the copy. */
  replicatedTo: number[];
  /** Hot pages left alone: write-shared, frozen, already home, shared between VMs, or with no clear node. */
  leftWriteShared: number;
  leftFrozen: number;
  leftOther: number;
  /** Cycles charged for the policy's work (copies, shootdowns, bookkeeping). */
  cycles: number;
}

export function noCounts(nodes: number): PolicyCounts {
  return { migratedTo: new Array<number>(nodes).fill(0), replicatedTo: new Array<number>(nodes).fill(0), leftWriteShared: 0, leftFrozen: 0, leftOther: 0, cycles: 0 };
}

export function copyCounts(c: PolicyCounts): PolicyCounts {
  return { ...c, migratedTo: [...c.migratedTo], replicatedTo: [...c.replicatedTo] };
}

/**
 * One thing the policy did, as it did it (the control protocol's PAGE_MIGRATED and PAGE_REPLICATED events,
 * docs/control.md): `pages` guest pages from guest-physical address `address` of VM `vm` moved (or copied)
 * from node `from` to node `to`; 1, or a whole 2 MiB group's 512.
 */
export interface PolicyMove {
  kind: 'migrated' | 'replicated';
  vm: number;
  address: number;
  pages: number;
  from: number;
  to: number;
}

/** Why a hot page was left where it was. */
export type LeftWhy = 'leftWriteShared' | 'leftFrozen' | 'leftOther';

/**
 * The policy's statistics. They are the machine's figures, read by `stats` and the experiments whatever cells
 * fail, so they are not among any cell's revocable state: each cell's policy state reports what it did here, as
 * a cell's counters would be read into the machine's statistics. A per-VM entry is made at the first count.
 */
export class PolicyTally {
  readonly counts: PolicyCounts;
  readonly perVm = new Map<number, PolicyCounts>();
  /** Whole 2 MiB groups (large-pages.ts): in all and per VM. */
  readonly large: { readonly counts: LargePageCounts; readonly perVm: Map<number, LargePageCounts> };

  /** Told of each move and copy as it is made (`up` turns them into events); not part of any simulated result. */
  onMove: ((move: PolicyMove) => void) | undefined = undefined;

  constructor(readonly nodes: number) {
    this.counts = noCounts(nodes);
    this.large = { counts: noLargePageCounts(nodes), perVm: new Map() };
  }

  /** VM `vm`'s counts (made at the first call). */
  of(vm: number): PolicyCounts {
    let c = this.perVm.get(vm);
    if (c === undefined) {
      c = noCounts(this.nodes);
      this.perVm.set(vm, c);
    }
    return c;
  }

  /** VM `vm`'s counts of whole groups (made at the first call). */
  largeOf(vm: number): LargePageCounts {
    let c = this.large.perVm.get(vm);
    if (c === undefined) {
      c = noLargePageCounts(this.nodes);
      this.large.perVm.set(vm, c);
    }
    return c;
  }

  /** A hot page of `vm` left where it was, for `why`. */
  left(vm: number, why: LeftWhy): void {
    this.counts[why]++;
    this.of(vm)[why]++;
  }

  /** `cycles` more of the policy's work for `vm` (`monitor.policy.cycles`). */
  spent(vm: number, cycles: number): void {
    this.counts.cycles += cycles;
    this.of(vm).cycles += cycles;
  }
}
