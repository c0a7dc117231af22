// The virtio-mmio transport, version 2 (virtio 1.1 §4.2): registers, feature negotiation, queues, interrupts.

import type { AccessSize, Device, IrqLine } from '../../memory/device.js';
import { DmaError, DmaPending, type GuestMemory } from '../../memory/guest-memory.js';
import type { Pollable } from '../pollable.js';
import type { VirtioContext, VirtioDevice } from './device.js';
import { StateError, StateReader } from '../../memory/state.js';
import { checkLayout, Virtqueue, VirtqueueError, type VirtqueueState } from './queue.js';
import {
  F_INDIRECT_DESC, F_VERSION_1, INTERRUPT_CONFIG_CHANGE, INTERRUPT_USED_BUFFER, STATUS_DEVICE_NEEDS_RESET,
  STATUS_DRIVER_OK, STATUS_FEATURES_OK, feature,
} from './spec.js';

// Register offsets (§4.2.2, table "MMIO Device Register Layout").
const MAGIC_VALUE = 0x000;
const VERSION = 0x004;
const DEVICE_ID = 0x008;
const VENDOR_ID = 0x00c;
const DEVICE_FEATURES = 0x010;
const DEVICE_FEATURES_SEL = 0x014;
const DRIVER_FEATURES = 0x020;
const DRIVER_FEATURES_SEL = 0x024;
const QUEUE_SEL = 0x030;
const QUEUE_NUM_MAX = 0x034;
const QUEUE_NUM = 0x038;
const QUEUE_READY = 0x044;
const QUEUE_NOTIFY = 0x050;
const INTERRUPT_STATUS = 0x060;
const INTERRUPT_ACK = 0x064;
const STATUS = 0x070;
const QUEUE_DESC_LOW = 0x080;
const QUEUE_DESC_HIGH = 0x084;
const QUEUE_DRIVER_LOW = 0x090;
const QUEUE_DRIVER_HIGH = 0x094;
const QUEUE_DEVICE_LOW = 0x0a0;
const QUEUE_DEVICE_HIGH = 0x0a4;
const SHM_LEN_LOW = 0x0b0;
const SHM_BASE_HIGH = 0x0bc;
const CONFIG_GENERATION = 0x0fc;
const CONFIG = 0x100;

const MAGIC = 0x74726976; // "virt" little-endian
const TRANSPORT_VERSION = 2;
const VENDOR = 0x4c42524d; // "MRBL" little-endian
/** Shared-memory registers read all ones when the region does not exist (§4.2.2). */
const NO_REGION = 0xffffffff;
const WORD = 2 ** 32;
const FEATURE_WORD_BITS = 32n;

/** The transport's own features: every device gets the modern interface and indirect descriptors. */
const TRANSPORT_FEATURES = feature(F_VERSION_1) | feature(F_INDIRECT_DESC);

/** What a transport saves (docs/snapshots.md). */
export interface VirtioMmioState {
  deviceId: number;
  status: number;
  deviceFeaturesSel: number;
  driverFeaturesSel: number;
  driverFeatures: bigint;
  queueSel: number;
  interrupts: number;
  irqLevel: boolean;
  configGeneration: number;
  /** The driver set DRIVER_OK and has not reset the device since: the device holds a context. */
  activated: boolean;
  queues: ({ size: number; desc: number; avail: number; used: number; ready: boolean } & VirtqueueState)[];
  device: unknown;
}

interface QueueState {
  readonly maxSize: number;
  size: number;
  desc: number;
  avail: number;
  used: number;
  virtqueue: Virtqueue | undefined;
}

export interface VirtioMmioOptions {
  /** Where guest mistakes and device faults are reported (DEVICE_NEEDS_RESET reasons). */
  log?: (message: string) => void;
}

/** Sets `half` (0 low, 1 high) of a 64-bit address kept as a number. */
function setHalf(current: number, half: number, value: number): number {
  return half === 0 ? Math.floor(current / WORD) * WORD + value : (current % WORD) + value * WORD;
}

export class VirtioMmio implements Device, Pollable {
  readonly name: string;
  private readonly offered: bigint;
  private readonly queues: QueueState[];
  private statusBits = 0;
  private deviceFeaturesSel = 0;
  private driverFeaturesSel = 0;
  private driverFeatures = 0n;
  private queueSel = 0;
  private interrupts = 0;
  private irqLevel = false;
  private configGeneration = 0;
  /** The context of the current activation; replaced at reset so a stale one does nothing. */
  private context: (VirtioContext & { alive: boolean }) | undefined;
  private readonly log: (message: string) => void;
  /** Work waiting for DMA pages across hosts (a queue's notify, or the poll): each waits once. */
  private readonly waiting = new Set<number | 'poll'>();

