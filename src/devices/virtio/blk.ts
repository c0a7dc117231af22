// The virtio block device (virtio 1.1 §5.2): one request queue over a BlockBackend.

import type { AccessSize } from '../../memory/device.js';
import { MAX_AMOUNT, StateError, StateReader } from '../../memory/state.js';
import { ConfigSpace } from './config-space.js';
import type { VirtioContext, VirtioDevice } from './device.js';
import { type DescriptorChain, type Segment, VirtqueueError, gather, scatter } from './queue.js';
import { DEVICE_ID_BLOCK, feature } from './spec.js';
import type { SavedClusters } from './cow-block.js';

/** Where the disk's bytes live. Errors are thrown and become VIRTIO_BLK_S_IOERR for the guest. */
export interface BlockBackend {
  /** Bytes; the guest sees floor(size / 512) sectors. */
  readonly size: number;
  readonly readOnly: boolean;
  read(offset: number, into: Uint8Array): void;
  write(offset: number, data: Uint8Array): void;
  /** Makes every completed write durable (fsync for files). */
  flush(): void;
  /**
   * True when 4 KiB block `index` holds exactly the bytes of the disk's shared base image (a copy-on-write
   * disk's cluster its overlay does not hold). Absent: no block is a base's, and none is offered to a page hook.
   */
  baseBlock?(index: number): boolean;
  /** A copy-on-write disk's changed clusters when they live in memory (snapshot=on): a snapshot holds them. */
  savedClusters?(): SavedClusters | undefined;
}

/** The unit a page hook shares: one guest page, one block of the guest's file system (docs/disk-cache.md). */
export const BLOCK_PAGE = 4096;

/**
 * What a monitor may give a block device so that reads of a shared base's blocks share machine pages
 * (Disco's global disk cache, docs/disk-cache.md). The device never knows what is behind it: it offers
 * every whole, aligned 4 KiB block of the base that lands in one whole, aligned guest page.
 */
export interface BlockPageHook {
  /** Base block `block` is to land in the guest page at `address`: true if the hook mapped it there (no copy). */
  map(block: number, address: number): boolean;
  /** The device copied base block `block` into the guest page at `address`: the hook may keep that page. */
  copied(block: number, address: number): void;
}

/** What the reads of one device looked like: how many 4 KiB blocks could have been mapped instead of copied. */
export interface BlockReadMetrics {
  /** Read requests, and the 4 KiB disk blocks they touched (whole or in part). */
  requests: number;
  blocks: number;
  /** Blocks read whole into one whole, 4 KiB-aligned guest page (the shape a mapping needs). */
  wholeAligned: number;
  /** Of those, blocks the base holds unchanged: offered to the page hook. */
  base: number;
  /** Of those, blocks the hook mapped instead of the device copying them. */
  mapped: number;
}

/** The fields of BlockReadMetrics, saved in this order. */
const READ_SHAPES = 5;

export function noReadMetrics(): BlockReadMetrics {
  return { requests: 0, blocks: 0, wholeAligned: 0, base: 0, mapped: 0 };
}

/** Feature bits (§5.2.3). */
export const VIRTIO_BLK_F_SEG_MAX = 2;
export const VIRTIO_BLK_F_RO = 5;
export const VIRTIO_BLK_F_BLK_SIZE = 6;
export const VIRTIO_BLK_F_FLUSH = 9;

/** Request types and statuses (§5.2.6). */
export const VIRTIO_BLK_T_IN = 0;
export const VIRTIO_BLK_T_OUT = 1;
export const VIRTIO_BLK_T_FLUSH = 4;
export const VIRTIO_BLK_T_GET_ID = 8;
export const VIRTIO_BLK_S_OK = 0;
export const VIRTIO_BLK_S_IOERR = 1;
export const VIRTIO_BLK_S_UNSUPP = 2;

export const SECTOR_SIZE = 512;
/** The request header: type u32, reserved u32, sector u64 (§5.2.6). */
const HEADER_SIZE = 16;
const HEADER_SECTOR = 8;
/** GET_ID answers with up to 20 bytes, not NUL-terminated when all are used (§5.2.6). */
const ID_BYTES = 20;
const QUEUE_SIZE = 256;
/** Header and status take two descriptors of a chain; the rest may be data (as QEMU advertises). */
const SEG_MAX = QUEUE_SIZE - 2;
/** Data moves through the host in pieces of this size, whatever length the guest asks for. */
const CHUNK = 64 * 1024;

