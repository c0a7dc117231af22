// The relay of the built-in SBI between hosts (signal-relay.ts), two hosts in one process with no threads:
// a remote fence is acked to its caller only once the target hart did it; an HSM start carries its entry
// and opaque value; HSM states follow their hart's host; a message about a hart that is not the sender's
// or the receiver's business is refused.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HostSignals } from '../board/coherent-hart.js';
import { coherentMemory, ThreadWakes } from '../board/coherent-ram.js';
import { FENCE_I, FENCE_VMA, HSM_STARTED, HSM_STOPPED } from '../board/sbi.js';
import { PENDING_START, signalMemory } from '../board/threaded-sbi.js';
import { MIP_SSIP } from '../isa/opcodes.js';
import { SignalRelay, type RelayMessage } from './signal-relay.js';

/** Two hosts of a 2-hart VM: hart h on host h. Messages wait in a queue until `deliver`. */
function twoHosts(): { relays: SignalRelay[]; signals: HostSignals[]; hsm: Int32Array[]; deliver(): number } {
  const queue: { to: number; from: number; message: RelayMessage }[] = [];
  const signals: HostSignals[] = [];
  const hsm: Int32Array[] = [];
  const relays = [0, 1].map((host) => {
    const s = new HostSignals(signalMemory(2, 2), 2, [host], new ThreadWakes(coherentMemory(0, 4096, 2)), new Int32Array(1));
    const states = Int32Array.of(HSM_STARTED, HSM_STOPPED);
    signals.push(s);
    hsm.push(states);
    return new SignalRelay(host, 2, 2, [host], s, states, (h) => h, (to, message) => queue.push({ to, from: host, message }));
  });
  return {
    relays, signals, hsm,
    deliver: () => {
      const n = queue.length;
      for (const { to, from, message } of queue.splice(0)) relays[to]!.receive(message, from);
      return n;
    },
  };
}

test('signal relay: a remote fence is acked to its caller only once the target hart did it', () => {
  const { relays, signals, deliver } = twoHosts();
  const number = signals[0]!.requestFence(1, FENCE_I);
  signals[0]!.requestFence(1, FENCE_VMA);
  relays[0]!.service();
  assert.equal(deliver(), 1, 'the two requests went as one fence');
  relays[1]!.service();
  deliver();
  assert.equal(signals[0]!.acked(1, number + 1), false, 'not acked before hart 1 did the fence');
  let did = 0;
  assert.ok(signals[1]!.serveFences(1, (what) => { did = what; }));
  assert.equal(did, FENCE_I | FENCE_VMA, 'what both requests asked');
  relays[1]!.service();
  assert.equal(deliver(), 1);
  assert.ok(signals[0]!.acked(1, number + 1));
  assert.deepEqual(relays[0]!.counters, { signalsSent: 0, fencesSent: 1, fencesServed: 0, hsmSent: 0 });
  assert.equal(relays[1]!.counters.fencesServed, 1);
});

test('signal relay: an IPI and an HSM start reach the hart on the other host; its HSM state comes back', () => {
  const { relays, signals, hsm, deliver } = twoHosts();
  signals[0]!.setStart(1, 0x8020_0000, -2n);
  signals[0]!.post(1, PENDING_START);
  signals[0]!.post(1, MIP_SSIP);
  relays[0]!.service();
  deliver();
  assert.equal(signals[1]!.takePending(1), PENDING_START | MIP_SSIP);
  assert.deepEqual(signals[1]!.startOf(1), { entry: 0x8020_0000, opaque: -2n });
  assert.equal(relays[0]!.takeActivity(), true);
  assert.equal(relays[0]!.takeActivity(), false);
  // Hart 1 started on host 1: host 0's copy follows; host 0's own hart's state is not host 1's to say.
  Atomics.store(hsm[1]!, 1, HSM_STARTED);
  relays[1]!.service();
  deliver();
  assert.equal(hsm[0]![1], HSM_STARTED);
  assert.throws(() => relays[0]!.receive({ kind: 'hsm', hart: 0, state: HSM_STOPPED }, 1), /does not run/);
  assert.throws(() => relays[0]!.receive({ kind: 'signal', hart: 1, bits: MIP_SSIP, entry: 0n, opaque: 0n }, 1), /not on host 0/);
  assert.throws(() => relays[0]!.receive({ kind: 'fence', id: 1, hart: 7, what: FENCE_I }, 1), /not on host 0/);
});
