// The virtio network device (virtio 1.1 §5.1): one queue pair, a MAC address, frames to and from a NetBackend.

import type { AccessSize } from '../../memory/device.js';
import { StateError, StateReader, bytesItem } from '../../memory/state.js';
import { ConfigSpace } from './config-space.js';
import type { VirtioContext, VirtioDevice } from './device.js';
import { gather, scatter } from './queue.js';
import { DEVICE_ID_NET, feature } from './spec.js';

/** Where a NIC's frames go and come from. Frames are whole Ethernet frames without the virtio header. */
export interface NetBackend {
  /** A frame the guest sent; the backend owns it from now on. */
  send(frame: Uint8Array): void;
  /** Where frames for this NIC are delivered; the NIC queues them until the guest has receive buffers. */
  attach(receive: (frame: Uint8Array) => void): void;
}

/** Two NICs joined by a cable, in one process: what one sends, the other receives. */
export class LinkedNics {
  readonly a: NetBackend;
  readonly b: NetBackend;

  constructor() {
    let toA: (frame: Uint8Array) => void = () => {};
    let toB: (frame: Uint8Array) => void = () => {};
    this.a = { send: (frame) => toB(frame.slice()), attach: (receive) => { toA = receive; } };
    this.b = { send: (frame) => toA(frame.slice()), attach: (receive) => { toB = receive; } };
  }
}

/** Feature bit (§5.1.3): the device has a MAC address in its configuration space. */
export const VIRTIO_NET_F_MAC = 5;

const RECEIVEQ = 0;
const TRANSMITQ = 1;
const QUEUE_SIZE = 256;
/** struct virtio_net_hdr with VIRTIO_F_VERSION_1 is 12 bytes, num_buffers last (§5.1.6). */
export const NET_HEADER_SIZE = 12;
const HEADER_NUM_BUFFERS = 10;
const ETHERNET_HEADER = 14;
/** The largest frame we carry: no GSO features are offered, so 64 KiB bounds any MTU Linux allows. */
export const MAX_FRAME = 65535 + ETHERNET_HEADER;
/** Frames waiting for receive buffers; beyond this the link drops them, as a full NIC ring would. */
const RECEIVE_BACKLOG = 256;
const MAC_BYTES = 6;
/** struct virtio_net_config: mac, status, max_virtqueue_pairs, mtu (§5.1.4). */
const CONFIG_SIZE = 12;

export interface NetStatistics {
  transmitted: number;
  received: number;
  /** Frames dropped: driver not running, backlog full, frame too long or short, receive buffer too small. */
  dropped: number;
}

export interface VirtioNetOptions {
  /** Six bytes, or "52:54:00:12:34:56". */
  mac: Uint8Array | string;
}

/** Parses "aa:bb:cc:dd:ee:ff". */
export function parseMac(text: string): Uint8Array {
  const parts = text.split(':');
  if (parts.length !== MAC_BYTES || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) throw new Error(`bad MAC address ${text}`);
  return Uint8Array.from(parts.map((p) => parseInt(p, 16)));
}

export class VirtioNet implements VirtioDevice {
  readonly deviceId = DEVICE_ID_NET;
  readonly features = feature(VIRTIO_NET_F_MAC);
  readonly queueMaxSizes = [QUEUE_SIZE, QUEUE_SIZE];
  readonly configSize = CONFIG_SIZE;
  readonly mac: Uint8Array;
  readonly statistics: NetStatistics = { transmitted: 0, received: 0, dropped: 0 };
  private readonly config = new ConfigSpace(CONFIG_SIZE);
  private readonly backlog: Uint8Array[] = [];
  private context: VirtioContext | undefined;

  constructor(private readonly backend: NetBackend, options: VirtioNetOptions) {
    this.mac = typeof options.mac === 'string' ? parseMac(options.mac) : Uint8Array.from(options.mac);
    if (this.mac.length !== MAC_BYTES) throw new Error('a MAC address has six bytes');
    this.config.bytes.set(this.mac, 0);
    backend.attach((frame) => this.arrive(frame));
  }

