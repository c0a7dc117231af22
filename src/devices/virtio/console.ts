// The virtio console (virtio 1.1 §5.3), port 0 only: host input to receiveq, transmitq to a callback.

import type { AccessSize } from '../../memory/device.js';
import { ByteQueue } from '../byte-queue.js';
import { StateReader } from '../../memory/state.js';
import { ConfigSpace } from './config-space.js';
import type { VirtioContext, VirtioDevice } from './device.js';
import { gather, scatter } from './queue.js';
import { DEVICE_ID_CONSOLE } from './spec.js';

/** Queue indices of port 0 (§5.3.2). */
const RECEIVEQ = 0;
const TRANSMITQ = 1;
const QUEUE_SIZE = 128;
/** struct virtio_console_config: cols, rows, max_nr_ports, emerg_wr (§5.3.4); none is offered. */
const CONFIG_SIZE = 12;
/** Output reaches the callback in pieces of at most this size, however long the guest's buffer. */
const CHUNK = 64 * 1024;
/**
 * Of one buffer chain, at most this much reaches the host: the rest is dropped. A driver can chain up to 4 GiB of
 * readable memory (a table of descriptors all over RAM) and a ring of such chains, which copied out would hold the
 * monitor's only thread, and every other VM, for minutes per notify. Linux's hvc writes at most a page at a time.
 */
export const MAX_OUTPUT_PER_CHAIN = 1024 * 1024;

export interface VirtioConsoleOptions {
  /** Bytes the guest writes to the console. */
  onOutput?: (bytes: Uint8Array) => void;
}

/**
 * No features are offered (no F_SIZE, no F_MULTIPORT), so Linux creates one hvc port over queues 0 and 1.
 * Input waits in a host-side queue until `poll()` finds receive buffers, so none is lost or reordered.
 */
export class VirtioConsole implements VirtioDevice {
  readonly deviceId = DEVICE_ID_CONSOLE;
  readonly features = 0n;
  readonly queueMaxSizes = [QUEUE_SIZE, QUEUE_SIZE];
  readonly configSize = CONFIG_SIZE;
  private readonly config = new ConfigSpace(CONFIG_SIZE);
  private readonly pending = new ByteQueue();
  private readonly onOutput: (bytes: Uint8Array) => void;
  private context: VirtioContext | undefined;

  constructor(options: VirtioConsoleOptions = {}) {
    this.onOutput = options.onOutput ?? (() => {});
  }

  /** Queues host bytes for the guest (up to MAX_QUEUED_INPUT waiting); they move into receive buffers at the next `poll()`. */
  input(bytes: Uint8Array | readonly number[]): void {
    this.pending.push(bytes);
  }

  /** Bytes queued and not yet delivered. */
  get queuedInput(): number {
    return this.pending.length;
  }

  /** Bytes `input()` dropped because MAX_QUEUED_INPUT were already waiting. */
  get droppedInput(): number {
    return this.pending.dropped;
  }

  /** Host bytes not yet delivered, as plain data (snapshots). */
  saveState(): { pending: Uint8Array } {
    return { pending: this.pending.contents() };
  }

  restoreState(state: unknown): void {
    const pending = new StateReader(state, 'console').typed('pending', Uint8Array);
    this.pending.clear();
    this.pending.push(pending);
  }

  readConfig(offset: number, size: AccessSize): number {
    return this.config.read(offset, size);
  }

  writeConfig(): void {}

  activate(context: VirtioContext): void {
    this.context = context;
  }

  reset(): void {
    this.context = undefined;
  }

  notify(index: number): void {
    const context = this.context;
    if (context === undefined) return;
    if (index === TRANSMITQ) this.transmit(context);
    else if (index === RECEIVEQ) this.poll(); // fresh receive buffers: deliver what is waiting
  }

  poll(): void {
    const context = this.context;
    const queue = context?.queue(RECEIVEQ);
    if (context === undefined || queue === undefined || this.pending.length === 0) return;
    for (const chain of queue.drain()) {
      queue.push(chain.head, scatter(context.memory, chain.writable, 0, this.pending.take(chain.writableLength)));
      if (this.pending.length === 0) break; // leave the remaining buffers for later input
    }
    context.usedBuffers(RECEIVEQ);
  }

  private transmit(context: VirtioContext): void {
    const queue = context.queue(TRANSMITQ);
    if (queue === undefined) return;
    for (const chain of queue.drain()) {
      const length = Math.min(chain.readableLength, MAX_OUTPUT_PER_CHAIN);
      for (let done = 0; done < length; done += CHUNK) {
        this.onOutput(gather(context.memory, chain.readable, done, Math.min(CHUNK, length - done)));
      }
      queue.push(chain.head, 0);
    }
    context.usedBuffers(TRANSMITQ);
  }
}
