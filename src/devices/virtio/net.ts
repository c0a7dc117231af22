// The virtio network device (virtio 1.1 §5.1): one queue pair, a MAC address, frames to and from a NetBackend.

import type { AccessSize } from '../../memory/device.js';
import { StateError, StateReader, bytesItem } from '../../memory/state.js';
import { ConfigSpace } from './config-space.js';
import type { VirtioContext, VirtioDevice } from './device.js';
import { gather, scatter, type Segment } from './queue.js';
import { DEVICE_ID_NET, feature } from './spec.js';

/** What travels with a frame beside its bytes. */
export interface FrameInfo {
  /**
   * The sender's virtio-net header when it asks for an offload (a checksum left to do, or a GSO frame), for a
   * receiver that negotiated the same offloads (`VirtioNetOptions.offload`); absent for a plain frame.
   */
  header?: Uint8Array;
  /**
   * Where the frame lay in the sender's memory, for the subnet's measurement of what could be remapped: the
   * offsets in the frame of the whole, 4 KiB-aligned guest pages its bytes came from.
   */
  pages?: readonly number[];
}

/** Where a NIC's frames go and come from. Frames are whole Ethernet frames without the virtio header. */
export interface NetBackend {
  /** A frame the guest sent; the backend owns it from now on. */
  send(frame: Uint8Array, info?: FrameInfo): void;
  /** Where frames for this NIC are delivered; the NIC queues them until the guest has receive buffers. */
  attach(receive: (frame: Uint8Array, info?: FrameInfo) => void): void;
}

/** Two NICs joined by a cable, in one process: what one sends, the other receives. */
export class LinkedNics {
  readonly a: NetBackend;
  readonly b: NetBackend;

  constructor() {
    let toA: (frame: Uint8Array, info?: FrameInfo) => void = () => {};
    let toB: (frame: Uint8Array, info?: FrameInfo) => void = () => {};
    this.a = { send: (frame, info) => toB(frame.slice(), info), attach: (receive) => { toA = receive; } };
    this.b = { send: (frame, info) => toA(frame.slice(), info), attach: (receive) => { toB = receive; } };
  }
}

/** Feature bits (§5.1.3): checksum offload both ways, the MTU in the configuration space, the MAC address, TSO both ways. */
export const VIRTIO_NET_F_CSUM = 0;
export const VIRTIO_NET_F_GUEST_CSUM = 1;
export const VIRTIO_NET_F_MTU = 3;
export const VIRTIO_NET_F_MAC = 5;
export const VIRTIO_NET_F_GUEST_TSO4 = 7;
export const VIRTIO_NET_F_GUEST_TSO6 = 8;
export const VIRTIO_NET_F_HOST_TSO4 = 11;
export const VIRTIO_NET_F_HOST_TSO6 = 12;
/** The offloads `VirtioNetOptions.offload` offers: what a Linux sender needs to hand over 64 KiB TCP frames. */
const OFFLOADS = [VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6];
/** What a receiver must have negotiated to take a frame whose header asks for an offload (the guest side of each). */
const GUEST_OFFLOADS = feature(VIRTIO_NET_F_GUEST_CSUM) | feature(VIRTIO_NET_F_GUEST_TSO4) | feature(VIRTIO_NET_F_GUEST_TSO6);
/** struct virtio_net_hdr (§5.1.6): flags, gso_type. */
const HEADER_FLAGS = 0;
const HEADER_GSO_TYPE = 1;
const PAGE = 4096;

const RECEIVEQ = 0;
const TRANSMITQ = 1;
const QUEUE_SIZE = 256;
/** struct virtio_net_hdr with VIRTIO_F_VERSION_1 is 12 bytes, num_buffers last (§5.1.6). */
export const NET_HEADER_SIZE = 12;
const HEADER_NUM_BUFFERS = 10;
const ETHERNET_HEADER = 14;
/** The largest frame we carry: an IPv4 packet (a GSO one too) is at most 64 KiB, which bounds any MTU Linux allows. */
export const MAX_FRAME = 65535 + ETHERNET_HEADER;
/** Frames waiting for receive buffers; beyond this the link drops them, as a full NIC ring would. */
const RECEIVE_BACKLOG = 256;
const MAC_BYTES = 6;
/** struct virtio_net_config: mac, status, max_virtqueue_pairs, mtu (§5.1.4). */
const CONFIG_SIZE = 12;
const CONFIG_MTU = 10;
/** The MTUs `VirtioNetOptions.mtu` may give: Ethernet's least, and the most an IPv4 packet can be. */
export const MIN_MTU = 68;
export const MAX_MTU = 65535;

export interface NetStatistics {
  transmitted: number;
  received: number;
  /** Frames dropped: driver not running, backlog full, frame too long or short, receive buffer too small. */
  dropped: number;
}

