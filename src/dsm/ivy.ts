// Ivy's page coherence protocol (fixed distributed manager, MSI states) as a pure state machine
// (docs/giantvm.md, "The protocol"): faults, messages and ticks go in with the time, messages and
// satisfied faults come out. No transport, clock or thread of its own.

/** Bytes in a DSM page: the base page of Sv39/Sv48. */
export const PAGE_BYTES = 4096;
/** Pages per manager's range (2 MiB): range r is managed by host r mod hosts. */
export const DSM_RANGE_PAGES = 512;
/** Mirage's Δ by default: how long a host keeps a page it got before it may be taken away, in µs. */
export const DSM_HOLD_US = 100;
/** Most hosts one VM spans (a copyset is a 32-bit mask). */
export const MAX_HOSTS = 32;

export const INVALID = 0;
export const SHARED = 1;
export const MODIFIED = 2;
export type PageState = typeof INVALID | typeof SHARED | typeof MODIFIED;

/** Every message of the protocol (docs/giantvm.md, "The wire": kinds 16-23). */
export type DsmMessage =
  | { kind: 'read-request' | 'write-request'; page: number; from: number; seq: number }
  | { kind: 'forward'; page: number; txn: number; requester: number; write: boolean }
  | { kind: 'invalidate'; page: number; txn: number }
  | { kind: 'invalidate-ack'; page: number; txn: number; from: number }
  | { kind: 'page-data'; page: number; txn: number; write: boolean; data: Uint8Array }
  | { kind: 'grant'; page: number; txn: number }
  | { kind: 'confirm'; page: number; txn: number; from: number };

export interface Envelope {
  to: number;
  message: DsmMessage;
}

/** What the host gives the protocol: its copies of the pages and their permissions. */
export interface PageFrames {
  /** A copy of the page's bytes, for a page-data message. Called after a lowering setState. */
  read(page: number): Uint8Array;
  /** Installs bytes that arrived, before the permission is raised. */
  write(page: number, data: Uint8Array): void;
  /** The page's permission on this host; when it is lowered, the host shoots the page down before returning. */
  setState(page: number, state: PageState): void;
}

/** What one input produced: messages for other hosts, and pages whose waiting faults are now satisfied. */
export interface DsmOutput {
  sends: Envelope[];
  resumed: number[];
}

/** A peer broke the protocol (a trusted peer with a bug): the VM must stop. */
export class DsmProtocolError extends Error {}

export interface DsmOptions {
  /** Mirage's Δ in µs (0: none). */
  holdUs?: number;
  /** Pages per manager's range (DSM_RANGE_PAGES; the tests make it small to spread managers over few pages). */
  rangePages?: number;
}

/** Counters of one host's part of the DSM. */
export interface DsmCounters {
  readFaults: number;
  writeFaults: number;
  /** Writes to a page held Shared. */
  upgradeFaults: number;
  /** Page bytes this host sent. */
  bytesSent: number;
  /** Requests that waited for Δ in this host. */
  held: number;
  /** Fault round trips by power-of-two µs bucket: bucket b holds [2^(b-1), 2^b) (bucket 0: under 1 µs). */
  roundTrip: number[];
}

interface Pending {
  write: boolean;
  since: number;
}

interface Request {
  from: number;
  write: boolean;
}

interface Transaction extends Request {
  txn: number;
  /** Holders whose invalidate-ack is still missing (a mask). */
  awaiting: number;
  /** The owner was told (forward or grant). */
  ownerAsked: boolean;
}

const ROUND_TRIP_BUCKETS = 32;

