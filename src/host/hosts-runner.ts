// Host 0 of a VM spanning several hosts (docs/giantvm.md): the devices, the CLINT and the PLIC, guest
// time and the rounds; its share of the harts on worker threads over its coherent copy of memory, which
// starts as the machine's RAM with the program loaded (a bare-metal program, or Linux under the built-in
// SBI, whose calls that reach harts of other hosts go through signal-relay.ts).

import type { ExitReason, Machine } from '../board/machine.js';
import { coherentMemory, HOLDS_NONE, HOLDS_WRITE } from '../board/coherent-ram.js';
import { MmioServer } from '../board/forwarded-mmio.js';
import { saveHart } from '../cpu/hart-snapshot.js';
import { runControlRequest } from '../devices/control.js';
import { performance } from 'node:perf_hooks';
import { INSTRUCTIONS_PER_TICK, TIMEBASE_HZ } from '../timing/clock.js';
import { BusError } from '../memory/bus.js';
import type { AccessSize } from '../memory/device.js';
import { DmaGate } from '../dsm/dma-gate.js';
import { DSM_HOLD_US } from '../dsm/ivy.js';
import type { WireMessage } from '../dsm/wire.js';
import { HostNode, hostOfHart, isDsmMessage, startDsmWorker, type HostReport, type HostsConfig } from './dsm-host.js';
import type { PeerLink } from './host-link.js';
import { isRelayMessage } from './signal-relay.js';

/** Cycles per round across hosts: the threaded quantum, and the bound on a hart's time running ahead. */
export const HOSTS_QUANTUM = 65536;
/** How long host 0 waits for the other hosts' reports at the end. */
const REPORT_MS = 2000;

export interface HostsOptions {
  maxInstructions?: number;
  translate?: boolean;
  quantum?: number;
  holdUs?: number;
  /** When every hart idles, guest time does not run ahead of host time (as threaded-runner.ts): for a guest that waits on someone typing. */
  pace?: boolean;
}

/** A round's `timer` when a host's harts have no SBI timer ahead. */
const NO_TIMER = 2n ** 64n - 1n;
/** How long host 0 sleeps, paced and idle, before it looks at the time and its input again. */
const IDLE_SLEEP_MS = 2;

/** A run across hosts that cannot go on (a host lost, a machine hosts cannot run): one line. */
export class HostsRunError extends Error {}

export interface HostsResult {
  exit: ExitReason;
  reports: HostReport[];
}

