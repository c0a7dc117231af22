// A virtio-mmio slot with nothing plugged in: the guest's driver finds the magic value and device ID 0.

import type { AccessSize, Device } from '../../memory/device.js';

const MAGIC_VALUE = 0x000;
const VERSION = 0x004;
const MAGIC = 0x74726976; // "virt" little-endian
const TRANSPORT_VERSION = 2;

/**
 * virtio spec v1.2 §4.2.2: a device ID of 0 means "no device here"; the driver must then stop probing the
 * slot. Every other register reads as zero and every write is ignored, so probing an empty slot is harmless.
 */
export class EmptyVirtioSlot implements Device {
  readonly name = 'virtio-mmio(empty)';

  read(offset: number, size: AccessSize, _hart: number): number {
    if (size !== 4) return 0;
    if (offset === MAGIC_VALUE) return MAGIC;
    if (offset === VERSION) return TRANSPORT_VERSION;
    return 0;
  }

  write(_offset: number, _size: AccessSize, _value: number, _hart: number): void {}
}
