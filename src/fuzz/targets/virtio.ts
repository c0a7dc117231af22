// Fuzz targets for the virtio-mmio devices (blk, net, console, rng, balloon): a hostile driver in a VM under the monitor
// writes the transport's registers at random and fills its rings with loops, out-of-range and overlapping
// descriptors, huge lengths and indirect tables, next to a canary VM whose memory must stay as it was.

import fc from 'fast-check';
import type { AccessSize } from '../../memory/device.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import { MemoryBlockBackend } from '../../devices/virtio/memory-block.js';
import { VirtioBlk, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT } from '../../devices/virtio/blk.js';
import { VirtioConsole } from '../../devices/virtio/console.js';
import type { VirtioDevice } from '../../devices/virtio/device.js';
import { MmioRegister } from '../../devices/virtio/mock-driver.js';
import { VirtioMmio } from '../../devices/virtio/mmio.js';
import { MAX_FRAME, NET_HEADER_SIZE, VirtioNet, type FrameInfo, type NetBackend } from '../../devices/virtio/net.js';
import { SeededEntropy, VirtioRng } from '../../devices/virtio/rng.js';
import { F_BALLOON_REPORTING, VirtioBalloon } from '../../devices/virtio/balloon.js';
import { VmBalloon } from '../../monitor/balloon.js';
import {
  DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE, STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK, STATUS_FEATURES_OK,
} from '../../devices/virtio/spec.js';
import type { FuzzSession, FuzzTarget } from '../harness.js';
import { GUARDED_VM_BYTES, GuardedMonitor } from '../guarded.js';

const U32 = 2 ** 32;
/** Ring sizes the bring-up uses (each device's QueueNumMax is larger). */
const RING_SIZE = 16;
/** Guest-physical layout, as offsets from the VM's RAM base: rings per queue, an indirect table, data slots. */
const RING_AREA = 0;
const RING_STRIDE = 0x1000;
const INDIRECT_AREA = 0x4000;
const DATA_AREA = 0x1_0000;
const SLOT_BYTES = 0x1000;
const SLOTS = 64;
/** Cases write only here (and in the last page): zeroed before each case, so a case does what it says alone. */
const SCRATCH_BYTES = DATA_AREA + SLOTS * SLOT_BYTES;
const DISK_BYTES = 64 * 1024;
const MMIO_WINDOW = 0x200;

const desc = (q: number): number => RING_AREA + RING_STRIDE * q;
const avail = (q: number): number => desc(q) + 16 * RING_SIZE;
const used = (q: number): number => avail(q) + 0x100;

/** Where a descriptor may point, as an offset from RAM base, or an absolute address (`abs`). */
type Place = { at: number } | { abs: number; hi?: number };

const place: fc.Arbitrary<Place> = fc.oneof(
  { weight: 10, arbitrary: fc.integer({ min: 0, max: SLOTS - 1 }).map((k) => ({ at: DATA_AREA + k * SLOT_BYTES })) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: SLOTS * SLOT_BYTES - 1 }).map((k) => ({ at: DATA_AREA + k })) },
  // Overlapping the rings and the indirect table.
  { weight: 2, arbitrary: fc.integer({ min: 0, max: DATA_AREA - 1 }).map((at) => ({ at })) },
  { weight: 1, arbitrary: fc.constant({ at: INDIRECT_AREA }) },
  // The VM's last bytes, and just past them: where the next VM's memory lies in machine addresses.
  { weight: 2, arbitrary: fc.integer({ min: -64, max: 64 }).map((d) => ({ at: GUARDED_VM_BYTES + d })) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 64 }).map((d) => ({ at: -d })) },
  // Device windows, the control device, address zero, the top of the 32-bit space, anything.
  { weight: 1, arbitrary: fc.constantFrom(0, 0x1000_1000, 0x1000_0000, 0x0c00_0000, 0x0200_0000, 0x11_0000, U32 - 1).map((abs) => ({ abs })) },
  { weight: 1, arbitrary: fc.tuple(fc.nat({ max: U32 - 1 }), fc.oneof(fc.constant(0), fc.nat({ max: U32 - 1 }))).map(([abs, hi]) => ({ abs, hi })) },
);

