// What each exit costs the vCPU it serves, in cycles: the monitor's cost table (docs/monitor.md, "What the monitor costs").

/**
 * Cycles of the monitor's work per event, beyond what the same event costs on the bare machine: entry,
 * handling and return. A parameter of every run (written to config.json); docs/monitor.md gives each
 * number's source. Experiments show their results with the whole table halved and doubled (`scaleCosts`).
 */
export interface MonitorCosts {
  /** A first-level TLB refill the second-level TLB answers (Disco's software refill). */
  secondLevelHit: number;
  /** A refill that walks the guest's page table and composes with the pmap. */
  walk: number;
  /** An SBI call other than the ones below (base, HSM, reset, console, PMU, …). */
  monitorCall: number;
  /** SBI set_timer: the guest programs its next timer interrupt. */
  timer: number;
  /** SBI send_ipi. */
  ipi: number;
  /** SBI remote fences (remote SFENCE.VMA / FENCE.I on other vCPUs). */
  remoteFence: number;
  /** A load or store to an emulated device's register. */
  mmio: number;
  /** WFI with nothing pending: the vCPU gives its CPU up. */
  wfi: number;
  /** An interrupt the monitor delivers to the guest (a virtual timer, device or software interrupt). */
  interrupt: number;
  /** The first touch of a guest page: a machine page found, zeroed and mapped. */
  pageFill: number;
  /** A write to a shared (copy-on-write) page: a machine page found, 4 KiB copied, the mapping changed. */
  pageCopy: number;
  /** A guest-page fault that only gives back a permission the monitor took away, finds the page held, or drops its replicas (a write). */
  protectionFault: number;
  /** A physical CPU switching to another vCPU: its whole state saved and restored, first-level TLB emptied. */
  worldSwitch: number;
  /**
   * A vCPU moved to another cell: cycles per KiB of its state and second-level TLB copied (cell-scheduler.ts
   * CELL_MIGRATION; the bus's round trip is the bus's). Absent in tables saved before it was a parameter: 256.
   */
  cellMigrationPerKiB?: number;
}

/**
 * An exit's way in and out, as KVM RISC-V's world switch does it (arch/riscv/kvm/vcpu_switch.S): 72
 * instructions each way (23 host and 31 guest registers, 5 CSRs swapped and stored), and two traps whose
 * pipeline refill is taken as 10 cycles each (an assumption for a simple in-order core).
 */
export const EXIT_ROUND_TRIP = 2 * 72 + 2 * 10;
/** A 4 KiB page with 8-byte accesses: 512 stores to zero it, or 512 loads and 512 stores to copy it. */
const PAGE_WORDS = 512;
/** Finding a page on a node's free list and updating the pmap and memmap entries. */
const PAGE_BOOKKEEPING = 40;

export const DEFAULT_COSTS: MonitorCosts = {
  // Disco's in-monitor refill handlers, which do not switch worlds (Disco §4.2.2, of the order of its R10000 figures).
  secondLevelHit: 20,
  walk: 60,
  // The round trip and a dispatch on the extension and function (a table look-up and a call).
  monitorCall: EXIT_ROUND_TRIP + 40,
  // The dispatch, a read of the time and a write of the host's timer compare register, the pending bit cleared.
  timer: EXIT_ROUND_TRIP + 60,
  // The dispatch, a walk of the hart mask and a pending bit set and a kick per target.
  ipi: EXIT_ROUND_TRIP + 80,
  // The dispatch, the hart mask, and a request to each target to fence (its fence is its own work).
  remoteFence: EXIT_ROUND_TRIP + 100,
  // The trapped instruction decoded from htinst, the device found by address, its register emulated.
  mmio: EXIT_ROUND_TRIP + 80,
  // The round trip only: choosing another vCPU is the world switch's cost.
  wfi: EXIT_ROUND_TRIP,
  // The host's interrupt taken (a round trip), the source found, the guest's pending bit set (hvip).
  interrupt: EXIT_ROUND_TRIP + 40,
  pageFill: EXIT_ROUND_TRIP + PAGE_WORDS + PAGE_BOOKKEEPING,
  pageCopy: EXIT_ROUND_TRIP + 2 * PAGE_WORDS + PAGE_BOOKKEEPING,
  // The round trip and a look-up of the page's state.
  protectionFault: EXIT_ROUND_TRIP + 20,
  // Both ways of the switch, FP registers (32 each way, KVM's lazy FP saves them only if dirty: counted in
  // full), the scheduler's choice, and the first-level TLB flushed.
  worldSwitch: EXIT_ROUND_TRIP + 2 * 32 + 100,
  // The page copy's rate: a load and a store per 8-byte word (cell-scheduler.ts CELL_MIGRATION).
  cellMigrationPerKiB: 256,
};

/** The table with every cost multiplied by `factor` (0.5 and 2: how much a result depends on the table). */
export function scaleCosts(costs: MonitorCosts, factor: number): MonitorCosts {
  return Object.fromEntries(Object.entries(costs).map(([k, v]) => [k, v * factor])) as unknown as MonitorCosts;
}

/**
 * What one exit of cause `cause` (as `VirtualMachine.exits` and the accounts name them: `guest-page-fault.fill`,
 * `sbi.time`, `mmio.ns16550a`, `tlb-refill.l2`, `world-switch`, …) costs per `costs`. A device's DMA faults
 * are charged to no vCPU (0); a legacy SBI call counts as a plain monitor call.
 */
