// The NUMA policy's moves as control-protocol events (docs/control.md, "Page events"): PAGE_MIGRATED and
// PAGE_REPLICATED as the policy makes them, at most EVENTS_PER_SECOND of host time so that a burst of moves
// cannot flood a client; what is left out is counted and said in PAGE_EVENTS_DROPPED.

import type { PolicyMove, PolicyTally } from '../monitor/policy-tally.js';

/** Events a second, on average, of host time; a burst may take `EVENT_BURST` at once. */
export const EVENTS_PER_SECOND = 50;
export const EVENT_BURST = 50;
/** At most one PAGE_EVENTS_DROPPED per this many host milliseconds. */
export const DROPPED_EVERY_MS = 1000;

export interface PageEventsHost {
  /** The policy's tally now (the policy can be made, replaced or removed by `set-policy` between batches). */
  tally(): PolicyTally | undefined;
  /** VM id to name. */
  vmName(id: number): string;
  emit(name: string, data: object): void;
  /** Host milliseconds. */
  now(): number;
}

export class PageEvents {
  private tokens = EVENT_BURST;
  private last: number;
  private readonly queued: { name: string; data: object }[] = [];
  /** Moves left out since the last PAGE_EVENTS_DROPPED, and in all. */
  private droppedSince = { migrated: 0, replicated: 0 };
  readonly dropped = { migrated: 0, replicated: 0 };
  private lastDroppedReport = -Infinity;
  private attached: PolicyTally | undefined;
  private readonly listener = (move: PolicyMove): void => this.offer(move);

  constructor(private readonly host: PageEventsHost) {
    this.last = host.now();
    this.attach();
  }

  /** Follows the policy in force: called between batches, before the rounds that may move pages. */
  private attach(): void {
    const tally = this.host.tally();
    if (tally === this.attached) return;
    if (this.attached !== undefined && this.attached.onMove === this.listener) this.attached.onMove = undefined;
    this.attached = tally;
    if (tally !== undefined) tally.onMove = this.listener;
  }

  /** One move, as the policy makes it (inside a round): queued if the rate allows, else counted. */
  private offer(move: PolicyMove): void {
    const now = this.host.now();
    this.tokens = Math.min(EVENT_BURST, this.tokens + ((now - this.last) * EVENTS_PER_SECOND) / 1000);
    this.last = now;
    if (this.tokens < 1) {
      this.droppedSince[move.kind]++;
      this.dropped[move.kind]++;
      return;
    }
    this.tokens--;
    this.queued.push({
      name: move.kind === 'migrated' ? 'PAGE_MIGRATED' : 'PAGE_REPLICATED',
      data: { vm: this.host.vmName(move.vm), page: move.address, pages: move.pages, from: move.from, to: move.to },
    });
  }

  /** After a batch of rounds: the queued events out, what was dropped said (at most once a second). */
  flush(): void {
    for (const e of this.queued) this.host.emit(e.name, e.data);
    this.queued.length = 0;
    const since = this.droppedSince;
    const now = this.host.now();
    if (since.migrated + since.replicated > 0 && now - this.lastDroppedReport >= DROPPED_EVERY_MS) {
      this.host.emit('PAGE_EVENTS_DROPPED', { migrated: since.migrated, replicated: since.replicated, totalMigrated: this.dropped.migrated, totalReplicated: this.dropped.replicated });
      this.droppedSince = { migrated: 0, replicated: 0 };
      this.lastDroppedReport = now;
    }
    this.attach();
  }

  /** Stops listening (the monitor is going away). */
  close(): void {
    if (this.attached !== undefined && this.attached.onMove === this.listener) this.attached.onMove = undefined;
    this.attached = undefined;
  }
}