  constructor(readonly device: VirtioDevice, private readonly memory: GuestMemory, private readonly irq: IrqLine, options: VirtioMmioOptions = {}) {
    this.name = `virtio-mmio(${device.deviceId})`;
    this.offered = device.features | TRANSPORT_FEATURES;
    this.queues = device.queueMaxSizes.map((maxSize) => ({ maxSize, size: maxSize, desc: 0, avail: 0, used: 0, virtqueue: undefined }));
    this.log = options.log ?? (() => {});
  }

  /** The device status register (§2.1). */
  get status(): number {
    return this.statusBits;
  }

  get interruptStatus(): number {
    return this.interrupts;
  }

  private get active(): boolean {
    return (this.statusBits & (STATUS_DRIVER_OK | STATUS_DEVICE_NEEDS_RESET)) === STATUS_DRIVER_OK;
  }

  poll(): void {
    if (this.active && this.device.poll !== undefined) this.guarded(() => this.device.poll!(), 'poll');
  }

  read(offset: number, size: AccessSize, _hart: number): number {
    if (offset >= CONFIG) return this.device.readConfig(offset - CONFIG, size);
    if (size !== 4 || offset % 4 !== 0) return 0; // §4.2.2.2: control registers are 32-bit only
    const queue = this.queues[this.queueSel];
    switch (offset) {
      case MAGIC_VALUE: return MAGIC;
      case VERSION: return TRANSPORT_VERSION;
      case DEVICE_ID: return this.device.deviceId;
      case VENDOR_ID: return VENDOR;
      case DEVICE_FEATURES:
        if (this.deviceFeaturesSel > 1) return 0; // 64 feature bits are all there are
        return Number((this.offered >> (FEATURE_WORD_BITS * BigInt(this.deviceFeaturesSel))) & 0xffffffffn);
      case QUEUE_NUM_MAX: return queue?.maxSize ?? 0;
      case QUEUE_READY: return queue?.virtqueue !== undefined ? 1 : 0;
      case INTERRUPT_STATUS: return this.interrupts;
      case STATUS: return this.statusBits;
      case CONFIG_GENERATION: return this.configGeneration;
      default:
        return offset >= SHM_LEN_LOW && offset <= SHM_BASE_HIGH ? NO_REGION : 0;
    }
  }

  write(offset: number, size: AccessSize, value: number, _hart: number): void {
    if (offset >= CONFIG) {
      this.device.writeConfig(offset - CONFIG, size, value);
      return;
    }
    if (size !== 4 || offset % 4 !== 0) {
      this.log(`${this.name}: ${size}-byte write to control register 0x${offset.toString(16)} ignored`);
      return;
    }
    const queue = this.queues[this.queueSel];
    switch (offset) {
      case DEVICE_FEATURES_SEL: this.deviceFeaturesSel = value; break;
      case DRIVER_FEATURES_SEL: this.driverFeaturesSel = value; break;
      case DRIVER_FEATURES: this.writeDriverFeatures(value); break;
      case QUEUE_SEL: this.queueSel = value; break;
      case QUEUE_NUM: if (queue !== undefined && queue.virtqueue === undefined) queue.size = value; break;
      case QUEUE_DESC_LOW: case QUEUE_DESC_HIGH: this.writeQueueAddress(queue, 'desc', offset - QUEUE_DESC_LOW, value); break;
      case QUEUE_DRIVER_LOW: case QUEUE_DRIVER_HIGH: this.writeQueueAddress(queue, 'avail', offset - QUEUE_DRIVER_LOW, value); break;
      case QUEUE_DEVICE_LOW: case QUEUE_DEVICE_HIGH: this.writeQueueAddress(queue, 'used', offset - QUEUE_DEVICE_LOW, value); break;
      case QUEUE_READY: this.writeQueueReady(queue, value); break;
      case QUEUE_NOTIFY: this.notify(value); break;
      case INTERRUPT_ACK: this.interrupts &= ~value; this.updateIrq(); break;
      case STATUS: this.writeStatus(value); break;
      default: break; // read-only or unimplemented (legacy GuestPageSize, shared memory selection)
    }
  }

  private writeDriverFeatures(value: number): void {
    if ((this.statusBits & STATUS_FEATURES_OK) !== 0 || this.driverFeaturesSel > 1) return;
    const shift = FEATURE_WORD_BITS * BigInt(this.driverFeaturesSel);
    this.driverFeatures = (this.driverFeatures & ~(0xffffffffn << shift)) | (BigInt(value >>> 0) << shift);
  }