/** One host's part of the DSM: its copies' states, its waiting faults, and the manager of its ranges. */
export class DsmNode {
  readonly counters: DsmCounters = { readFaults: 0, writeFaults: 0, upgradeFaults: 0, bytesSent: 0, held: 0, roundTrip: new Array<number>(ROUND_TRIP_BUCKETS).fill(0) };
  private readonly hold: number;
  private readonly rangePages: number;
  // This host's copies.
  private readonly state: Uint8Array;
  /** Last transaction this host acted in, per page: older messages are duplicates. */
  private readonly seen: Uint32Array;
  private readonly acquired: Float64Array;
  private readonly nextSeq: Uint32Array;
  private readonly pending = new Map<number, Pending>();
  private deferred: { message: DsmMessage; due: number }[] = [];
  // The manager's records (only its own ranges are used).
  private readonly owner: Uint8Array;
  private readonly copyset: Uint32Array;
  private readonly txns: Uint32Array;
  private readonly active = new Map<number, Transaction>();
  private readonly queued = new Map<number, Request[]>();
  private readonly lastSeq = new Map<number, Uint32Array>();
  /** Ownership passing from one host to another, per page this host manages. */
  readonly bounces = new Map<number, number>();
  private out: DsmOutput = { sends: [], resumed: [] };

  constructor(readonly host: number, readonly hosts: number, readonly pages: number, private readonly frames: PageFrames, options: DsmOptions = {}) {
    if (!Number.isInteger(hosts) || hosts < 1 || hosts > MAX_HOSTS) throw new RangeError(`hosts must be 1-${MAX_HOSTS}`);
    if (!Number.isInteger(host) || host < 0 || host >= hosts) throw new RangeError(`host ${host} is not one of ${hosts}`);
    this.hold = options.holdUs ?? DSM_HOLD_US;
    this.rangePages = options.rangePages ?? DSM_RANGE_PAGES;
    this.state = new Uint8Array(pages).fill(host === 0 ? MODIFIED : INVALID);
    this.seen = new Uint32Array(pages);
    this.acquired = new Float64Array(pages).fill(-Infinity);
    this.nextSeq = new Uint32Array(pages);
    // Every page starts Modified on host 0, which loaded the program.
    this.owner = new Uint8Array(pages);
    this.copyset = new Uint32Array(pages).fill(1);
    this.txns = new Uint32Array(pages);
  }

  /** The manager of a page. */
  managerOf(page: number): number {
    return Math.floor(page / this.rangePages) % this.hosts;
  }

  stateOf(page: number): PageState {
    return this.state[page] as PageState;
  }

  /** Pages per state on this host: [invalid, shared, modified]. */
  pagesByState(): [number, number, number] {
    const counts: [number, number, number] = [0, 0, 0];
    for (const s of this.state) counts[s]++;
    return counts;
  }

  /** Whether a fault of this page is waiting for the protocol. */
  waiting(page: number): boolean {
    return this.pending.has(page);
  }

  /** Requests held back by Δ: the earliest time one may go, or undefined. */
  nextDue(): number | undefined {
    let due: number | undefined;
    for (const d of this.deferred) if (due === undefined || d.due < due) due = d.due;
    return due;
  }

  /**
   * A hart of this host needs `page` (to write, if `write`). Returns true if it already may (it retries
   * at once); otherwise the fault waits until `page` comes out in `resumed`.
   */
  fault(page: number, write: boolean, now: number): boolean {
    this.checkPage(page);
    const s = this.state[page];
    if (s === MODIFIED || (s === SHARED && !write)) return true;
    // One request per page at a time: a write that finds a read waiting faults again once it is in.
    if (this.pending.has(page)) return false;
    if (!write) this.counters.readFaults++;
    else if (s === SHARED) this.counters.upgradeFaults++;
    else this.counters.writeFaults++;
    this.pending.set(page, { write, since: now });
    const seq = ++this.nextSeq[page];
    this.send(this.managerOf(page), { kind: write ? 'write-request' : 'read-request', page, from: this.host, seq }, now);
    return false;
  }

  /** Whether this host's request for `page` is out (its fault not yet satisfied). */
  requested(page: number): boolean {
    return this.pending.has(page);
  }

  /** A message from a host (or from this one). */
  receive(message: DsmMessage, now: number): void {
    this.checkPage(message.page);
    switch (message.kind) {
      case 'read-request':
      case 'write-request': return this.request(message.page, message.from, message.seq, message.kind === 'write-request', now);
      case 'invalidate-ack': return this.ack(message.page, message.txn, message.from, now);
      case 'confirm': return this.confirm(message.page, message.txn, message.from, now);
      case 'forward':
      case 'invalidate': return this.take(message, now);
      case 'page-data': return this.arrive(message.page, message.txn, message.data, now);
      case 'grant': return this.arrive(message.page, message.txn, undefined, now);
    }
  }