const length = fc.oneof(
  { weight: 8, arbitrary: fc.nat({ max: 600 }) },
  { weight: 2, arbitrary: fc.constantFrom(1, 12, 16, 512, 1024, 4096, 14 + 12, MAX_FRAME + 12, MAX_FRAME + 13) },
  { weight: 1, arbitrary: fc.constantFrom(GUARDED_VM_BYTES, 0x8000_0000, U32 - 1, 16 * 1025) },
);

interface Desc { place: Place; length: number; flags: number; next: number }

const descriptor = (tableSize: number): fc.Arbitrary<Desc> => fc.record({
  place,
  length,
  flags: fc.oneof({ weight: 6, arbitrary: fc.nat({ max: DESC_F_NEXT | DESC_F_WRITE }) }, { weight: 1, arbitrary: fc.nat({ max: 0xffff }) }),
  next: fc.oneof({ weight: 8, arbitrary: fc.nat({ max: tableSize - 1 }) }, { weight: 1, arbitrary: fc.nat({ max: 0xffff }) }),
});

type Op =
  | { kind: 'write'; offset: number; size: AccessSize; value: number }
  | { kind: 'read'; offset: number; size: AccessSize }
  /** Descriptors into queue `queue`'s table, heads into its available ring, the index moved on, a notify. */
  | { kind: 'ring'; queue: number; table: Desc[]; indirect: Desc[]; heads: number[]; jump: number; noInterrupt: boolean }
  /** A well-formed chain (readable then writable buffers at data slots, direct or through the indirect table), published and notified. */
  | { kind: 'chain'; queue: number; first: number; readable: number[]; writable: number[]; slot: number; indirect: boolean; header: number[] }
  /** Words at a data slot: a block request's header (type, sector) or anything. */
  | { kind: 'poke'; slot: number; words: number[] }
  /** Host input: a frame from the link, console bytes; then the device is polled. */
  | { kind: 'host'; bytes: number };

const register = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...Object.values(MmioRegister)) },
  { weight: 2, arbitrary: fc.integer({ min: 0x100, max: 0x120 }) },
  { weight: 1, arbitrary: fc.nat({ max: MMIO_WINDOW - 1 }) },
  { weight: 1, arbitrary: fc.nat({ max: 0xfff }) },
);
const value = fc.oneof(
  { weight: 4, arbitrary: fc.nat({ max: 16 }) },
  { weight: 2, arbitrary: fc.constantFrom(0, 1, 0xff, 0xffff, 0x7fff_ffff, U32 - 1, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK) },
  { weight: 2, arbitrary: fc.nat({ max: U32 - 1 }) },
);
const size = fc.oneof({ weight: 6, arbitrary: fc.constant(4 as AccessSize) }, { weight: 1, arbitrary: fc.constantFrom<AccessSize>(1, 2) });

const sector = fc.oneof(
  fc.constantFrom(0, DISK_BYTES / 512 - 1, DISK_BYTES / 512, U32 - 1),
  fc.nat({ max: 256 }),
);