  /** Frames waiting for receive buffers and the counts, as plain data (snapshots). */
  saveState(): { backlog: Uint8Array[]; statistics: NetStatistics } {
    return { backlog: this.backlog.map((frame) => frame.slice()), statistics: { ...this.statistics } };
  }

  restoreState(state: unknown): void {
    const r = new StateReader(state, 'net');
    const backlog = r.array('backlog', bytesItem);
    if (backlog.length > RECEIVE_BACKLOG || backlog.some((frame) => frame.length > MAX_FRAME)) throw new StateError('net.backlog: more or longer frames than the link holds');
    const s = r.object('statistics');
    const count = (key: string): number => s.number(key, 0);
    const statistics = { transmitted: count('transmitted'), received: count('received'), dropped: count('dropped') };
    this.backlog.length = 0;
    this.backlog.push(...backlog.map((frame) => frame.slice()));
    Object.assign(this.statistics, statistics);
  }

  readConfig(offset: number, size: AccessSize): number {
    return this.config.read(offset, size);
  }

  writeConfig(): void {} // the MAC is read-only without VIRTIO_NET_F_CTRL_MAC_ADDR

  activate(context: VirtioContext): void {
    this.context = context;
  }

  reset(): void {
    this.context = undefined;
    this.backlog.length = 0;
  }

  notify(index: number): void {
    if (index === TRANSMITQ) this.transmit();
    else if (index === RECEIVEQ) this.poll(); // fresh receive buffers: deliver what is waiting
  }

  /** Moves waiting frames into receive buffers, one frame per buffer (no VIRTIO_NET_F_MRG_RXBUF). */
  poll(): void {
    const context = this.context;
    const queue = context?.queue(RECEIVEQ);
    if (context === undefined || queue === undefined || this.backlog.length === 0) return;
    for (const chain of queue.drain()) {
      const frame = this.backlog.shift()!;
      if (chain.writableLength < NET_HEADER_SIZE + frame.length) {
        // The guest's buffer cannot hold the frame: drop it, and hand back the buffer empty.
        this.statistics.dropped++;
        queue.push(chain.head, 0);
      } else {
        const header = new Uint8Array(NET_HEADER_SIZE);
        new DataView(header.buffer).setUint16(HEADER_NUM_BUFFERS, 1, true);
        scatter(context.memory, chain.writable, 0, header);
        scatter(context.memory, chain.writable, NET_HEADER_SIZE, frame);
        queue.push(chain.head, NET_HEADER_SIZE + frame.length);
        this.statistics.received++;
      }
      if (this.backlog.length === 0) break;
    }
    context.usedBuffers(RECEIVEQ);
  }

  /** A frame from the link. Until the driver is running the link is down and frames are lost, as on a real NIC. */
  private arrive(frame: Uint8Array): void {
    if (this.context === undefined || this.backlog.length >= RECEIVE_BACKLOG || frame.length > MAX_FRAME) {
      this.statistics.dropped++;
      return;
    }
    this.backlog.push(frame);
  }

  private transmit(): void {
    const context = this.context;
    const queue = context?.queue(TRANSMITQ);
    if (context === undefined || queue === undefined) return;
    for (const chain of queue.drain()) {
      const length = chain.readableLength - NET_HEADER_SIZE;
      // The header asks for no offloads we could honour (none are offered), so only the frame matters.
      if (length < ETHERNET_HEADER || length > MAX_FRAME) {
        this.statistics.dropped++;
      } else {
        this.backend.send(gather(context.memory, chain.readable, NET_HEADER_SIZE, length));
        this.statistics.transmitted++;
      }
      queue.push(chain.head, 0);
    }
    context.usedBuffers(TRANSMITQ);
  }
}
