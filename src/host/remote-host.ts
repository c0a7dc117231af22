// A host other than host 0 (docs/giantvm.md): `mirrorball host` once a run has connected and sent `start`.
// Its harts run in the rounds host 0 starts; their MMIO goes to host 0 and their interrupt lines come back;
// its part of the DSM answers host 0 (and, later, the other hosts).

import { coherentMemory } from '../board/coherent-ram.js';
import { answerRequest, takeRequest } from '../board/forwarded-mmio.js';
import { decodeFrame, encodeFrame, type WireMessage } from '../dsm/wire.js';
import { HostNode, isDsmMessage, startDsmWorker, type HostsConfig, type MessageSink } from './dsm-host.js';
import type { PeerLink } from './host-link.js';
import { isRelayMessage } from './signal-relay.js';

/** Checks host 0's `start`: a bad one is one line, and nothing starts. */
export function parseHostsConfig(text: string): HostsConfig {
  let c: HostsConfig;
  try {
    c = JSON.parse(text) as HostsConfig;
  } catch {
    throw new Error('the start message is not JSON');
  }
  const whole = (n: unknown, min: number, max: number): boolean => typeof n === 'number' && Number.isSafeInteger(n) && n >= min && n <= max;
  if (c === null || typeof c !== 'object' || !whole(c.harts, 1, 32) || !whole(c.entry, 0, 2 ** 53) || !whole(c.ramBase, 0, 2 ** 40) ||
    !whole(c.ramSize, 4096, 2 ** 36) || c.ramBase % 4096 !== 0 || c.ramSize % 4096 !== 0 || !whole(c.holdUs, 0, 1e7) ||
    typeof c.translate !== 'boolean' || !Array.isArray(c.devices) ||
    (c.sbi !== undefined && (c.sbi === null || typeof c.sbi !== 'object' || !Array.isArray(c.sbi.hsm) || c.sbi.hsm.length !== c.harts ||
      !c.sbi.hsm.every((s) => whole(s, 0, 2)))) ||
    !c.devices.every((d) => d !== null && typeof d === 'object' && whole(d.base, 0, 2 ** 48) && whole(d.size, 1, 2 ** 32) && typeof d.name === 'string')) {
    throw new Error('the start message does not describe a machine this host can run');
  }
  return c;
}

/**
 * Runs this host's share of the VM until host 0 says stop (resolves with 0) or is lost (rejects with the
 * line). Sends its report to host 0 before it ends.
 */
export async function serveRun(link: PeerLink, host: number, hosts: number, config: HostsConfig): Promise<void> {
  const memory = coherentMemory(config.ramBase, config.ramSize, config.harts);
  // Host 0 directly; every other host through host 0 (docs/giantvm.md, "More than two hosts").
  const sinks = new Map<number, MessageSink>([[0, link]]);
  for (let to = 1; to < hosts; to++) if (to !== host) sinks.set(to, viaHostZero(link, host, to));
  const node = new HostNode(host, hosts, config, memory, sinks);
  let lost: string | undefined;
  let stopped = false;
  let round: { number: number; active: boolean; mtime: number } = { number: 0, active: false, mtime: 0 };
  let start = 0;
  /** MMIO requests sent on to host 0, by id. */
  const inFlight = new Map<number, number>();
  const forwarded = new Set<number>();
  let nextId = 1;
  link.onLost = (line) => { lost = line; node.ring(); };
  link.onMessage = (m: WireMessage) => {
    if (isDsmMessage(m)) node.receive(m);
    else if (isRelayMessage(m)) node.receiveRelay(m, 0);
    else if (m.kind === 'via') {
      // From another host, through host 0: its DSM messages and relayed SBI calls only.
      const inner = decodeFrame(m.frame);
      if (m.to !== host || m.from === 0 || m.from === host || m.from >= hosts) throw new Error(`host 0 passed on a message from host ${m.from} to host ${m.to}`);
      if (typeof inner === 'string') throw new Error(`host ${m.from} sent through host 0: ${inner}`);
      if (isDsmMessage(inner)) node.receive(inner);
      else if (isRelayMessage(inner)) node.receiveRelay(inner, m.from);
      else throw new Error(`host ${m.from} sent '${inner.kind}' through host 0`);
    } else switch (m.kind) {
      case 'time':
        round = { number: m.round, active: true, mtime: Number(m.mtime) };
        node.startRound(start, Number(m.end), Number(m.mtime));
        start = Number(m.end);
        break;
      case 'lines':
        if (node.mine.includes(m.hart)) Atomics.store(new Int32Array(node.forwarding.lines), m.hart, m.lines);
        break;
      case 'mmio-reply': {
        const hart = inFlight.get(m.id);
        if (hart === undefined) throw new Error(`host 0 answered MMIO request ${m.id}, which was not asked`);
        inFlight.delete(m.id);
        forwarded.delete(hart);
        answerRequest(node.forwarding, hart, Number(m.value & 0xffffffffn) | 0, !m.ok);
        break;
      }
      case 'stop': stopped = true; break;
      default: throw new Error(`host 0 sent '${m.kind}' during the run`);
    }
    node.ring();
  };
  node.startWorkers(startDsmWorker);
  link.send({ kind: 'ready', host });
  try {
    while (!stopped && lost === undefined && node.failure === undefined) {
      node.service();
      for (const hart of node.mine) {
        if (forwarded.has(hart)) continue;
        const r = takeRequest(node.forwarding, hart);
        if (r === undefined) continue;
        const id = nextId++;
        inFlight.set(id, hart);
        forwarded.add(hart);
        link.send({ kind: 'mmio', id, hart, access: r.kind, size: r.size, address: BigInt(r.address), value: BigInt(r.value >>> 0) });
      }
      if (round.active && node.roundDone()) {
        const done = node.roundResult();
        round.active = false;
        // Signals relayed in the round went out before this, on the same link; the next SBI timer is for an idle VM's skip.
        node.service();
        const timer = node.nextTimer(round.mtime);
        link.send({
          kind: 'round-done', round: round.number, host, instructions: BigInt(done.instructions), waiting: done.idle && !node.takeActivity(),
          timer: timer === Infinity ? 2n ** 64n - 1n : BigInt(Math.ceil(timer)),
        });
      }
      await node.sleep(node.sleepMs());
    }
  } finally {
    await node.stopWorkers();
  }
  if (lost !== undefined) throw new Error(lost);
  if (node.failure !== undefined) {
    link.send({ kind: 'stop', status: 1, reason: node.failure.slice(0, 500) });
    throw new Error(node.failure);
  }
  link.send({ kind: 'report', host, json: JSON.stringify(node.report()) });
}

/** Messages to host `to` (neither 0 nor this one), wrapped in `via` frames that host 0 passes on. */
function viaHostZero(link: PeerLink, from: number, to: number): MessageSink {
  return { send: (message) => link.send({ kind: 'via', to, from, frame: encodeFrame(message) }) };
}