  /** Time passed: requests whose Δ is over are served. */
  tick(now: number): void {
    if (this.deferred.length === 0) return;
    const due = this.deferred.filter((d) => d.due <= now);
    if (due.length === 0) return;
    this.deferred = this.deferred.filter((d) => d.due > now);
    for (const d of due) this.take(d.message, now);
  }

  /** What is in progress, for a hung run's diagnosis. */
  describe(): string {
    const pending = [...this.pending.entries()].map(([p, f]) => `${p}${f.write ? 'w' : 'r'}`).join(',');
    const active = [...this.active.entries()].map(([p, t]) => `${p}:txn${t.txn}/from${t.from}${t.write ? 'w' : 'r'}/await${t.awaiting}/asked${t.ownerAsked ? 1 : 0}/q${this.queued.get(p)?.length ?? 0}`).join(',');
    const deferred = this.deferred.map((d) => `${d.message.kind}:${d.message.page}`).join(',');
    return `pending=[${pending}] active=[${active}] deferred=[${deferred}]`;
  }

  /** What the inputs since the last call produced. */
  takeOutput(): DsmOutput {
    const out = this.out;
    this.out = { sends: [], resumed: [] };
    return out;
  }

  // ---- the manager ----

  private request(page: number, from: number, seq: number, write: boolean, now: number): void {
    if (this.managerOf(page) !== this.host) throw new DsmProtocolError(`host ${from} asked host ${this.host} for page ${page}, which it does not manage`);
    this.checkHost(from);
    let seqs = this.lastSeq.get(page);
    if (seqs === undefined) this.lastSeq.set(page, seqs = new Uint32Array(this.hosts));
    if (seq <= seqs[from]) return;
    seqs[from] = seq;
    if (this.active.has(page)) {
      const queue = this.queued.get(page);
      if (queue === undefined) this.queued.set(page, [{ from, write }]);
      else queue.push({ from, write });
      return;
    }
    this.start(page, { from, write }, now);
  }

  private start(page: number, request: Request, now: number): void {
    const txn = ++this.txns[page];
    const t: Transaction = { ...request, txn, awaiting: 0, ownerAsked: false };
    this.active.set(page, t);
    if (request.write) {
      const others = this.copyset[page] & ~bit(request.from) & ~bit(this.owner[page]);
      t.awaiting = others;
      for (let h = 0; h < this.hosts; h++) if (others & bit(h)) this.send(h, { kind: 'invalidate', page, txn }, now);
    }
    if (t.awaiting === 0) this.askOwner(page, t, now);
  }

  private askOwner(page: number, t: Transaction, now: number): void {
    t.ownerAsked = true;
    const owner = this.owner[page];
    const holds = (this.copyset[page] & bit(t.from)) !== 0;
    // A reader that has a copy, or a writer that owns the page, needs no data.
    if ((t.write && owner === t.from) || (!t.write && holds)) this.send(t.from, { kind: 'grant', page, txn: t.txn }, now);
    else this.send(owner, { kind: 'forward', page, txn: t.txn, requester: t.from, write: t.write }, now);
  }

  private ack(page: number, txn: number, from: number, now: number): void {
    this.checkHost(from);
    const t = this.active.get(page);
    if (t === undefined || t.txn !== txn || (t.awaiting & bit(from)) === 0) return;
    t.awaiting &= ~bit(from);
    this.copyset[page] &= ~bit(from);
    if (t.awaiting === 0 && !t.ownerAsked) this.askOwner(page, t, now);
  }

  private confirm(page: number, txn: number, from: number, now: number): void {
    this.checkHost(from);
    const t = this.active.get(page);
    if (t === undefined || t.txn !== txn || from !== t.from || !t.ownerAsked || t.awaiting !== 0) return;
    if (t.write) {
      if (this.owner[page] !== from) this.bounces.set(page, (this.bounces.get(page) ?? 0) + 1);
      this.owner[page] = from;
      this.copyset[page] = bit(from);
    } else {
      this.copyset[page] |= bit(from);
    }
    this.active.delete(page);
    const next = this.queued.get(page)?.shift();
    if (next !== undefined) this.start(page, next, now);
  }