/** Runs `machine` (bare-metal, loaded) over this process as host 0 and the hosts behind `links` (link k-1 is host k). */
export async function runOnHosts(machine: Machine, links: readonly PeerLink[], options: HostsOptions = {}): Promise<HostsResult> {
  const hosts = links.length + 1;
  const quantum = options.quantum ?? HOSTS_QUANTUM;
  const limit = options.maxInstructions ?? Infinity;
  const regions = machine.bus.machineRam;
  if (regions.length !== 1 || !(regions[0]!.buffer instanceof SharedArrayBuffer)) throw new HostsRunError('hosts need one node of RAM in a SharedArrayBuffer');
  if (machine.harts.some((h) => h.timed)) throw new HostsRunError('timing mode is refused across hosts: its caches and latencies know nothing of the network');
  const ram = regions[0]!;
  const sbi = machine.sbi;
  const config: HostsConfig = {
    harts: machine.harts.length, entry: machine.harts[0]!.pc, a1: sbi === undefined ? machine.harts[0]!.reg(11) : undefined, ramBase: ram.base, ramSize: ram.size,
    devices: machine.bus.devices.map((w) => ({ base: w.base, size: w.size, name: w.device.name })),
    translate: options.translate ?? true, holdUs: options.holdUs ?? DSM_HOLD_US,
    sbi: sbi === undefined ? undefined : { hsm: [...sbi.hsmState] },
  };
  const byHost = new Map<number, PeerLink>(links.map((l, i) => [i + 1, l]));
  const memory = coherentMemory(ram.base, ram.size, machine.harts.length, ram.buffer as SharedArrayBuffer);
  const node = new HostNode(0, hosts, config, memory, byHost,
    sbi === undefined ? undefined : { shared: sbi.shared(), states: machine.harts.map((h) => saveHart(h, regions)) });
  // The devices' DMA goes through host 0's copy of memory, with the pages held as it needs (dsm/dma-gate.ts),
  // and breaks the LR reservations of host 0's harts on what it writes.
  const gate = new DmaGate(ram.base, ram.size, {
    holds: (page) => node.pages.holds(page),
    fault: (page, write) => node.hostFault(page, write),
    requested: (page) => node.dsm.requested(page),
  });
  machine.bus.dmaGate = (address, length, write) => gate.check(address, length, write);
  const stopObserving = machine.bus.observeDmaWrites((address, length) => node.reservations.storeBy(-1, address, length));
  // The built-in SBI's reset, console and control requests, from this host's harts and the others'.
  const server = new MmioServer(machine.bus, node.forwarding, machine.harts.length, {
    reset: (type, reason) => machine.sbiReset(type, reason),
    consoleWrite: (bytes) => machine.consoleWrite(bytes),
    control: (request, argument) => runControlRequest(machine.control, request, argument),
  });
  const lines = (hart: number): number => machine.harts[hart]!.mipLines;
  const sentLines = new Map<number, number>();
  /** Own harts' lines into shared memory, the others' as `lines` messages when they changed. */
  const publishLines = (): boolean => {
    let raised = server.publishLines(lines) !== 0;
    for (const h of machine.harts) {
      const host = hostOfHart(h.id, hosts);
      if (host === 0 || sentLines.get(h.id) === h.mipLines) continue;
      if ((h.mipLines & ~(sentLines.get(h.id) ?? 0)) !== 0) raised = true;
      sentLines.set(h.id, h.mipLines);
      byHost.get(host)!.send({ kind: 'lines', hart: h.id, lines: h.mipLines });
      node.linesSent++;
    }
    return raised;
  };

  let lost: string | undefined;
  const ready = new Set<number>();
  const reports: HostReport[] = [];
  const reported = new Set<number>();
  let roundNumber = 0;
  const roundsDone = new Map<number, { instructions: number; idle: boolean; timer: number }>();
  links.forEach((link, i) => {
    const host = i + 1;
    // A host that sent its report at the end closes its link: that is no loss.
    link.onLost = (line) => { if (!reported.has(host)) lost ??= line; node.ring(); };
    link.onMessage = (m: WireMessage) => {
      if (isDsmMessage(m)) node.receive(m);
      else if (isRelayMessage(m)) node.receiveRelay(m, host);
      else switch (m.kind) {
        case 'ready': ready.add(host); break;
        case 'round-done':
          if (m.round === roundNumber) roundsDone.set(host, { instructions: Number(m.instructions), idle: m.waiting, timer: m.timer === NO_TIMER ? Infinity : Number(m.timer) });
          break;
        case 'mmio': {
          const device = m.access <= 1;
          if (hostOfHart(m.hart, hosts) !== host || (device && ![1, 2, 4].includes(m.size))) throw new Error(`host ${host} sent an MMIO request for hart ${m.hart} of size ${m.size}`);
          let value = 0;
          let ok = true;
          try {
            const v = Number(m.value & 0xffffffffn);
            if (!device) value = server.firmwareCall(m.access, Number(m.address), m.size, v) >>> 0;
            else if (m.access === 1) machine.bus.mmioWrite(Number(m.address), m.size as AccessSize, v, m.hart);
            else value = machine.bus.mmioRead(Number(m.address), m.size as AccessSize, m.hart) >>> 0;
          } catch (error) {
            if (!(error instanceof BusError)) throw error;
            ok = false;
          }
          link.send({ kind: 'mmio-reply', id: m.id, ok, value: BigInt(value) });
          publishLines();
          break;
        }
        case 'via': {
          // Between two other hosts: passed on as it is (the receiver checks the frame inside).
          const to = byHost.get(m.to);
          if (m.from !== host || to === undefined || m.to === host) throw new Error(`host ${host} sent a message for host ${m.to} as host ${m.from}`);
          to.send(m);
          node.passedOn++;
          break;
        }
        case 'report':
          reports.push(JSON.parse(m.json) as HostReport);
          reported.add(host);
          break;
        case 'stop': lost ??= `host ${host} stopped: ${m.reason}`; break;
        default: throw new Error(`host ${host} sent '${m.kind}' during the run`);
      }
      node.ring();
    };
    link.send({ kind: 'start', host, hosts, config: JSON.stringify(config) });
  });
  const check = (): void => {
    if (lost !== undefined) throw new HostsRunError(lost);
    if (node.failure !== undefined) throw new HostsRunError(node.failure);
  };
  while (ready.size < links.length) {
    check();
    await node.sleep(20);
  }

  const tohostPage = machine.htif === undefined ? -1 : Math.floor((machine.htif.tohost - ram.base) / 4096);
  const htif = machine.htif;
  node.startWorkers(startDsmWorker);
  const pace = options.pace === true;
  // Paced, idle time flows at the host's rate from the moment the machine went idle (runner.ts).
  let anchorGuest = machine.clock.now();
  let anchorHost = performance.now();
  try {
    while (machine.exit === undefined) {
      check();
      const start = machine.cycles;
      const end = start + quantum;
      const mtime = machine.clock.now();
      roundNumber++;
      roundsDone.clear();
      for (const [, link] of byHost) link.send({ kind: 'time', round: roundNumber, end: BigInt(end), mtime: BigInt(Math.floor(mtime)) });
      node.startRound(start, end, mtime);
      // The round: serve the harts' MMIO and the DSM until every host is done with it.
      for (;;) {
        if (server.serve() > 0) publishLines();
        node.service();
        if (gate.service()) publishLines();
        check();
        if (node.roundDone() && roundsDone.size === links.length) break;
        await node.sleep(node.sleepMs());
      }
      const mine = node.roundResult();
      // A round in which a signal went between hosts (an IPI, a start, a fence) is not idle: its target may
      // have taken it only after its round (no skip of guest time past it).
      // Nor is one in which a device waits for pages (its completion is an interrupt to come).
      let idle = mine.idle && !node.takeActivity() && !gate.waiting;
      let remoteTimer = Infinity;
      machine.instructions += mine.instructions;
      for (const r of roundsDone.values()) {
        machine.instructions += r.instructions;
        idle &&= r.idle;
        remoteTimer = Math.min(remoteTimer, r.timer);
      }
      // HTIF reads host 0's copy of the tohost page, so only once it holds the page: it asks for it otherwise.
      if (htif !== undefined) {
        const holds = node.pages.holds(tohostPage);
        machine.htif = holds === HOLDS_WRITE ? htif : undefined;
        if (holds === HOLDS_NONE) node.hostFault(tohostPage, false);
        else if (holds !== HOLDS_WRITE && !isZero(node.pages.bytes, tohostPage * 4096 + (htif.tohost - ram.base) % 4096)) node.hostFault(tohostPage, true);
      }
      machine.closeRound(end);
      machine.htif = htif;
      const raised = publishLines();
      if (!idle) {
        anchorGuest = machine.clock.now();
        anchorHost = performance.now();
      }
      if (machine.instructions >= limit) machine.stopWith({ kind: 'limit' });
      else if (idle && !raised && machine.exit === undefined) {
        // Every hart waits: skip to the next timer (the CLINT's, and the SBI's of every host: those due have
        // fired on the harts' threads); paced, not past the host's time.
        let wait = Math.min(machine.cyclesToDeadline(sbi !== undefined),
          remoteTimer === Infinity ? Infinity : Math.max(0, (remoteTimer - machine.clock.now()) * INSTRUCTIONS_PER_TICK));
        if (wait === Infinity && tohostPage < 0) throw new HostsRunError('every hart waits for an interrupt and no timer is set to send one');
        if (pace) wait = Math.min(wait, Math.max(0, (anchorGuest + (performance.now() - anchorHost) * (TIMEBASE_HZ / 1000) - machine.clock.now()) * INSTRUCTIONS_PER_TICK));
        if (wait > 0 && wait !== Infinity) machine.skipCycles(Math.ceil(wait));
        else if (pace) await node.sleep(IDLE_SLEEP_MS);
        publishLines();
      }
    }
  } finally {
    machine.bus.dmaGate = undefined;
    stopObserving();
    for (const [, link] of byHost) link.send({ kind: 'stop', status: 0, reason: 'the run is over' });
    await node.stopWorkers();
  }
  const until = Date.now() + REPORT_MS;
  while (reports.length < links.length && lost === undefined && Date.now() < until) await node.sleep(20);
  for (const [, link] of byHost) link.close();
  reports.push({ ...node.report(), dma: { ...gate.counters } });
  reports.sort((a, b) => a.host - b.host);
  return { exit: machine.exit ?? { kind: 'limit' }, reports };
}