// Configuration space offsets (§5.2.4, struct virtio_blk_config up to write_zeroes_may_unmap).
const CONFIG_CAPACITY = 0;
const CONFIG_SEG_MAX = 12;
const CONFIG_BLK_SIZE = 20;
const CONFIG_SIZE = 60;

export interface VirtioBlkOptions {
  /** The serial number GET_ID returns (at most 20 bytes are used). */
  id?: string;
  /** Where host I/O errors are reported (the guest sees VIRTIO_BLK_S_IOERR). */
  log?: (message: string) => void;
  /** Shares the pages of the base's blocks (a monitor's disk cache); without it every read copies. */
  pages?: BlockPageHook;
  /** Where to count the shape of its reads (default: an object of its own, `VirtioBlk.metrics`). */
  metrics?: BlockReadMetrics;
  /** A copy-on-write disk's base, by content: the page cache's key for its blocks (a snapshot finds their disk by it). */
  baseId?: string;
}

export class VirtioBlk implements VirtioDevice {
  readonly deviceId = DEVICE_ID_BLOCK;
  readonly features: bigint;
  readonly queueMaxSizes = [QUEUE_SIZE];
  readonly configSize = CONFIG_SIZE;
  private readonly config = new ConfigSpace(CONFIG_SIZE);
  private readonly capacity: number;
  private readonly id: Uint8Array;
  private readonly log: (message: string) => void;
  private context: VirtioContext | undefined;
  private readonly pages: BlockPageHook | undefined;
  /** The shape of the reads so far (counted with or without a page hook). */
  readonly metrics: BlockReadMetrics;
  readonly baseId: string | undefined;
  /** Whole 4 KiB blocks of the disk (a partial last block is never one). */
  readonly blocks: number;
  /**
   * The guest pages this device filled whole with a disk block, by guest address: block number. A candidate
   * list for snapshots, which store a page still equal to its block by reference (docs/snapshots.md); they
   * compare the bytes, since the CPU or another device may have written the page since. The device's own
   * writes into guest memory take a page out; a page filled again takes its new block.
   */
  private readonly filled = new Map<number, number>();

  constructor(private readonly backend: BlockBackend, options: VirtioBlkOptions = {}) {
    this.capacity = Math.floor(backend.size / SECTOR_SIZE);
    this.features = feature(VIRTIO_BLK_F_SEG_MAX) | feature(VIRTIO_BLK_F_BLK_SIZE) | feature(VIRTIO_BLK_F_FLUSH)
      | (backend.readOnly ? feature(VIRTIO_BLK_F_RO) : 0n);
    this.config.setU64(CONFIG_CAPACITY, this.capacity);
    this.config.setU32(CONFIG_SEG_MAX, SEG_MAX);
    this.config.setU32(CONFIG_BLK_SIZE, SECTOR_SIZE);
    this.id = new Uint8Array(ID_BYTES);
    this.id.set(new TextEncoder().encode(options.id ?? 'mirrorball').subarray(0, ID_BYTES));
    this.log = options.log ?? (() => {});
    this.pages = options.pages;
    this.metrics = options.metrics ?? noReadMetrics();
    this.baseId = options.baseId;
    this.blocks = Math.floor(backend.size / BLOCK_PAGE);
  }

  /** The pages this device filled with a whole block and has not written since: [guest address, block], oldest first. */
  filledPages(): IterableIterator<[number, number]> {
    return this.filled.entries();
  }

  /** Reads block `block` of the disk as it is now (a copy-on-write disk's overlay first) into `into` (BLOCK_PAGE bytes). Throws on a host I/O error. */
  readBlock(block: number, into: Uint8Array): void {
    if (!Number.isInteger(block) || block < 0 || block >= this.blocks || into.length !== BLOCK_PAGE) throw new RangeError(`no block ${block} of ${this.blocks}`);
    this.backend.read(block * BLOCK_PAGE, into);
  }

  /** True when block `block` holds exactly its base's bytes (a copy-on-write disk whose overlay does not hold it). */
  baseBlock(block: number): boolean {
    return block >= 0 && block < this.blocks && this.backend.baseBlock?.(block) === true;
  }

  /** The changed clusters of a copy-on-write disk kept in memory (snapshot=on), else undefined: what a snapshot stores of the disk itself. */
  savedClusters(): SavedClusters | undefined {
    return this.backend.savedClusters?.();
  }