const op = (queues: number): fc.Arbitrary<Op> => fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('write' as const), offset: register, size, value }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('read' as const), offset: register, size }) },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('ring' as const),
      queue: fc.oneof({ weight: 9, arbitrary: fc.nat({ max: queues - 1 }) }, { weight: 1, arbitrary: fc.nat({ max: 0xffff }) }),
      table: fc.array(descriptor(RING_SIZE), { minLength: 1, maxLength: RING_SIZE }),
      indirect: fc.array(descriptor(8), { maxLength: 8 }),
      heads: fc.array(fc.oneof({ weight: 9, arbitrary: fc.nat({ max: RING_SIZE - 1 }) }, { weight: 1, arbitrary: fc.nat({ max: 0xffff }) }), { minLength: 1, maxLength: RING_SIZE }),
      jump: fc.oneof({ weight: 9, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.nat({ max: 0xffff }) }),
      noInterrupt: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('poke' as const),
      slot: fc.nat({ max: SLOTS - 1 }),
      words: fc.oneof(
        fc.tuple(fc.constantFrom(VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, 3, U32 - 1), fc.constant(0), sector, fc.constantFrom(0, 0, 1, U32 - 1)),
        fc.array(fc.nat({ max: U32 - 1 }), { maxLength: 8 }),
      ),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('chain' as const),
      queue: fc.nat({ max: queues - 1 }),
      first: fc.nat({ max: RING_SIZE - 1 }),
      readable: fc.array(fc.oneof(fc.constantFrom(16, 12, 512, 1024), fc.nat({ max: 2 * SLOT_BYTES })), { maxLength: 3 }),
      writable: fc.array(fc.oneof(fc.constantFrom(1, 512, 513, 1024 + 1, 20), fc.nat({ max: 2 * SLOT_BYTES })), { maxLength: 3 }),
      slot: fc.nat({ max: SLOTS - 8 }),
      indirect: fc.boolean(),
      // A block request's header at the first buffer: type, reserved, sector (low, high).
      header: fc.tuple(fc.constantFrom(VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, 3, U32 - 1), fc.constant(0), sector, fc.constantFrom(0, 0, 0, 1, U32 - 1)),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('host' as const), bytes: fc.oneof(fc.nat({ max: 2000 }), fc.constantFrom(0, MAX_FRAME, MAX_FRAME + 1, 200_000)) }) },
);

export interface VirtioCase {
  /** Start with Linux's bring-up (features, rings of RING_SIZE at their places, DRIVER_OK) before the ops. */
  bringUp: boolean;
  indirect: boolean;
  ops: Op[];
}

/** A device made fresh for each case, with its host side (the link, the console's input). */
interface DeviceKit {
  device: VirtioDevice;
  host?: (bytes: Uint8Array) => void;
}

interface DeviceKind {
  name: string;
  queues: number;
  /** Device feature bits of the first word the bring-up accepts (besides indirect descriptors). */
  features?: number;
  /**
   * The device gives the attacked VM's pages back to the machine (the balloon): a freed machine page keeps its
   * last bytes until it is handed out again, zeroed then (MachineMemory.takeFrom), so the check that memory no
   * VM owns stays zero does not hold for it; the canary's check does.
   */
  freesPages?: boolean;
  make(guarded: GuardedMonitor): DeviceKit;
}

export const KINDS: Record<string, DeviceKind> = {
  blk: { name: 'virtio-blk', queues: 1, make: () => ({ device: new VirtioBlk(new MemoryBlockBackend(DISK_BYTES), { log: () => {} }) }) },
  net: {
    name: 'virtio-net', queues: 2, make: () => {
      let deliver: (frame: Uint8Array) => void = () => {};
      const backend: NetBackend = { send: () => {}, attach: (receive) => { deliver = receive; } };
      return { device: new VirtioNet(backend, { mac: '52:54:00:12:34:56' }), host: (bytes) => deliver(bytes) };
    },
  },
  // The subnet's cards with offloads and a 64 KiB MTU: frames from the host come with a header of their first 12 bytes.
  'net-offload': {
    name: 'virtio-net with checksum and segmentation offload and a 64 KiB MTU', queues: 2, make: () => {
      let deliver: (frame: Uint8Array, info?: FrameInfo) => void = () => {};
      const backend: NetBackend = { send: () => {}, attach: (receive) => { deliver = receive; } };
      return {
        device: new VirtioNet(backend, { mac: '52:54:00:12:34:56', offload: true, mtu: 65535 }),
        host: (bytes) => deliver(bytes, bytes.length >= NET_HEADER_SIZE ? { header: bytes.slice(0, NET_HEADER_SIZE), pages: [0, 4096, bytes.length] } : undefined),
      };
    },
  },
  console: {
    name: 'virtio-console', queues: 2, make: () => {
      const device = new VirtioConsole({ onOutput: () => {} });
      return { device, host: (bytes) => device.input(bytes) };
    },
  },
  rng: { name: 'virtio-rng', queues: 1, make: () => ({ device: new VirtioRng(new SeededEntropy(7)) }) },
  // With the monitor's backend: reported and inflated pages of the attacked VM lose their machine pages.
  balloon: {
    name: 'virtio-balloon', queues: 3, features: 1 << F_BALLOON_REPORTING, freesPages: true,
    make: (guarded) => ({ device: new VirtioBalloon(new VmBalloon(guarded.target), { log: () => {} }) }),
  },
};

