// The traditional virtio memory balloon (virtio 1.2 §5.5): inflate and deflate queues, and free page reporting.

import { StateReader } from '../../memory/state.js';
import type { AccessSize } from '../../memory/device.js';
import type { VirtioContext, VirtioDevice } from './device.js';
import { gather, type DescriptorChain } from './queue.js';
import { DEVICE_ID_BALLOON, feature } from './spec.js';

/** Feature bits of the balloon (§5.5.3). Only reporting is offered: no stats, no free page hints, no poison. */
export const F_BALLOON_REPORTING = 5;

/**
 * The queues in the order Linux's driver finds them (§5.5.2): inflateq, deflateq, then the reporting queue,
 * which is the third because neither the stats queue nor the free page hint queue is offered (a driver numbers
 * only the queues of features both sides agreed on).
 */
export const INFLATEQ = 0;
export const DEFLATEQ = 1;
export const REPORTINGQ = 2;
/** Linux refuses a reporting queue shorter than its batch of 32 ranges (PAGE_REPORTING_CAPACITY). */
const QUEUE_SIZE = 128;

/** The balloon's page size, whatever the guest's (§5.5.6: PFNs are of 4096-byte pages). */
export const BALLOON_PAGE = 4096;
/** Configuration space (§5.5.4): num_pages, actual, free_page_hint_cmd_id, poison_val; all little-endian u32. */
const CONFIG_NUM_PAGES = 0;
const CONFIG_ACTUAL = 4;
const CONFIG_SIZE = 16;
/** At most this many PFNs are read from one inflate or deflate request (Linux sends up to 256). */
export const MAX_PFNS_PER_REQUEST = 4096;
const U32 = 2 ** 32;

/** A run of whole guest pages: its guest-physical address (page aligned) and length in bytes (a whole number of pages). */
export interface PageRange {
  readonly address: number;
  readonly length: number;
}

/**
 * What acts on the pages the guest gives: the monitor takes their machine pages back. Each call gets
 * guest-physical pages already checked to lie in the VM's RAM. Nothing is owed to the guest in return; a page
 * given is one whose contents the guest will not rely on again (it faults and finds zeros if it touches it).
 */
export interface BalloonBackend {
  /** Pages the guest put in the balloon (their guest-physical addresses). */
  inflate(pages: readonly number[]): void;
  /** Pages the guest took back out of the balloon. */
  deflate(pages: readonly number[]): void;
  /** Free page reporting (§5.5.6.7): runs of free pages the guest does not need kept. */
  report(ranges: readonly PageRange[]): void;
}

/** A backend that does nothing (the bare machine's: its RAM is the guest's alone and costs nothing to keep). */
export const KEEP_EVERYTHING: BalloonBackend = { inflate() {}, deflate() {}, report() {} };

/** What the device has seen, for statistics (and saved with it). */
export interface BalloonCounts {
  inflated: number;
  deflated: number;
  /** Reporting requests, and the pages they reported. */
  reports: number;
  reportedPages: number;
  /** PFNs or ranges outside the guest's RAM, and requests with nothing the device could use. */
  rejected: number;
}

const COUNT_KEYS = ['inflated', 'deflated', 'reports', 'reportedPages', 'rejected'] as const;

export interface VirtioBalloonOptions {
  /** Where the guest's mistakes are reported. */
  log?: (message: string) => void;
}

export class VirtioBalloon implements VirtioDevice {
  readonly deviceId = DEVICE_ID_BALLOON;
  readonly features = feature(F_BALLOON_REPORTING);
  readonly queueMaxSizes = [QUEUE_SIZE, QUEUE_SIZE, QUEUE_SIZE];
  readonly configSize = CONFIG_SIZE;
  private context: VirtioContext | undefined;
  private numPages = 0;
  private actualPages = 0;
  readonly counts: BalloonCounts = { inflated: 0, deflated: 0, reports: 0, reportedPages: 0, rejected: 0 };
  private readonly log: (message: string) => void;

  constructor(private readonly backend: BalloonBackend = KEEP_EVERYTHING, options: VirtioBalloonOptions = {}) {
    this.log = options.log ?? (() => {});
  }

  /** The balloon's size the host asks for, in 4 KiB pages (`num_pages`). */
  get target(): number {
    return this.numPages;
  }

  /** The balloon's size the driver says it has reached (`actual`). */
  get actual(): number {
    return this.actualPages;
  }

  /** Whether the driver agreed to report free pages. */
  get reporting(): boolean {
    return this.context !== undefined && (this.context.features & feature(F_BALLOON_REPORTING)) !== 0n;
  }

  /** Asks the guest to make its balloon `pages` pages big (it inflates or deflates towards it; §5.5.6.1). */
  setTarget(pages: number): void {
    if (!Number.isInteger(pages) || pages < 0 || pages >= U32) throw new RangeError(`a balloon of ${pages} pages`);
    if (pages === this.numPages) return;
    this.numPages = pages;
    this.context?.configChanged();
  }

