// The built-in SBI across hosts (docs/giantvm.md, "Forwarded CPUs"): a host's main thread stands in for the
// harts of the other hosts in its signal words (threaded-sbi.ts). What its own harts ask of a hart elsewhere
// (an IPI, an HSM start, a remote fence) goes out as a message; what comes in is posted to its own harts,
// and a remote fence is acked back only once the target hart has done it. Each host also tells the others
// when one of its harts' HSM state changes, so hart_get_status reads a copy that follows.

import type { HostSignals } from '../board/coherent-hart.js';
import { PENDING_START } from '../board/threaded-sbi.js';
import type { WireMessage } from '../dsm/wire.js';

export type RelayMessage = Extract<WireMessage, { kind: 'signal' | 'hsm' | 'fence' | 'fence-ack' }>;

const RELAY_KINDS = new Set(['signal', 'hsm', 'fence', 'fence-ack']);

export function isRelayMessage(m: WireMessage): m is RelayMessage {
  return RELAY_KINDS.has(m.kind);
}

/** What a host relayed (for `--stats` and the report). */
export interface RelayCounters {
  /** IPIs and HSM starts sent to harts of other hosts. */
  signalsSent: number;
  /** Remote fences sent to harts of other hosts, and fences other hosts asked of this host's harts. */
  fencesSent: number;
  fencesServed: number;
  hsmSent: number;
}

export class SignalRelay {
  readonly counters: RelayCounters = { signalsSent: 0, fencesSent: 0, fencesServed: 0, hsmSent: 0 };
  private readonly mine: ReadonlySet<number>;
  /** Per hart of another host: the last fence request count sent on. */
  private readonly forwarded: number[];
  /** Fences other hosts asked of this host's harts, not yet done. */
  private readonly served: { to: number; id: number; hart: number; number: number }[] = [];
  private readonly hsmSent: number[];
  /** A signal went out or came in since `takeActivity`: the round was not idle. */
  private activity = false;

  constructor(private readonly host: number, private readonly hosts: number, private readonly harts: number, mine: readonly number[],
    private readonly signals: HostSignals, private readonly hsm: Int32Array, private readonly hostOf: (hart: number) => number,
    private readonly send: (to: number, message: RelayMessage) => void) {
    this.mine = new Set(mine);
    this.forwarded = new Array<number>(harts).fill(0);
    this.hsmSent = Array.from({ length: harts }, (_, h) => Atomics.load(hsm, h));
  }

  /** Sends what this host's harts asked of the others, the fences done for the others, and HSM changes. */
  service(): void {
    const signals = this.signals;
    for (let t = 0; t < this.harts; t++) {
      if (this.mine.has(t)) {
        const state = Atomics.load(this.hsm, t);
        if (state !== this.hsmSent[t]) {
          this.hsmSent[t] = state;
          for (let to = 0; to < this.hosts; to++) if (to !== this.host) this.send(to, { kind: 'hsm', hart: t, state });
          this.counters.hsmSent++;
        }
        continue;
      }
      const pending = signals.takePending(t);
      if (pending !== 0) {
        const start = (pending & PENDING_START) !== 0 ? signals.startOf(t) : { entry: 0, opaque: 0n };
        this.send(this.hostOf(t), { kind: 'signal', hart: t, bits: pending >>> 0, entry: BigInt(start.entry), opaque: BigInt.asUintN(64, start.opaque) });
        this.counters.signalsSent++;
        this.activity = true;
      }
      const fence = signals.takeFenceRequests(t, this.forwarded[t]!);
      if (fence !== undefined) {
        this.forwarded[t] = fence.request;
        this.send(this.hostOf(t), { kind: 'fence', id: fence.request >>> 0, hart: t, what: fence.what & 0xff });
        this.counters.fencesSent++;
        this.activity = true;
      }
    }
    for (let i = this.served.length - 1; i >= 0; i--) {
      const s = this.served[i]!;
      if (!signals.acked(s.hart, s.number)) continue;
      this.send(s.to, { kind: 'fence-ack', id: s.id, hart: s.hart });
      this.served.splice(i, 1);
    }
  }

  /** A relayed message from host `from`; a message about a hart it has no business with ends the run (thrown). */
  receive(m: RelayMessage, from: number): void {
    const own = m.hart < this.harts && this.mine.has(m.hart);
    const theirs = m.hart < this.harts && this.hostOf(m.hart) === from;
    switch (m.kind) {
      case 'signal':
        if (!own) throw new Error(`host ${from} sent a signal for hart ${m.hart}, which is not on host ${this.host}`);
        if ((m.bits & PENDING_START) !== 0) this.signals.setStart(m.hart, Number(m.entry), BigInt.asIntN(64, m.opaque));
        this.signals.post(m.hart, m.bits | 0);
        this.activity = true;
        break;
      case 'fence':
        if (!own) throw new Error(`host ${from} sent a fence for hart ${m.hart}, which is not on host ${this.host}`);
        this.served.push({ to: from, id: m.id, hart: m.hart, number: this.signals.requestFence(m.hart, m.what) });
        this.counters.fencesServed++;
        this.activity = true;
        break;
      case 'fence-ack':
        if (!theirs) throw new Error(`host ${from} acked a fence of hart ${m.hart}, which it does not run`);
        this.signals.ackFences(m.hart, m.id | 0);
        break;
      case 'hsm':
        if (!theirs) throw new Error(`host ${from} sent the HSM state of hart ${m.hart}, which it does not run`);
        Atomics.store(this.hsm, m.hart, m.state | 0);
        break;
    }
  }

  /** Whether a signal went or came since the last call. */
  takeActivity(): boolean {
    const a = this.activity;
    this.activity = false;
    return a;
  }
}
