// The kinds of work the monitor charges to a vCPU (hart-memory.ts `chargeMonitor`): a small fixed table, so that
// a charge adds to one slot of a per-vCPU array instead of keying a map by a string. The dashboard's "where time
// goes" splits the monitor's share by these (docs/dashboard.md). They live below the monitor because the hart
// keeps the array and charges its own TLB refills; the monitor names the rest.

/**
 * The kinds, in the order of their ids. Exit kinds are named as the `exits` statistics name them (an exit's
 * cause, docs/monitor.md); the rest are the monitor's own work charged to the vCPU it ran on or for.
 */
export const MONITOR_KINDS = [
  'world-switch',
  'tlb-refill.l2',
  'tlb-refill.walk',
  'guest-page-fault.fill',
  'guest-page-fault.copy-on-write',
  /** Every other guest-page fault: a permission given back, a page held, replicas collapsed by a write. */
  'guest-page-fault.protection',
  'sbi.time',
  'sbi.ipi',
  'sbi.rfence',
  /** Every other SBI call (base, HSM, reset, console, PMU, mirrorball, legacy). */
  'sbi.other',
  'mmio',
  'wfi',
  'interrupt',
  /** A move to another cell: its handoff and copies (cell-scheduler.ts). */
  'cell-migration',
  /** The NUMA policy's page migrations and replications, 4 KiB pages and whole groups (cell-policy.ts, large-pages.ts). */
  'numa-policy',
  /** The content-sharing scanner's work on the CPU the vCPU ran on (page-scanner.ts). */
  'scanner',
  /** Monitor-level paging: pages written out, dropped, read back, the hand's steps (pager.ts). */
  'paging',
  /** The balloon's requests (balloon.ts). */
  'balloon',
  /** The messages that other cells' memory lent to the VM cost (cell-recovery.ts). */
  'lent-memory',
  /** What the vCPU was charged before its machine was restored from a snapshot (the split is not saved). */
  'restored',
] as const;

export type MonitorKind = (typeof MONITOR_KINDS)[number];

export const MONITOR_KIND_COUNT = MONITOR_KINDS.length;

export const KIND_WORLD_SWITCH = 0;
export const KIND_REFILL_L2 = 1;
export const KIND_REFILL_WALK = 2;
export const KIND_FAULT_FILL = 3;
export const KIND_FAULT_COPY = 4;
export const KIND_FAULT_PROTECTION = 5;
export const KIND_SBI_TIME = 6;
export const KIND_SBI_IPI = 7;
export const KIND_SBI_RFENCE = 8;
export const KIND_SBI_OTHER = 9;
export const KIND_MMIO = 10;
export const KIND_WFI = 11;
export const KIND_INTERRUPT = 12;
export const KIND_CELL_MIGRATION = 13;
export const KIND_NUMA_POLICY = 14;
export const KIND_SCANNER = 15;
export const KIND_PAGING = 16;
export const KIND_BALLOON = 17;
export const KIND_LENT_MEMORY = 18;
export const KIND_RESTORED = 19;

/**
 * The kind of an exit of cause `cause` (`sbi.time`, `mmio.ns16550a`, `guest-page-fault.fill`, …; as
 * `VirtualMachine.exits` names them, costs.ts `causeCost`).
 */
export function causeKind(cause: string): number {
  const dot = cause.indexOf('.');
  const kind = dot < 0 ? cause : cause.slice(0, dot);
  const detail = dot < 0 ? '' : cause.slice(dot + 1);
  switch (kind) {
    case 'guest-page-fault':
      return detail === 'fill' ? KIND_FAULT_FILL : detail === 'copy-on-write' ? KIND_FAULT_COPY : KIND_FAULT_PROTECTION;
    case 'sbi':
      return detail === 'time' ? KIND_SBI_TIME : detail === 'ipi' ? KIND_SBI_IPI : detail === 'rfence' ? KIND_SBI_RFENCE : KIND_SBI_OTHER;
    case 'mmio': return KIND_MMIO;
    case 'wfi': return KIND_WFI;
    case 'interrupt': return KIND_INTERRUPT;
    case 'world-switch': return KIND_WORLD_SWITCH;
    case 'tlb-refill': return detail === 'l2' ? KIND_REFILL_L2 : KIND_REFILL_WALK;
    default: throw new Error(`no monitor kind for an exit of cause '${cause}'`);
  }
}

/** `cycles` by kind as a record of the kinds with any, in the table's order (`query-vm-stats`, `query-cpus`). */
export function kindRecord(cycles: ArrayLike<number>): Record<string, number> {
  const record: Record<string, number> = {};
  for (let k = 0; k < MONITOR_KIND_COUNT; k++) if (cycles[k]! !== 0) record[MONITOR_KINDS[k]!] = cycles[k]!;
  return record;
}