export interface VirtioNetOptions {
  /** Six bytes, or "52:54:00:12:34:56". */
  mac: Uint8Array | string;
  /**
   * Offer checksum and TCP segmentation offload both ways (CSUM, GUEST_CSUM, HOST_TSO4/6, GUEST_TSO4/6): the
   * guest may send 64 KiB TCP frames with their checksum left to do, and receives such frames from a sender
   * that did. A frame asking for an offload goes only to a receiver that negotiated them (the device does
   * not segment or checksum): to another it is dropped. Default off.
   */
  offload?: boolean;
  /** Offer VIRTIO_NET_F_MTU with this MTU (the guest's largest IP packet); default: not offered (1500). */
  mtu?: number;
}

/** What a NIC saw of the frames' place in guest memory (`VirtioNet.shapes`): the subnet's remapping measurement. */
export interface FrameShapes {
  /** Frames sent, and by their length in bytes: below 4 KiB, below 16 KiB, up to 64 KiB. */
  sent: number;
  sentBySize: [number, number, number];
  /** Frames sent that carried at least one whole, aligned guest page, and such pages. */
  sentWithPages: number;
  pagesSent: number;
  /** Frames received, those that came with whole, aligned pages of their sender, and those pages. */
  received: number;
  receivedWithPages: number;
  pagesReceived: number;
  /** Of those, pages that landed on one whole, aligned guest page of the receiver's buffers: what remapping could move. */
  pagesAligned: number;
  /** Where in a receiver's page the sender's pages began, by 4 KiB-offset (offset → pages). */
  landing: Map<number, number>;
}

/** Parses "aa:bb:cc:dd:ee:ff". */
export function parseMac(text: string): Uint8Array {
  const parts = text.split(':');
  if (parts.length !== MAC_BYTES || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) throw new Error(`bad MAC address ${text}`);
  return Uint8Array.from(parts.map((p) => parseInt(p, 16)));
}

export class VirtioNet implements VirtioDevice {
  readonly deviceId = DEVICE_ID_NET;
  readonly features: bigint;
  readonly queueMaxSizes = [QUEUE_SIZE, QUEUE_SIZE];
  readonly configSize = CONFIG_SIZE;
  readonly mac: Uint8Array;
  readonly statistics: NetStatistics = { transmitted: 0, received: 0, dropped: 0 };
  private readonly config = new ConfigSpace(CONFIG_SIZE);
  readonly shapes: FrameShapes = {
    sent: 0, sentBySize: [0, 0, 0], sentWithPages: 0, pagesSent: 0, received: 0, receivedWithPages: 0, pagesReceived: 0, pagesAligned: 0, landing: new Map(),
  };
  private readonly backlog: Uint8Array[] = [];
  /** Per frame waiting, what came with it. */
  private readonly backlogInfo: (FrameInfo | undefined)[] = [];
  private context: VirtioContext | undefined;

  constructor(private readonly backend: NetBackend, options: VirtioNetOptions) {
    this.mac = typeof options.mac === 'string' ? parseMac(options.mac) : Uint8Array.from(options.mac);
    if (this.mac.length !== MAC_BYTES) throw new Error('a MAC address has six bytes');
    this.config.bytes.set(this.mac, 0);
    let features = feature(VIRTIO_NET_F_MAC);
    if (options.offload === true) for (const bit of OFFLOADS) features |= feature(bit);
    if (options.mtu !== undefined) {
      if (!Number.isInteger(options.mtu) || options.mtu < MIN_MTU || options.mtu > MAX_MTU) throw new Error(`an MTU is an integer in [${MIN_MTU}, ${MAX_MTU}] (got ${options.mtu})`);
      features |= feature(VIRTIO_NET_F_MTU);
      new DataView(this.config.bytes.buffer, this.config.bytes.byteOffset).setUint16(CONFIG_MTU, options.mtu, true);
    }
    this.features = features;
    backend.attach((frame, info) => this.arrive(frame, info));
  }

  /** Frames waiting for receive buffers and the counts, as plain data (snapshots). */
  saveState(): { backlog: Uint8Array[]; headers?: (Uint8Array | null)[]; statistics: NetStatistics } {
    const state = { backlog: this.backlog.map((frame) => frame.slice()), statistics: { ...this.statistics } };
    // Offload headers only when some frame waits with one (a plain NIC's state is as it always was).
    if (this.backlogInfo.every((i) => i?.header === undefined)) return state;
    return { ...state, headers: this.backlogInfo.map((i) => i?.header?.slice() ?? null) };
  }

