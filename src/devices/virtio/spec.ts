// Numbers from the virtio 1.1 specification shared by the transport, the virtqueue and the devices.

/** Device IDs (virtio 1.1 §5). */
export const DEVICE_ID_NET = 1;
export const DEVICE_ID_BLOCK = 2;
export const DEVICE_ID_CONSOLE = 3;
export const DEVICE_ID_ENTROPY = 4;
export const DEVICE_ID_BALLOON = 5;

/** Device status bits (§2.1). */
export const STATUS_ACKNOWLEDGE = 1;
export const STATUS_DRIVER = 2;
export const STATUS_DRIVER_OK = 4;
export const STATUS_FEATURES_OK = 8;
export const STATUS_DEVICE_NEEDS_RESET = 64;
export const STATUS_FAILED = 128;

/** Reserved feature bits (§6), as bit numbers. */
export const F_INDIRECT_DESC = 28;
export const F_EVENT_IDX = 29;
export const F_VERSION_1 = 32;

/** The feature bit `bit` as a mask. */
export function feature(bit: number): bigint {
  return 1n << BigInt(bit);
}

/** Split virtqueue descriptor flags (§2.6.5). */
export const DESC_F_NEXT = 1;
export const DESC_F_WRITE = 2;
export const DESC_F_INDIRECT = 4;

/** avail.flags: the driver asks for no used-buffer notifications (§2.6.7). */
export const AVAIL_F_NO_INTERRUPT = 1;

/** The largest split queue size (§2.6: Queue Size is a power of 2 up to 32768). */
export const MAX_QUEUE_SIZE = 32768;

/** InterruptStatus bits of virtio-mmio (§4.2.2). */
export const INTERRUPT_USED_BUFFER = 1;
export const INTERRUPT_CONFIG_CHANGE = 2;