  private writeQueueAddress(queue: QueueState | undefined, which: 'desc' | 'avail' | 'used', half: number, value: number): void {
    if (queue === undefined || queue.virtqueue !== undefined) return; // §4.2.3.2: set up before QueueReady
    queue[which] = setHalf(queue[which], half / 4, value >>> 0);
  }

  private writeQueueReady(queue: QueueState | undefined, value: number): void {
    if (queue === undefined) return;
    if ((value & 1) === 0) {
      queue.virtqueue = undefined;
      return;
    }
    if (queue.virtqueue !== undefined) return;
    const layout = { size: queue.size, desc: queue.desc, avail: queue.avail, used: queue.used };
    const problem = checkLayout(this.memory, layout, queue.maxSize);
    if (problem !== undefined) {
      this.needsReset(`queue ${this.queueSel}: ${problem}`);
      return;
    }
    const indirect = (this.driverFeatures & feature(F_INDIRECT_DESC)) !== 0n;
    queue.virtqueue = new Virtqueue(this.memory, layout, indirect);
  }

  private notify(index: number): void {
    if (!this.active || this.queues[index]?.virtqueue === undefined) return;
    this.guarded(() => this.device.notify(index), index);
  }

  /** §2.1.2 and §3.1.1: the driver moves through ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK; 0 resets. */
  private writeStatus(value: number): void {
    if (value === 0) {
      this.reset();
      return;
    }
    const before = this.statusBits;
    let next = (value & 0xff) | (before & STATUS_DEVICE_NEEDS_RESET);
    const newly = next & ~before;
    if ((newly & STATUS_FEATURES_OK) !== 0 && !this.featuresAcceptable()) next &= ~STATUS_FEATURES_OK;
    if ((newly & STATUS_DRIVER_OK) !== 0 && (next & STATUS_FEATURES_OK) === 0) {
      this.log(`${this.name}: DRIVER_OK without FEATURES_OK ignored`);
      next &= ~STATUS_DRIVER_OK;
    }
    this.statusBits = next;
    if ((next & ~before & STATUS_DRIVER_OK) !== 0 && this.active) this.activate();
  }

  /** §2.2.2: the driver may accept only offered features, and a modern transport needs VIRTIO_F_VERSION_1. */
  private featuresAcceptable(): boolean {
    return (this.driverFeatures & ~this.offered) === 0n && (this.driverFeatures & feature(F_VERSION_1)) !== 0n;
  }

  private activate(): void {
    const context = this.newContext();
    this.guarded(() => this.device.activate(context));
    // Buffers made available before DRIVER_OK were not consumed (§3.1.1); look at them now.
    this.queues.forEach((queue, index) => {
      if (queue.virtqueue !== undefined && this.active) this.notify(index);
    });
  }

  private newContext(): VirtioContext & { alive: boolean } {
    const context = {
      alive: true,
      memory: this.memory,
      features: this.driverFeatures,
      queue: (index: number) => (context.alive ? this.queues[index]?.virtqueue : undefined),
      usedBuffers: (index: number) => {
        const queue = this.queues[index]?.virtqueue;
        if (context.alive && queue !== undefined && queue.takeNotification()) this.raise(INTERRUPT_USED_BUFFER);
      },
      configChanged: () => {
        if (!context.alive) return;
        this.configGeneration = (this.configGeneration + 1) >>> 0;
        this.raise(INTERRUPT_CONFIG_CHANGE);
      },
    };
    this.context = context;
    return context;
  }

  /** The transport's registers, each queue's layout and place, and the device's own state, as plain data (docs/snapshots.md). */
  saveState(): VirtioMmioState {
    return {
      deviceId: this.device.deviceId,
      status: this.statusBits,
      deviceFeaturesSel: this.deviceFeaturesSel,
      driverFeaturesSel: this.driverFeaturesSel,
      driverFeatures: this.driverFeatures,
      queueSel: this.queueSel,
      interrupts: this.interrupts,
      irqLevel: this.irqLevel,
      configGeneration: this.configGeneration,
      activated: this.context !== undefined,
      queues: this.queues.map((q) => ({
        size: q.size, desc: q.desc, avail: q.avail, used: q.used, ready: q.virtqueue !== undefined,
        ...(q.virtqueue?.saveState() ?? { lastAvail: 0, nextUsed: 0, pushedSinceSignal: false }),
      })),
      device: this.device.saveState?.() ?? {},
    };
  }