  // ---- this host's copies ----

  /** A forward or an invalidate: the page leaves this host (or is downgraded), once held for Δ. */
  private take(message: DsmMessage, now: number): void {
    if (message.kind !== 'forward' && message.kind !== 'invalidate') return;
    const page = message.page;
    if (message.txn <= this.seen[page]) return;
    const due = this.acquired[page] + this.hold;
    if (now < due) {
      this.counters.held++;
      this.deferred.push({ message, due });
      return;
    }
    this.seen[page] = message.txn;
    const manager = this.managerOf(page);
    if (message.kind === 'invalidate') {
      this.lower(page, INVALID);
      this.send(manager, { kind: 'invalidate-ack', page, txn: message.txn, from: this.host }, now);
      return;
    }
    this.checkHost(message.requester);
    if (this.state[page] === INVALID) throw new DsmProtocolError(`host ${this.host} was asked for page ${page}, which it does not hold`);
    this.lower(page, message.write ? INVALID : SHARED);
    const data = this.frames.read(page);
    this.counters.bytesSent += data.length;
    this.send(message.requester, { kind: 'page-data', page, txn: message.txn, write: message.write, data }, now);
  }

  /** Page data or a grant for this host's waiting fault. */
  private arrive(page: number, txn: number, data: Uint8Array | undefined, now: number): void {
    if (txn <= this.seen[page]) return;
    const p = this.pending.get(page);
    if (p === undefined) throw new DsmProtocolError(`host ${this.host} got page ${page} it did not ask for`);
    this.seen[page] = txn;
    if (data !== undefined) this.frames.write(page, data);
    else if (p.write && this.state[page] === INVALID) throw new DsmProtocolError(`host ${this.host} was granted page ${page} to write without its data`);
    const state = p.write ? MODIFIED : Math.max(this.state[page], SHARED) as PageState;
    this.state[page] = state;
    this.frames.setState(page, state);
    this.acquired[page] = now;
    this.pending.delete(page);
    this.counters.roundTrip[bucketOf(now - p.since)]++;
    this.out.resumed.push(page);
    this.send(this.managerOf(page), { kind: 'confirm', page, txn, from: this.host }, now);
  }

  private lower(page: number, state: PageState): void {
    if (this.state[page] <= state) return;
    this.state[page] = state;
    this.frames.setState(page, state);
  }

  /** A message to another host goes out; one to this host is handled at once. */
  private send(to: number, message: DsmMessage, now: number): void {
    if (to === this.host) this.receive(message, now);
    else this.out.sends.push({ to, message });
  }

  private checkPage(page: number): void {
    if (!Number.isInteger(page) || page < 0 || page >= this.pages) throw new DsmProtocolError(`page ${page} is outside the VM's ${this.pages} pages`);
  }

  private checkHost(host: number): void {
    if (!Number.isInteger(host) || host < 0 || host >= this.hosts) throw new DsmProtocolError(`host ${host} is not one of the ${this.hosts}`);
  }
}

function bit(host: number): number {
  return (1 << host) >>> 0;
}

/** The power-of-two bucket of a round trip in µs. */
export function bucketOf(us: number): number {
  if (!(us >= 1)) return 0;
  return Math.min(ROUND_TRIP_BUCKETS - 1, Math.floor(Math.log2(us)) + 1);
}

/** The bucket's upper bound in µs, for reading a quantile off the histogram. */
export function bucketLimit(bucket: number): number {
  return 2 ** bucket;
}

/** The quantile q (0-1) of a histogram of round trips, as the upper bound of its bucket, or undefined. */
export function histogramQuantile(histogram: readonly number[], q: number): number | undefined {
  const total = histogram.reduce((a, b) => a + b, 0);
  if (total === 0) return undefined;
  const rank = Math.ceil(q * total);
  let seen = 0;
  for (let b = 0; b < histogram.length; b++) {
    seen += histogram[b];
    if (seen >= rank && seen > 0) return bucketLimit(b);
  }
  return bucketLimit(histogram.length - 1);
}