function isZero(bytes: Uint8Array, at: number): boolean {
  for (let i = 0; i < 8; i++) if (bytes[at + i] !== 0) return false;
  return true;
}

/** The sorted sample's quantile q (0-1), nearest rank. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** One line of a host's DSM counters for `run --stats`. */
export function dsmStatsLine(r: HostReport): string {
  const rtt = [...r.roundTripsUs].sort((a, b) => a - b);
  const us = (v: number): string => (Number.isNaN(v) ? '-' : v.toFixed(0));
  const bounced = [...r.bounces].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([page, n]) => `${page}:${n}`).join(',');
  return `mirrorball: dsm host=${r.host} instructions=${r.instructions} faults-read=${r.readFaults} faults-write=${r.writeFaults} ` +
    `faults-upgrade=${r.upgradeFaults} bytes-sent=${r.bytesSent} held=${r.held} rtt-count=${r.roundTripCount} rtt-median-us=${us(quantile(rtt, 0.5))} ` +
    `rtt-p99-us=${us(quantile(rtt, 0.99))} pages-invalid=${r.pages[0]} pages-shared=${r.pages[1]} pages-modified=${r.pages[2]}` +
    (r.relay === undefined ? '' : ` signals-sent=${r.relay.signalsSent} fences-sent=${r.relay.fencesSent} fences-served=${r.relay.fencesServed} hsm-sent=${r.relay.hsmSent}`) +
    (r.linesSent === undefined ? '' : ` lines-sent=${r.linesSent}`) +
    (r.dma === undefined ? '' : ` dma-read-pages=${r.dma.readPages} dma-write-pages=${r.dma.writePages} dma-waits=${r.dma.waits} dma-bytes-read=${r.dma.bytesRead} dma-bytes-written=${r.dma.bytesWritten}`) + (r.passedOn === undefined ? '' : ` passed-on=${r.passedOn}`) + ` most-bounced=${bounced || '-'}`;
}