export function causeCost(costs: MonitorCosts, cause: string): number {
  const [kind, detail] = cause.split('.');
  switch (kind) {
    case 'guest-page-fault':
      if (detail === 'dma') return 0;
      return detail === 'fill' ? costs.pageFill : detail === 'copy-on-write' ? costs.pageCopy : costs.protectionFault;
    case 'sbi':
      return detail === 'time' ? costs.timer : detail === 'ipi' ? costs.ipi : detail === 'rfence' ? costs.remoteFence : costs.monitorCall;
    case 'mmio': return costs.mmio;
    case 'wfi': return costs.wfi;
    case 'interrupt': return costs.interrupt;
    case 'world-switch': return costs.worldSwitch;
    case 'tlb-refill': return detail === 'l2' ? costs.secondLevelHit : costs.walk;
    default: throw new Error(`no cost for an exit of cause '${cause}'`);
  }
}

/**
 * What the content-sharing scanner's work costs the physical CPU it runs on (page-scanner.ts), in cycles at
 * one instruction a cycle, the monitor's handlers' convention above. A parameter of the scanner (written to
 * config.json with it); `scaleSharingCosts` gives it halved and doubled.
 */
export interface SharingCosts {
  /** A whole page tested for zero: an 8-byte load and a compare-and-branch per word. A test that stops at the first non-zero word pays its share. */
  pageZeroCheck: number;
  /** A page hashed: per 8-byte word a load, an xor and a multiply (FNV-1a over words, as `pageHash`; KSM's jhash2 is of the same order). */
  pageHash: number;
  /** Two pages compared byte for byte, as equal ones are: per 8-byte word two loads and a compare-and-branch. */
  pageCompare: number;
  /** A merge: the pmap and memmap entries of both pages updated, the old page on its free list (as PAGE_BOOKKEEPING). */
  pageMerge: number;
  /** Passing over a guest page that has no machine page, is held or is shared already: a pmap and a memmap entry read. */
  pageSkip: number;
}

export const DEFAULT_SHARING_COSTS: SharingCosts = {
  pageZeroCheck: 2 * PAGE_WORDS,
  pageHash: 3 * PAGE_WORDS,
  pageCompare: 3 * PAGE_WORDS,
  pageMerge: PAGE_BOOKKEEPING,
  pageSkip: 2,
};

export function scaleSharingCosts(costs: SharingCosts, factor: number): SharingCosts {
  return Object.fromEntries(Object.entries(costs).map(([k, v]) => [k, v * factor])) as unknown as SharingCosts;
}

/**
 * What monitor-level paging costs (pager.ts, docs/monitor.md "Paging"): the swap device's time, which the vCPU
 * that needed a page waits out (others run meanwhile), and the monitor's own work per page, charged to that
 * vCPU as monitor cycles. A parameter of the pager (written to config.json with it); `scaleSwapCosts` gives it
 * halved and doubled. Cycles of the 100 MHz machine clock (timing/clock.ts): 100 cycles a microsecond.
 */
export interface SwapCosts {
  /** One request to the swap device (a batch of pages written, or a page read): an NVMe SSD's ~100 µs, an assumption. */
  latency: number;
  /** Each 4 KiB page moved: 4 µs, ~1 GB/s, an assumption of the same SSD. */
  transferPerPage: number;
  /** A page written out: the zero test (512 loads and compares), each sharer's pmap entry and the memmap, the request queued. */
  pageOut: number;
  /** A page dropped because it is zero: the zero test and each sharer's pmap entry, no write. */
  zeroDrop: number;
  /** A page read back, beyond its exit (charged as a protection fault: round trip and look-up): a machine page found, the request, the pmap and memmap entries. */
  pageIn: number;
  /** The second-chance hand passing one page: its memmap entry, each sharer's pmap entry read (and, for a second chance, written). */
  handStep: number;
}

export const DEFAULT_SWAP_COSTS: SwapCosts = {
  latency: 10_000,
  transferPerPage: 400,
  pageOut: 2 * PAGE_WORDS + PAGE_BOOKKEEPING + 40,
  zeroDrop: 2 * PAGE_WORDS + PAGE_BOOKKEEPING,
  pageIn: PAGE_BOOKKEEPING + 40,
  handStep: 20,
};

export function scaleSwapCosts(costs: SwapCosts, factor: number): SwapCosts {
  return Object.fromEntries(Object.entries(costs).map(([k, v]) => [k, v * factor])) as unknown as SwapCosts;
}

/**
 * What the monitor's handling of the balloon's requests costs the vCPU that made them (balloon.ts), in cycles at
 * one instruction a cycle. Its MMIO notify is charged as any MMIO exit; this is the work behind it. A parameter
 * (MonitorOptions.balloonCosts, written to config.json with the monitor's settings); `scaleBalloonCosts` gives it
 * halved and doubled.
 */
export interface BalloonCosts {
  /** One inflate, deflate or report request: its descriptor chain walked and checked, each range looked up. */
  request: number;
  /**
   * Each guest page a request gives back: its pmap entry cleared, its memmap entry's user dropped and, if that was
   * the last user, the page on its node's free list (PAGE_BOOKKEEPING). The IPIs of the shootdowns are `ipi` each.
   */
  page: number;
}

export const DEFAULT_BALLOON_COSTS: BalloonCosts = {
  // A dispatch on the queue and a walk of up to 32 descriptors with their bounds checks.
  request: 100,
  page: PAGE_BOOKKEEPING,
};

export function scaleBalloonCosts(costs: BalloonCosts, factor: number): BalloonCosts {
  return { request: costs.request * factor, page: costs.page * factor };
}