  /**
   * Puts saved state back into a transport that was never used, with the same device type plugged in. A
   * ready queue is set up again over guest memory (restore RAM first), an active device is activated again
   * without looking at its queues (what was available was already taken, or is still to be at the next
   * notify), and the interrupt wire does not move (the PLIC is restored on its own). Throws StateError.
   */
  restoreState(state: unknown, path = this.name): void {
    const r = new StateReader(state, path);
    const deviceId = r.number('deviceId', 0, 0xffff);
    if (deviceId !== this.device.deviceId) throw new StateError(`${path}: saved virtio device ${deviceId}, this slot holds ${this.device.deviceId}`);
    const word = (key: string): number => r.number(key, 0, 0xffffffff);
    const status = r.number('status', 0, 0xff);
    const [deviceFeaturesSel, driverFeaturesSel, queueSel, interrupts, configGeneration] =
      ['deviceFeaturesSel', 'driverFeaturesSel', 'queueSel', 'interrupts', 'configGeneration'].map(word);
    const driverFeatures = r.bigint('driverFeatures');
    if (driverFeatures < 0n || (driverFeatures & ~this.offered) !== 0n) throw new StateError(`${path}.driverFeatures: features this device does not offer`);
    const irqLevel = r.boolean('irqLevel');
    const activated = r.boolean('activated');
    const indirect = (driverFeatures & feature(F_INDIRECT_DESC)) !== 0n;
    const queues = r.array('queues', (value, queuePath, index) => {
      const q = new StateReader(value, queuePath);
      const address = (key: string): number => q.number(key, 0, Number.MAX_SAFE_INTEGER);
      const layout = { size: q.number('size', 0, 0xffffffff), desc: address('desc'), avail: address('avail'), used: address('used') };
      if (!q.boolean('ready')) return { layout, virtqueue: undefined };
      const problem = checkLayout(this.memory, layout, this.queues[index]!.maxSize);
      if (problem !== undefined) throw new StateError(`${queuePath}: ${problem}`);
      const virtqueue = new Virtqueue(this.memory, layout, indirect);
      virtqueue.restoreState(q);
      return { layout, virtqueue };
    }, this.queues.length);
    const deviceState = r.value('device');
    this.statusBits = status;
    this.deviceFeaturesSel = deviceFeaturesSel!;
    this.driverFeaturesSel = driverFeaturesSel!;
    this.driverFeatures = driverFeatures;
    this.queueSel = queueSel!;
    this.interrupts = interrupts!;
    this.irqLevel = irqLevel;
    this.configGeneration = configGeneration!;
    queues.forEach((saved, index) => Object.assign(this.queues[index]!, saved.layout, { virtqueue: saved.virtqueue }));
    if (activated) this.device.activate(this.newContext());
    this.device.restoreState?.(deviceState);
  }

  private reset(): void {
    if (this.context !== undefined) this.context.alive = false;
    this.context = undefined;
    this.waiting.clear();
    this.device.reset();
    this.statusBits = 0;
    this.driverFeatures = 0n;
    this.deviceFeaturesSel = 0;
    this.driverFeaturesSel = 0;
    this.queueSel = 0;
    for (const queue of this.queues) {
      queue.size = queue.maxSize;
      queue.desc = queue.avail = queue.used = 0;
      queue.virtqueue = undefined;
    }
    this.interrupts = 0;
    this.updateIrq();
  }

  /** Runs device work; a guest mistake or a device fault stops the device instead of escaping to the bus. */
  private guarded(work: () => void, retry?: number | 'poll'): void {
    try {
      work();
    } catch (error) {
      if (error instanceof DmaPending && retry !== undefined) {
        // Across hosts: a page the work needs is on its way; it is done again (whole: nothing was taken) once in.
        if (this.waiting.has(retry)) return;
        this.waiting.add(retry);
        const context = this.context;
        error.whenReady(() => {
          if (this.context !== context) return; // reset meanwhile (which forgot what waited)
          this.waiting.delete(retry);
          if (retry === 'poll') this.poll();
          else this.notify(retry);
        });
        return;
      }
      const guestMistake = error instanceof VirtqueueError || error instanceof DmaError;
      const message = error instanceof Error ? error.message : String(error);
      this.needsReset(guestMistake ? message : `device fault: ${message}`);
    }
  }

  /** §2.1.2: DEVICE_NEEDS_RESET, and a configuration change notification once the driver is running. */
  private needsReset(reason: string): void {
    this.log(`${this.name}: needs reset: ${reason}`);
    this.statusBits |= STATUS_DEVICE_NEEDS_RESET;
    if ((this.statusBits & STATUS_DRIVER_OK) !== 0) this.raise(INTERRUPT_CONFIG_CHANGE);
  }

  private raise(bit: number): void {
    this.interrupts |= bit;
    this.updateIrq();
  }

  private updateIrq(): void {
    const level = this.interrupts !== 0;
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      this.irq(level);
    }
  }
}