  restoreState(state: unknown): void {
    const r = new StateReader(state, 'net');
    const backlog = r.array('backlog', bytesItem);
    if (backlog.length > RECEIVE_BACKLOG || backlog.some((frame) => frame.length > MAX_FRAME)) throw new StateError('net.backlog: more or longer frames than the link holds');
    const s = r.object('statistics');
    const count = (key: string): number => s.number(key, 0);
    const statistics = { transmitted: count('transmitted'), received: count('received'), dropped: count('dropped') };
    const headers = r.has('headers') ? r.array('headers', (v, path) => {
      if (v !== null && !(v instanceof Uint8Array && v.length === NET_HEADER_SIZE)) throw new StateError(`${path}: not a virtio-net header`);
      return v;
    }, backlog.length) : backlog.map(() => null);
    this.backlog.length = 0;
    this.backlog.push(...backlog.map((frame) => frame.slice()));
    this.backlogInfo.length = 0;
    this.backlogInfo.push(...headers.map((h) => (h === null ? undefined : { header: h.slice() })));
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
    this.backlogInfo.length = 0;
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
      const info = this.backlogInfo.shift();
      if (chain.writableLength < NET_HEADER_SIZE + frame.length) {
        // The guest's buffer cannot hold the frame: drop it, and hand back the buffer empty.
        this.statistics.dropped++;
        queue.push(chain.head, 0);
      } else {
        const header = info?.header?.slice() ?? new Uint8Array(NET_HEADER_SIZE);
        new DataView(header.buffer).setUint16(HEADER_NUM_BUFFERS, 1, true);
        scatter(context.memory, chain.writable, 0, header);
        scatter(context.memory, chain.writable, NET_HEADER_SIZE, frame);
        this.landed(chain.writable, frame.length, info?.pages);
        queue.push(chain.head, NET_HEADER_SIZE + frame.length);
        this.statistics.received++;
      }
      if (this.backlog.length === 0) break;
    }
    context.usedBuffers(RECEIVEQ);
  }

  /**
   * A frame from the link. Until the driver is running the link is down and frames are lost, as on a real NIC;
   * so is a frame asking for an offload this driver did not take (the device neither segments nor checksums).
   */
  private arrive(frame: Uint8Array, info?: FrameInfo): void {
    const context = this.context;
    if (context === undefined || this.backlog.length >= RECEIVE_BACKLOG || frame.length > MAX_FRAME
      || (info?.header !== undefined && (context.features & GUEST_OFFLOADS) !== GUEST_OFFLOADS)) {
      this.statistics.dropped++;
      return;
    }
    this.backlog.push(frame);
    this.backlogInfo.push(info);
  }

  /** The measurement (`shapes`): where a received frame's sender pages landed in the receiver's buffers. */
  private landed(segments: readonly Segment[], length: number, pages: readonly number[] | undefined): void {
    this.shapes.received++;
    if (pages === undefined || pages.length === 0) return;
    this.shapes.receivedWithPages++;
    for (const at of pages) {
      if (at + PAGE > length) continue;
      this.shapes.pagesReceived++;
      // Where frame byte `at` went: NET_HEADER_SIZE + at bytes into the chain.
      let skip = NET_HEADER_SIZE + at;
      for (const s of segments) {
        if (skip >= s.length) {
          skip -= s.length;
          continue;
        }
        const address = s.address + skip;
        const offset = address % PAGE;
        this.shapes.landing.set(offset, (this.shapes.landing.get(offset) ?? 0) + 1);
        if (offset === 0 && s.length - skip >= PAGE) this.shapes.pagesAligned++;
        break;
      }
    }
  }

  /** The offsets in the frame of the whole, aligned guest pages it was gathered from (`segments` hold the header first). */
  private pagesOf(segments: readonly Segment[]): number[] {
    const pages: number[] = [];
    let at = -NET_HEADER_SIZE;
    for (const s of segments) {
      for (let page = Math.ceil(s.address / PAGE) * PAGE; page + PAGE <= s.address + s.length; page += PAGE) {
        const offset = at + (page - s.address);
        if (offset >= 0) pages.push(offset);
      }
      at += s.length;
    }
    return pages;
  }

  private transmit(): void {
    const context = this.context;
    const queue = context?.queue(TRANSMITQ);
    if (context === undefined || queue === undefined) return;
    for (const chain of queue.drain()) {
      const length = chain.readableLength - NET_HEADER_SIZE;
      if (length < ETHERNET_HEADER || length > MAX_FRAME) {
        this.statistics.dropped++;
      } else {
        // Without offloads negotiated the header asks for nothing; with them, one that asks goes along with the frame.
        const header = gather(context.memory, chain.readable, 0, NET_HEADER_SIZE);
        const offloaded = (context.features & feature(VIRTIO_NET_F_CSUM)) !== 0n && (header[HEADER_FLAGS] !== 0 || header[HEADER_GSO_TYPE] !== 0);
        const pages = this.pagesOf(chain.readable);
        this.shapes.sent++;
        this.shapes.sentBySize[length < PAGE ? 0 : length < 4 * PAGE ? 1 : 2]++;
        if (pages.length > 0) {
          this.shapes.sentWithPages++;
          this.shapes.pagesSent += pages.length;
        }
        this.backend.send(gather(context.memory, chain.readable, NET_HEADER_SIZE, length), { header: offloaded ? header : undefined, pages });
        this.statistics.transmitted++;
      }
      queue.push(chain.head, 0);
    }
    context.usedBuffers(TRANSMITQ);
  }
}