  /** The record of filled pages, as [address, block] pairs in their order, and the counts of the reads' shapes (snapshots). */
  saveState(): { filled: Float64Array; reads: Float64Array } {
    const m = this.metrics;
    return { filled: Float64Array.from([...this.filled].flat()), reads: Float64Array.of(m.requests, m.blocks, m.wholeAligned, m.base, m.mapped) };
  }

  restoreState(state: unknown): void {
    const r = new StateReader(state, 'virtio-blk');
    const pairs = r.typed('filled', Float64Array);
    if (pairs.length % 2 !== 0) throw new StateError('virtio-blk.filled: not pairs of address and block');
    const filled = new Map<number, number>();
    for (let i = 0; i < pairs.length; i += 2) {
      const address = pairs[i]!;
      const block = pairs[i + 1]!;
      if (!(Number.isInteger(address) && address >= 0 && address <= MAX_AMOUNT && address % BLOCK_PAGE === 0) || filled.has(address)) {
        throw new StateError(`virtio-blk.filled[${i}]: not a page address, each once`);
      }
      if (!(Number.isInteger(block) && block >= 0 && block < this.blocks)) throw new StateError(`virtio-blk.filled[${i + 1}]: not a block of the disk`);
      filled.set(address, block);
    }
    const reads = r.amounts('reads', Float64Array, READ_SHAPES);
    if (!reads.every(Number.isInteger)) throw new StateError('virtio-blk.reads: not counts');
    // In place: a monitor sums the same object (its statistics' monitor.disk_reads).
    [this.metrics.requests, this.metrics.blocks, this.metrics.wholeAligned, this.metrics.base, this.metrics.mapped] = reads;
    this.filled.clear();
    for (const [address, block] of filled) this.filled.set(address, block);
  }

  readConfig(offset: number, size: AccessSize): number {
    return this.config.read(offset, size);
  }

  writeConfig(): void {} // every field we offer is read-only (no VIRTIO_BLK_F_CONFIG_WCE)

  activate(context: VirtioContext): void {
    this.context = context;
  }

  reset(): void {
    this.context = undefined;
  }

  notify(index: number): void {
    const context = this.context;
    const queue = context?.queue(index);
    if (context === undefined || queue === undefined) return;
    for (const chain of queue.drain()) queue.push(chain.head, this.serve(context, chain));
    context.usedBuffers(index);
  }

  /**
   * Carries out one request and writes its status byte. The used length is the whole writable part, as
   * QEMU reports it: the status byte is its last byte whatever happened to the data before it.
   */
  private serve(context: VirtioContext, chain: DescriptorChain): number {
    // Without a status byte there is nowhere to report anything: the chain itself is malformed.
    if (chain.writableLength < 1) throw new VirtqueueError('block request without a status byte');
    const status = this.execute(context, chain);
    this.forget(chain.writable, chain.writableLength - 1, 1);
    scatter(context.memory, chain.writable, chain.writableLength - 1, Uint8Array.of(status));
    return chain.writableLength;
  }

  private execute(context: VirtioContext, chain: DescriptorChain): number {
    if (chain.readableLength < HEADER_SIZE) return VIRTIO_BLK_S_IOERR;
    const header = gather(context.memory, chain.readable, 0, HEADER_SIZE);
    const view = new DataView(header.buffer);
    const type = view.getUint32(0, true);
    const sector = view.getUint32(HEADER_SECTOR, true) + view.getUint32(HEADER_SECTOR + 4, true) * 2 ** 32;
    switch (type) {
      case VIRTIO_BLK_T_IN: {
        const length = chain.writableLength - 1;
        if (!this.inRange(sector, length)) return VIRTIO_BLK_S_IOERR;
        return this.read(context, chain.writable, sector * SECTOR_SIZE, length) ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
      }
      case VIRTIO_BLK_T_OUT: {
        const length = chain.readableLength - HEADER_SIZE;
        if (this.backend.readOnly || !this.inRange(sector, length)) return VIRTIO_BLK_S_IOERR;
        for (let done = 0; done < length; done += CHUNK) {
          const piece = gather(context.memory, chain.readable, HEADER_SIZE + done, Math.min(CHUNK, length - done));
          if (!this.attempt(() => this.backend.write(sector * SECTOR_SIZE + done, piece))) return VIRTIO_BLK_S_IOERR;
        }
        return VIRTIO_BLK_S_OK;
      }
      case VIRTIO_BLK_T_FLUSH:
        return this.attempt(() => this.backend.flush()) ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
      case VIRTIO_BLK_T_GET_ID:
        this.forget(chain.writable, 0, Math.min(ID_BYTES, chain.writableLength - 1));
        scatter(context.memory, chain.writable, 0, this.id.subarray(0, Math.min(ID_BYTES, chain.writableLength - 1)));
        return VIRTIO_BLK_S_OK;
      default:
        return VIRTIO_BLK_S_UNSUPP;
    }
  }

