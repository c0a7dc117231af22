// The interface between the virtio-mmio transport and a device type (blk, net, console, rng).

import type { AccessSize } from '../../memory/device.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import type { Virtqueue } from './queue.js';

/**
 * What a device type implements. The transport owns status, features, queues and interrupts; the device
 * owns its configuration space and what its queues mean. Device methods may throw VirtqueueError or
 * DmaError for a guest mistake that cannot be reported per request: the transport catches them and sets
 * DEVICE_NEEDS_RESET, so nothing escapes to the bus.
 */
export interface VirtioDevice {
  /** Device ID (virtio 1.1 §5). */
  readonly deviceId: number;
  /** Device-type feature bits offered; the transport adds VIRTIO_F_VERSION_1 and VIRTIO_F_INDIRECT_DESC. */
  readonly features: bigint;
  /** QueueNumMax of each queue; the number of entries is the number of queues. */
  readonly queueMaxSizes: readonly number[];
  /** Bytes of device configuration space (§4.2.2: it starts at offset 0x100 of the window). */
  readonly configSize: number;
  readConfig(offset: number, size: AccessSize): number;
  writeConfig(offset: number, size: AccessSize, value: number): void;
  /** DRIVER_OK was set (§3.1.1 step 8): the device may use its queues from now on. */
  activate(context: VirtioContext): void;
  /** The driver reset the device (§2.1.2): forget the context and every queue. */
  reset(): void;
  /** The driver notified queue `queue` (only while active). */
  notify(queue: number): void;
  /** Host input (console bytes, packets) to move into the guest; called between time slices while active. */
  poll?(): void;
  /**
   * The device type's own state as plain data (snapshots, docs/snapshots.md): what is not in its queues or
   * guest memory, such as bytes waiting for the guest or a generator's state. Absent: it has none. Throws
   * if the state cannot be saved (a source outside the machine).
   */
  saveState?(): unknown;
  /** Puts back what `saveState` returned, checked first (StateError); called after `activate` if the device was active. */
  restoreState?(state: unknown): void;
}

/** What the transport gives an active device. */
export interface VirtioContext {
  readonly memory: GuestMemory;
  /** The features both sides agreed on. */
  readonly features: bigint;
  /** Queue `index` if the driver set it up, else undefined. */
  queue(index: number): Virtqueue | undefined;
  /**
   * Call after putting buffers in the used ring of `queue`: interrupts the driver if anything was pushed
   * since the last call and the driver did not suppress it.
   */
  usedBuffers(queue: number): void;
  /** The configuration space changed (§4.2.2: ConfigGeneration moves and the driver is interrupted). */
  configChanged(): void;
}
