// The machine's failure report: what the hardware tells its owner about faults, as a machine-check log would.

import type { HardwareSyndrome } from '../memory/hardware-faults.js';

/** Fields every record has: its place in the log and the simulated time (machine cycles) it was made at. */
interface RecordBase {
  readonly seq: number;
  readonly time: number;
}

/**
 * One record of the report. A node's failure stops its CPUs (named) and its memory; a CPU stops; a link or
 * router fails; the interconnect's groups change (`partition`, after a link or router failure that split
 * it: the groups of nodes that still reach one another; after a repair that joined them, too). A failed part
 * replaced is reported back (`node-repaired`: the node and its CPUs work again, with new memory, all zeros;
 * `cpu-repaired`, `link-repaired`, `router-repaired`). A bus error is logged as it happens: the CPU (-1
 * for a device's DMA), the machine address and why. Injected poison makes no record of its own: like an
 * uncorrectable memory error, it is found when something reads it (a bus error).
 */
export type FailureRecord = RecordBase & (
  | { readonly kind: 'node-failed'; readonly node: number; readonly cpus: readonly number[] }
  | { readonly kind: 'cpu-stopped'; readonly cpu: number; readonly node: number }
  | { readonly kind: 'link-failed'; readonly link: string }
  | { readonly kind: 'router-failed'; readonly node: number }
  | { readonly kind: 'partition'; readonly groups: readonly (readonly number[])[] }
  | { readonly kind: 'node-repaired'; readonly node: number; readonly cpus: readonly number[] }
  | { readonly kind: 'cpu-repaired'; readonly cpu: number; readonly node: number }
  | { readonly kind: 'link-repaired'; readonly link: string }
  | { readonly kind: 'router-repaired'; readonly node: number }
  | { readonly kind: 'bus-error'; readonly cpu: number; readonly address: number; readonly syndrome: HardwareSyndrome; readonly count: number }
);

/** A record as the hardware hands it to the log, before it has a place there. */
export type NewFailureRecord = FailureRecord extends infer R ? R extends RecordBase ? Omit<R, 'seq'> : never : never;

/** One line for a record, as logs and the control socket show it. */
export function describeRecord(r: FailureRecord): string {
  switch (r.kind) {
    case 'node-failed':
      return `node ${r.node} failed (CPUs ${r.cpus.join(', ') || 'none'})`;
    case 'cpu-stopped':
      return `CPU ${r.cpu} (node ${r.node}) stopped`;
    case 'link-failed':
      return `link ${r.link} failed`;
    case 'router-failed':
      return `router of node ${r.node} failed`;
    case 'partition':
      return r.groups.length === 1 ? 'the interconnect is whole again' : `the interconnect is partitioned: ${r.groups.map((g) => `{${g.join(',')}}`).join(' ')}`;
    case 'node-repaired':
      return `node ${r.node} was repaired (CPUs ${r.cpus.join(', ') || 'none'}, its memory new)`;
    case 'cpu-repaired':
      return `CPU ${r.cpu} (node ${r.node}) was repaired`;
    case 'link-repaired':
      return `link ${r.link} was repaired`;
    case 'router-repaired':
      return `router of node ${r.node} was repaired`;
    case 'bus-error':
      return `bus error (${r.syndrome}) at 0x${r.address.toString(16)} by ${r.cpu < 0 ? 'a device' : `CPU ${r.cpu}`}${r.count > 1 ? ` (${r.count} times)` : ''}`;
  }
}

/**
 * The log the hardware writes and its owner (the monitor) reads: records in order, each with a sequence
 * number; a reader keeps the number it has read up to. Bus errors repeated by the same accessor at the same
 * address are counted in one record, so a guest that retries cannot flood it.
 */
export class FailureReport {
  private readonly log: FailureRecord[] = [];

  /** Records made so far (the next record's `seq`). */
  get count(): number {
    return this.log.length;
  }

  /** Every record from sequence number `from` on. */
  since(from: number): readonly FailureRecord[] {
    return this.log.slice(from);
  }

  /** The hardware's side: appends a record. */
  add(record: NewFailureRecord): void {
    const last = this.log[this.log.length - 1];
    if (record.kind === 'bus-error' && last?.kind === 'bus-error' && last.cpu === record.cpu && last.address === record.address
      && last.syndrome === record.syndrome) {
      this.log[this.log.length - 1] = { ...last, count: last.count + 1 };
      return;
    }
    this.log.push({ ...record, seq: this.log.length } as FailureRecord);
  }
}