  readConfig(offset: number, size: AccessSize): number {
    let value = 0;
    for (let i = size - 1; i >= 0; i--) value = value * 256 + this.configByte(offset + i);
    return value;
  }

  private configByte(at: number): number {
    const word = at < CONFIG_ACTUAL ? this.numPages : at < CONFIG_ACTUAL + 4 ? this.actualPages : 0;
    const shift = (at % 4) * 8;
    return at < 0 || at >= CONFIG_SIZE ? 0 : Math.floor(word / 2 ** shift) & 0xff;
  }

  /** Only `actual` is the driver's to write (§5.5.4), as a whole word; anything else is ignored. */
  writeConfig(offset: number, size: AccessSize, value: number): void {
    if (offset === CONFIG_ACTUAL && size === 4) {
      this.actualPages = value >>> 0;
      return;
    }
    if (offset !== CONFIG_NUM_PAGES) this.log(`virtio-balloon: write of ${size} bytes at config offset ${offset} ignored`);
  }

  activate(context: VirtioContext): void {
    this.context = context;
  }

  /** A reset driver starts with an empty balloon (Linux gives every page back before it resets). */
  reset(): void {
    this.context = undefined;
    this.actualPages = 0;
  }

  notify(index: number): void {
    const context = this.context;
    const queue = context?.queue(index);
    if (context === undefined || queue === undefined) return;
    if (index === REPORTINGQ && !this.reporting) return;
    if (index > REPORTINGQ) return;
    for (const chain of queue.drain()) {
      if (index === REPORTINGQ) this.takeReport(context, chain);
      else this.takePfns(context, chain, index === INFLATEQ);
      // Nothing is written back: the driver only waits for the buffer to come back (§5.5.6.2, §5.5.6.7).
      queue.push(chain.head, 0);
    }
    context.usedBuffers(index);
  }

  /** An inflate or deflate request: an array of 32-bit PFNs in its device-readable part. */
  private takePfns(context: VirtioContext, chain: DescriptorChain, inflate: boolean): void {
    const pfns = Math.min(Math.floor(chain.readableLength / 4), MAX_PFNS_PER_REQUEST);
    if (chain.readableLength > 4 * MAX_PFNS_PER_REQUEST) this.reject(`an ${inflate ? 'inflate' : 'deflate'} request of ${chain.readableLength} bytes; the first ${MAX_PFNS_PER_REQUEST} PFNs taken`);
    const bytes = gather(context.memory, chain.readable, 0, 4 * pfns);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const pages: number[] = [];
    let outside = 0;
    for (let i = 0; i < pfns; i++) {
      const address = view.getUint32(4 * i, true) * BALLOON_PAGE;
      if (context.memory.isRam(address, BALLOON_PAGE)) pages.push(address);
      else outside++;
    }
    if (outside > 0) this.reject(`${outside} PFNs outside RAM in an ${inflate ? 'inflate' : 'deflate'} request`);
    if (inflate) {
      this.counts.inflated += pages.length;
      if (pages.length > 0) this.backend.inflate(pages);
    } else {
      this.counts.deflated += pages.length;
      if (pages.length > 0) this.backend.deflate(pages);
    }
  }

  /**
   * A free page report: each device-writable buffer is a run of free guest memory (§5.5.6.7; the queue's walk
   * has checked that it lies in RAM). Only the whole pages inside it are given; a part of a page stays.
   */
  private takeReport(context: VirtioContext, chain: DescriptorChain): void {
    if (chain.readable.length > 0) this.reject('a page report with device-readable buffers; they are ignored');
    const ranges: PageRange[] = [];
    let pages = 0;
    for (const s of chain.writable) {
      const first = Math.ceil(s.address / BALLOON_PAGE) * BALLOON_PAGE;
      const end = Math.floor((s.address + s.length) / BALLOON_PAGE) * BALLOON_PAGE;
      if (end <= first) continue;
      if (!context.memory.isRam(first, end - first)) continue;
      ranges.push({ address: first, length: end - first });
      pages += (end - first) / BALLOON_PAGE;
    }
    this.counts.reports++;
    this.counts.reportedPages += pages;
    if (ranges.length > 0) this.backend.report(ranges);
  }

  private reject(why: string): void {
    this.counts.rejected++;
    this.log(`virtio-balloon: ${why}`);
  }

  saveState(): { numPages: number; actual: number; counts: BalloonCounts } {
    return { numPages: this.numPages, actual: this.actualPages, counts: { ...this.counts } };
  }

  restoreState(state: unknown): void {
    const r = new StateReader(state, 'balloon');
    const numPages = r.number('numPages', 0, U32 - 1);
    const actual = r.number('actual', 0, U32 - 1);
    const c = r.object('counts');
    const counts = Object.fromEntries(COUNT_KEYS.map((k) => [k, c.number(k, 0, Number.MAX_SAFE_INTEGER)])) as unknown as BalloonCounts;
    this.numPages = numPages;
    this.actualPages = actual;
    Object.assign(this.counts, counts);
  }
}
