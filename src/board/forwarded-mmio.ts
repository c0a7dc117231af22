// MMIO and interrupt lines across threads (docs/threads.md, "MMIO and interrupts"): a hart on a worker
// thread reaches the devices on the main thread through its mailbox in shared memory, and the devices'
// interrupt lines reach it through a shared word per hart. Plain JavaScript (SharedArrayBuffer, Atomics).

import { Bus, BusError } from '../memory/bus.js';
import type { AccessSize, Device } from '../memory/device.js';
import { WORKER_COUNTER, type WorkerCounters } from './thread-counters.js';

/** Int32 words of a hart's mailbox. */
const STATE = 0;
const KIND = 1;
const ADDRESS_LO = 2;
const ADDRESS_HI = 3;
const SIZE = 4;
const VALUE = 5;
const FAILED = 6;
const MAILBOX_WORDS = 8;

const IDLE = 0;
const REQUEST = 1;
const REPLY = 2;

const READ = 0;
const WRITE = 1;
/** SBI calls that act on the main thread (threaded-sbi.ts): system reset, console output, simulation control. */
export const FIRMWARE_RESET = 2;
export const FIRMWARE_CONSOLE = 3;
export const FIRMWARE_CONTROL = 4;

/** What the main thread does for the firmware kinds of request. */
export interface FirmwareCalls {
  /** SRST: type 0 shutdown, 1 cold reboot, 2 warm reboot. */
  reset(type: number, reason: number): void;
  consoleWrite(bytes: Uint8Array): void;
  /** A simulation request: a result ≥ 0 or a negative SBI error. */
  control(request: number, argument: number): number;
}

/** The shared memory of every hart's mailbox and interrupt lines, and the main thread's doorbell. */
export interface ForwardingMemory {
  /** MAILBOX_WORDS Int32 words per hart. */
  mailboxes: SharedArrayBuffer;
  /** One Int32 word per hart: the mip bits the devices drive (HartState.mipLines). */
  lines: SharedArrayBuffer;
  /** Int32 [0]: bumped, with a notify, whenever a worker wants the main thread (a request, a round done). */
  doorbell: SharedArrayBuffer;
}

export function forwardingMemory(harts: number): ForwardingMemory {
  return {
    mailboxes: new SharedArrayBuffer(harts * MAILBOX_WORDS * 4),
    lines: new SharedArrayBuffer(harts * 4),
    doorbell: new SharedArrayBuffer(4),
  };
}

/** Rings the main thread's doorbell. */
export function ring(doorbell: Int32Array): void {
  Atomics.add(doorbell, 0, 1);
  Atomics.notify(doorbell, 0);
}

/**
 * The workers' side of the mailboxes: a request in the hart's mailbox, and the hart's thread sleeps until
 * the main thread has answered (docs/threads.md). Returns the reply's value; a failed access throws BusError.
 */
export class Mailboxes {
  private readonly mail: Int32Array;
  private readonly doorbell: Int32Array;

  /** `counters`: where the waits and the requests are counted (thread-counters.ts). */
  constructor(memory: ForwardingMemory, private readonly counters?: WorkerCounters) {
    this.mail = new Int32Array(memory.mailboxes);
    this.doorbell = new Int32Array(memory.doorbell);
  }

  /** `slot`: the counter of what asks (a device's WORKER_COUNTER.DEVICES + i, or FIRMWARE). */
  request(hart: number, kind: number, address: number, size: number, value: number, slot: number = WORKER_COUNTER.FIRMWARE): number {
    const counters = this.counters;
    const started = counters === undefined ? 0 : counters.clock();
    const m = this.mail;
    const at = hart * MAILBOX_WORDS;
    m[at + KIND] = kind;
    m[at + ADDRESS_LO] = address | 0;
    m[at + ADDRESS_HI] = Math.floor(address / 4294967296);
    m[at + SIZE] = size;
    m[at + VALUE] = value;
    // The atomic store publishes the fields above with it.
    Atomics.store(m, at + STATE, REQUEST);
    ring(this.doorbell);
    while (Atomics.load(m, at + STATE) === REQUEST) Atomics.wait(m, at + STATE, REQUEST);
    const failed = m[at + FAILED] !== 0;
    const result = m[at + VALUE]! >>> 0;
    Atomics.store(m, at + STATE, IDLE);
    if (counters !== undefined) {
      counters.since(WORKER_COUNTER.MAILBOX_MS, started);
      counters.add(slot, 1);
    }
    if (failed) throw new BusError(address);
    return result;
  }
}

/** A device window of the main thread's bus, seen from a worker: each access goes through the hart's mailbox. */
export class ForwardedDevice implements Device {
  /** `slot`: the counter of this device's accesses (WORKER_COUNTER.DEVICES + its index). */
  constructor(readonly name: string, private readonly base: number, private readonly mailboxes: Mailboxes, private readonly slot: number) {}

  read(offset: number, size: AccessSize, hart: number): number {
    return this.mailboxes.request(hart, READ, this.base + offset, size, 0, this.slot);
  }

  write(offset: number, size: AccessSize, value: number, hart: number): void {
    this.mailboxes.request(hart, WRITE, this.base + offset, size, value, this.slot);
  }
}