  /**
   * A read of `length` bytes at disk byte `offset` into `segments`. Each whole 4 KiB block of the base that
   * lands in one whole, aligned guest page is offered to the page hook first, which may map it; the rest is
   * copied in pieces of at most CHUNK, and each offered block that was copied is then offered as copied.
   */
  private read(context: VirtioContext, segments: readonly Segment[], offset: number, length: number): boolean {
    const m = this.metrics;
    m.requests++;
    const firstBlock = Math.floor(offset / BLOCK_PAGE);
    m.blocks += Math.ceil((offset + length) / BLOCK_PAGE) - firstBlock;
    // Every page the request writes leaves the record; those it fills whole with a block come back once done.
    this.forget(segments, 0, length);
    const whole = new Map<number, number>();
    // Per whole block of the request: the guest page it lands in, and whether the hook mapped it.
    const offered = new Map<number, { address: number; mapped: boolean }>();
    for (let done = (BLOCK_PAGE - (offset % BLOCK_PAGE)) % BLOCK_PAGE; done + BLOCK_PAGE <= length; done += BLOCK_PAGE) {
      const address = pageAt(segments, done);
      if (address < 0) continue;
      m.wholeAligned++;
      const block = (offset + done) / BLOCK_PAGE;
      whole.set(address, block);
      if (this.pages === undefined || this.backend.baseBlock?.(block) !== true) continue;
      m.base++;
      const mapped = this.pages.map(block, address);
      if (mapped) m.mapped++;
      offered.set(done, { address, mapped });
    }
    const buffer = new Uint8Array(Math.min(length, CHUNK));
    for (let done = 0; done < length;) {
      if (offered.get(done)?.mapped === true) {
        done += BLOCK_PAGE;
        continue;
      }
      // A piece up to the next mapped block (or CHUNK).
      let end = Math.min(length, done + CHUNK);
      for (const [at, o] of offered) if (o.mapped && at > done && at < end) end = at;
      const piece = buffer.subarray(0, end - done);
      if (!this.attempt(() => this.backend.read(offset + done, piece))) return false;
      scatter(context.memory, segments, done, piece);
      for (const [at, o] of offered) if (at >= done && at < end) this.pages!.copied((offset + at) / BLOCK_PAGE, o.address);
      done = end;
    }
    for (const [address, block] of whole) this.filled.set(address, block);
    return true;
  }

  /** Takes the pages that bytes [at, at + length) of `segments` land in out of the record of filled pages. */
  private forget(segments: readonly Segment[], at: number, length: number): void {
    if (this.filled.size === 0 || length <= 0) return;
    let skip = at;
    let left = length;
    for (const segment of segments) {
      if (left <= 0) break;
      if (skip >= segment.length) {
        skip -= segment.length;
        continue;
      }
      const n = Math.min(segment.length - skip, left);
      const start = segment.address + skip;
      for (let page = Math.floor(start / BLOCK_PAGE); page * BLOCK_PAGE < start + n; page++) this.filled.delete(page * BLOCK_PAGE);
      left -= n;
      skip = 0;
    }
  }

  /** §5.2.6.1: whole sectors, and none past the end of the disk. */
  private inRange(sector: number, length: number): boolean {
    return length % SECTOR_SIZE === 0 && sector * SECTOR_SIZE + length <= this.capacity * SECTOR_SIZE;
  }

  /** Runs a backend call; a host I/O failure is the guest's IOERR, not the host's crash. */
  private attempt(operation: () => void): boolean {
    try {
      operation();
      return true;
    } catch (error) {
      this.log(`virtio-blk: ${error instanceof Error ? error.message : String(error)}`);
      return false;
    }
  }
}

/**
 * The guest address where bytes [at, at + BLOCK_PAGE) of `segments` land, if they lie in one segment at a
 * 4 KiB-aligned address; else -1.
 */
function pageAt(segments: readonly Segment[], at: number): number {
  let skip = at;
  for (const segment of segments) {
    if (skip < segment.length) {
      const address = segment.address + skip;
      return skip + BLOCK_PAGE <= segment.length && address % BLOCK_PAGE === 0 ? address : -1;
    }
    skip -= segment.length;
  }
  return -1;
}
