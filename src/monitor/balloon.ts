// The monitor's side of a VM's virtio balloon: pages the guest reports free or puts in the balloon lose their machine pages.

import type { BalloonBackend, PageRange } from '../devices/virtio/balloon.js';
import { DEFAULT_BALLOON_COSTS, type BalloonCosts } from './costs.js';
import { FREE, PAGE } from './machine-memory.js';
import type { Pmap } from './pmap.js';

/** What a VM's balloon did, since the VM started (`ps`, `query-memory`, stats.txt). */
export interface BalloonAccount {
  /** Requests handled: free page reports, inflate and deflate requests. */
  reports: number;
  inflates: number;
  deflates: number;
  /** Guest pages given by reports, and by inflating; pages taken back out of the balloon. */
  reportedPages: number;
  inflatedPages: number;
  deflatedPages: number;
  /** Of the pages given, those that had a machine page and lost it, and those whose machine page went back to the machine (no one else held it). */
  unmapped: number;
  freed: number;
  /** Pages given while the monitor held them (on their way between nodes): kept. */
  skipped: number;
  /** Cycles of monitor work charged for the requests (`BalloonCosts`, and an IPI per other vCPU shot down). */
  cycles: number;
}

export const BALLOON_ACCOUNT_KEYS = ['reports', 'inflates', 'deflates', 'reportedPages', 'inflatedPages', 'deflatedPages', 'unmapped', 'freed', 'skipped', 'cycles'] as const;

export function emptyBalloonAccount(): BalloonAccount {
  return { reports: 0, inflates: 0, deflates: 0, reportedPages: 0, inflatedPages: 0, deflatedPages: 0, unmapped: 0, freed: 0, skipped: 0, cycles: 0 };
}

/** What the backend needs of its VM: the pmap, and the vCPUs' shootdown counts (the IPIs a request needs). */
export interface BalloonVm {
  readonly pmap: Pmap;
  readonly tlbShootdowns: Uint32Array;
}

/**
 * A VM's balloon backend. A page the guest gives (a free page report, or a page put in the balloon) is unmapped
 * from its pmap (`Pmap.unmap`: its replicas dropped, its 2 MiB group no block any more, every TLB entry of it
 * shot down), so this VM no longer holds its machine page; a machine page no one else holds goes back to the
 * machine, one shared with other VMs or the page cache just loses this user. The guest's next touch of the page
 * is an ordinary guest-page fault that fills a fresh zeroed page: Linux does not rely on a reported page's
 * contents (the device offers no PAGE_POISON), nor on a balloon page's. Deflating needs nothing: the pages come
 * back at their next touch.
 *
 * The work is owed by the vCPU whose notify made the request (the device runs inside its MMIO access);
 * `VirtualMachine.runVcpu` charges it after the run (`takeOwed`).
 */
export class VmBalloon implements BalloonBackend {
  readonly account = emptyBalloonAccount();
  private owed = 0;
  /** The vCPUs whose TLBs held a page given since the last charge: an IPI each, except the requester's own. */
  private readonly shotDown = new Set<number>();

  constructor(private readonly vm: BalloonVm, private readonly costs: BalloonCosts = DEFAULT_BALLOON_COSTS, private readonly ipiCost = 0) {}

  inflate(pages: readonly number[]): void {
    this.account.inflates++;
    this.account.inflatedPages += pages.length;
    this.give(pages.map((address) => ({ address, length: PAGE })));
  }

  deflate(pages: readonly number[]): void {
    this.account.deflates++;
    this.account.deflatedPages += pages.length;
    this.owed += this.costs.request;
  }

  report(ranges: readonly PageRange[]): void {
    this.account.reports++;
    for (const r of ranges) this.account.reportedPages += Math.floor(r.length / PAGE);
    this.give(ranges);
  }

  /** Takes the machine pages of every whole guest page in `ranges` (guest-physical, checked by the device to be RAM). */
  private give(ranges: readonly PageRange[]): void {
    const pmap = this.vm.pmap;
    const mark = this.vm.tlbShootdowns.slice();
    let pages = 0;
    for (const r of ranges) {
      const first = Math.max(0, Math.ceil((r.address - pmap.base) / PAGE));
      const end = Math.min(pmap.pages, Math.floor((r.address + r.length - pmap.base) / PAGE));
      for (let gppn = first; gppn < end; gppn++) {
        pages++;
        if (pmap.lookup(gppn) === FREE) continue;
        if (pmap.held(gppn)) {
          this.account.skipped++;
          continue;
        }
        if (pmap.unmap(gppn)) this.account.freed++;
        this.account.unmapped++;
      }
    }
    for (let i = 0; i < mark.length; i++) if (this.vm.tlbShootdowns[i]! > mark[i]!) this.shotDown.add(i);
    this.owed += this.costs.request + pages * this.costs.page;
  }

  /** The cycles owed by vCPU `vcpu`, who made the requests since the last call (0 if none); forgets them. */
  takeOwed(vcpu: number): number {
    if (this.owed === 0 && this.shotDown.size === 0) return 0;
    this.shotDown.delete(vcpu);
    const cycles = this.owed + this.shotDown.size * this.ipiCost;
    this.owed = 0;
    this.shotDown.clear();
    this.account.cycles += cycles;
    return cycles;
  }

  saveState(): BalloonAccount {
    return { ...this.account };
  }

  restoreState(account: BalloonAccount): void {
    Object.assign(this.account, account);
  }
}