/** The main thread's side: answers the harts' requests on its bus. */
export class MmioServer {
  private readonly mail: Int32Array;
  private readonly lines: Int32Array;

  constructor(private readonly bus: Bus, memory: ForwardingMemory, private readonly harts: number, private readonly firmware?: FirmwareCalls) {
    this.mail = new Int32Array(memory.mailboxes);
    this.lines = new Int32Array(memory.lines);
  }

  /** Answers every pending request; returns how many there were. */
  serve(): number {
    const m = this.mail;
    let served = 0;
    for (let hart = 0; hart < this.harts; hart++) {
      const at = hart * MAILBOX_WORDS;
      if (Atomics.load(m, at + STATE) !== REQUEST) continue;
      const address = (m[at + ADDRESS_LO]! >>> 0) + m[at + ADDRESS_HI]! * 4294967296;
      const size = m[at + SIZE] as AccessSize;
      let failed = 0;
      try {
        const kind = m[at + KIND];
        if (kind === READ) m[at + VALUE] = this.bus.mmioRead(address, size, hart);
        else if (kind === WRITE) this.bus.mmioWrite(address, size, m[at + VALUE]!, hart);
        else m[at + VALUE] = this.firmwareCall(kind!, address, size, m[at + VALUE]!);
      } catch (error) {
        if (!(error instanceof BusError)) throw error;
        failed = 1;
      }
      m[at + FAILED] = failed;
      Atomics.store(m, at + STATE, REPLY);
      Atomics.notify(m, at + STATE);
      served++;
    }
    return served;
  }

  /**
   * A firmware request: RESET (address = type, value = reason); CONSOLE (size bytes packed in value, the
   * first in its low byte); CONTROL (address = request, value = argument; the result back). Public for a
   * host that answers the firmware requests of harts on other hosts (docs/giantvm.md).
   */
  firmwareCall(kind: number, address: number, size: number, value: number): number {
    const firmware = this.firmware;
    if (firmware === undefined) throw new BusError(address);
    switch (kind) {
      case FIRMWARE_RESET: firmware.reset(address, value >>> 0); return 0;
      case FIRMWARE_CONSOLE: {
        const bytes = new Uint8Array(Math.min(4, size));
        for (let i = 0; i < bytes.length; i++) bytes[i] = (value >>> (8 * i)) & 0xff;
        firmware.consoleWrite(bytes);
        return 0;
      }
      case FIRMWARE_CONTROL: return firmware.control(address, value >>> 0);
      default: throw new BusError(address);
    }
  }

  /**
   * Publishes the lines each device drives into each hart (`lines` of the main thread's harts); returns
   * the harts whose lines changed, one bit each (0: none).
   */
  publishLines(lines: (hart: number) => number): number {
    let changed = 0;
    for (let hart = 0; hart < this.harts; hart++) {
      const now = lines(hart);
      if (Atomics.exchange(this.lines, hart, now) !== now) changed |= 1 << hart;
    }
    return changed;
  }
}

/** The worker's side of the lines: copies them into a hart's `mipLines`; true if one was raised. */
export function applyLines(lines: Int32Array, hart: { id: number; mipLines: number; stop: boolean }): boolean {
  const now = Atomics.load(lines, hart.id);
  const raised = (now & ~hart.mipLines) !== 0;
  hart.mipLines = now;
  if (raised) hart.stop = true;
  return raised;
}

/** A bus with a worker's forwarded copy of every device window of `devices`. */
export function addForwardedDevices(bus: Bus, devices: readonly { base: number; size: number; name: string }[], mailboxes: Mailboxes): void {
  devices.forEach((d, i) => bus.addDevice(d.base, d.size, new ForwardedDevice(d.name, d.base, mailboxes, WORKER_COUNTER.DEVICES + i)));
}

/**
 * For a server that answers later (a host forwarding to another process, docs/giantvm.md): the request
 * waiting in `hart`'s mailbox, or undefined. It stays there until answered: the caller remembers which
 * it sent on.
 */
export function takeRequest(memory: ForwardingMemory, hart: number): { write: boolean; kind: number; address: number; size: AccessSize; value: number } | undefined {
  const m = new Int32Array(memory.mailboxes);
  const at = hart * MAILBOX_WORDS;
  if (Atomics.load(m, at + STATE) !== REQUEST) return undefined;
  return { write: m[at + KIND] === WRITE, kind: m[at + KIND]!, address: (m[at + ADDRESS_LO]! >>> 0) + m[at + ADDRESS_HI]! * 4294967296, size: m[at + SIZE] as AccessSize, value: m[at + VALUE]! };
}

/** Answers a request `takeRequest` took. */
export function answerRequest(memory: ForwardingMemory, hart: number, value: number, failed: boolean): void {
  const m = new Int32Array(memory.mailboxes);
  const at = hart * MAILBOX_WORDS;
  m[at + VALUE] = value;
  m[at + FAILED] = failed ? 1 : 0;
  Atomics.store(m, at + STATE, REPLY);
  Atomics.notify(m, at + STATE);
}