function writeDescriptors(memory: GuestMemory, base: number, at: number, table: readonly Desc[]): void {
  table.forEach((d, i) => {
    const address = 'at' in d.place ? base + d.place.at : d.place.abs;
    const hi = 'at' in d.place ? 0 : d.place.hi ?? 0;
    memory.writeU32(at + 16 * i, address >>> 0);
    memory.writeU32(at + 16 * i + 4, hi >>> 0);
    memory.writeU32(at + 16 * i + 8, d.length >>> 0);
    memory.writeU16(at + 16 * i + 12, d.flags & 0xffff);
    memory.writeU16(at + 16 * i + 14, d.next & 0xffff);
  });
}

/**
 * Runs one case against a fresh device of `kind` in the guarded monitor's attacked VM; returns the chains the device
 * put in the used rings at their usual places and the transport's final status (how deep the case went).
 */
export function runVirtioCase(kind: DeviceKind, guarded: GuardedMonitor, c: VirtioCase, zeros: Uint8Array): { served: number; status: number } {
  const vm = guarded.target;
  const memory = vm.machine.bus.guestMemory();
  const base = vm.pmap.base;
  memory.write(base, zeros);
  memory.write(base + GUARDED_VM_BYTES - 4096, zeros.subarray(0, 4096));
  const kit = kind.make(guarded);
  // The transport turns a device's exception into DEVICE_NEEDS_RESET; only a guest's mistake may cause one.
  const faults: string[] = [];
  const transport = new VirtioMmio(kit.device, memory, () => {}, { log: (m) => { if (m.includes('device fault')) faults.push(m); } });
  const write = (offset: number, v: number): void => transport.write(offset, 4, v >>> 0, 0);
  if (c.bringUp) {
    write(MmioRegister.status, 0);
    write(MmioRegister.status, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    write(MmioRegister.driverFeaturesSel, 0);
    write(MmioRegister.driverFeatures, ((c.indirect ? 1 << 28 : 0) | (kind.features ?? 0)) >>> 0);
    write(MmioRegister.driverFeaturesSel, 1);
    write(MmioRegister.driverFeatures, 1); // VIRTIO_F_VERSION_1
    write(MmioRegister.status, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
    for (let q = 0; q < kind.queues; q++) {
      write(MmioRegister.queueSel, q);
      write(MmioRegister.queueNum, RING_SIZE);
      write(MmioRegister.queueDescLow, base + desc(q));
      write(MmioRegister.queueDriverLow, base + avail(q));
      write(MmioRegister.queueDeviceLow, base + used(q));
      write(MmioRegister.queueReady, 1);
    }
    write(MmioRegister.status, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
  }
  const published = new Array<number>(kind.queues).fill(0);
  for (const o of c.ops) {
    switch (o.kind) {
      case 'write': transport.write(o.offset, o.size, o.value, 0); break;
      case 'read': transport.read(o.offset, o.size, 0); break;
      case 'poke': o.words.forEach((w, k) => memory.writeU32(base + DATA_AREA + o.slot * SLOT_BYTES + 4 * k, w >>> 0)); break;
      case 'host': kit.host?.(new Uint8Array(o.bytes).fill(0x5a)); transport.poll(); break;
      case 'chain': {
        const q = o.queue;
        const buffers = [...o.readable.map((n) => ({ n, flags: 0 })), ...o.writable.map((n) => ({ n, flags: DESC_F_WRITE }))];
        if (buffers.length === 0) break;
        o.header.forEach((w, k) => memory.writeU32(base + DATA_AREA + o.slot * SLOT_BYTES + 4 * k, w >>> 0));
        // Consecutive slots: a buffer longer than a slot runs into the next one's (overlap on purpose).
        const table: Desc[] = buffers.map((b, i) => ({
          place: { at: DATA_AREA + ((o.slot + i) % SLOTS) * SLOT_BYTES }, length: b.n, flags: b.flags | (i + 1 < buffers.length ? DESC_F_NEXT : 0),
          next: o.indirect ? i + 1 : (o.first + i + 1) % RING_SIZE,
        }));
        if (o.indirect) {
          writeDescriptors(memory, base, base + INDIRECT_AREA, table);
          writeDescriptors(memory, base, base + desc(q) + 16 * o.first, [{ place: { at: INDIRECT_AREA }, length: 16 * table.length, flags: DESC_F_INDIRECT, next: 0 }]);
        } else {
          table.forEach((d, i) => writeDescriptors(memory, base, base + desc(q) + 16 * ((o.first + i) % RING_SIZE), [d]));
        }
        const index = published[q]!;
        memory.writeU16(base + avail(q) + 4 + 2 * (index % RING_SIZE), o.first);
        published[q] = (index + 1) & 0xffff;
        memory.writeU16(base + avail(q) + 2, published[q]!);
        transport.write(MmioRegister.queueNotify, 4, q, 0);
        break;
      }
      case 'ring': {
        const q = o.queue < kind.queues ? o.queue : 0;
        writeDescriptors(memory, base, base + desc(q), o.table);
        writeDescriptors(memory, base, base + INDIRECT_AREA, o.indirect);
        let index = published[q]!;
        for (const head of o.heads) memory.writeU16(base + avail(q) + 4 + 2 * (index++ % RING_SIZE), head);
        index = (index + o.jump) & 0xffff;
        published[q] = index;
        memory.writeU16(base + avail(q), o.noInterrupt ? 1 : 0);
        memory.writeU16(base + avail(q) + 2, index);
        transport.write(MmioRegister.queueNotify, 4, o.queue, 0);
        break;
      }
    }
  }
  transport.poll();
  if (faults.length > 0) throw new Error(`${kind.name}: ${faults[0]}`);
  let served = 0;
  for (let q = 0; q < kind.queues; q++) served += memory.readU16(base + used(q) + 2);
  return { served, status: transport.status };
}

const virtioCases = (queues: number): fc.Arbitrary<VirtioCase> => fc.record({
  bringUp: fc.oneof({ weight: 9, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  indirect: fc.boolean(),
  ops: fc.array(op(queues), { minLength: 1, maxLength: 12 }),
});

/** Cases between two checks of the memory nobody owns (a scan of the whole machine). */
const UNOWNED_CHECK_EVERY = 256;

function virtioTarget(key: keyof typeof KINDS): FuzzTarget<VirtioCase> {
  const kind = KINDS[key]!;
  return {
    name: key,
    surface: `${kind.name} behind virtio-mmio, driven by a hostile driver in a VM next to a canary VM`,
    cases: virtioCases(kind.queues),
    open(): FuzzSession<VirtioCase> {
      const guarded = new GuardedMonitor();
      const zeros = new Uint8Array(SCRATCH_BYTES);
      let count = 0;
      return {
        run(c) {
          runVirtioCase(kind, guarded, c, zeros);
          guarded.checkTarget();
          guarded.checkCanary();
          if (++count % UNOWNED_CHECK_EVERY === 0 && kind.freesPages !== true) guarded.checkUnowned();
        },
        check() {
          guarded.checkCanary();
          if (kind.freesPages !== true) guarded.checkUnowned();
        },
      };
    },
  };
}

export const virtioTargets: FuzzTarget<VirtioCase>[] = (['blk', 'net', 'net-offload', 'console', 'rng', 'balloon'] as const).map(virtioTarget);
