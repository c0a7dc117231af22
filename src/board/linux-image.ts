// The RISC-V Linux `Image` header, and where the kernel, initrd and device tree go in RAM for a direct boot.
// Header: Linux Documentation/arch/riscv/boot-image-header.rst; placement: Documentation/arch/riscv/boot.rst.

import type { Bus } from '../memory/bus.js';
import { MAX_NODE_MEMORY, type MachineLayout } from './address-map.js';
import { deviceTreeBlob, type DeviceTreeOptions } from './device-tree.js';
import { ramProblem, writeRam } from './elf.js';

/** boot-image-header.rst: a 64-byte header at the start of the Image. */
export const IMAGE_HEADER_SIZE = 64;
const TEXT_OFFSET_AT = 8;
const IMAGE_SIZE_AT = 16;
const FLAGS_AT = 24;
const VERSION_AT = 32;
const MAGIC_AT = 48;
const MAGIC2_AT = 56;
/** "RISCV\0\0\0", deprecated since header version 0.2 but still written. */
const MAGIC = [0x52, 0x49, 0x53, 0x43, 0x56, 0, 0, 0];
/** "RSC\x05", the magic that replaced it (version 0.2). */
const MAGIC2 = [0x52, 0x53, 0x43, 0x05];
/** flags bit 0: kernel endianness, 1 = big-endian. */
const FLAG_BIG_ENDIAN = 1n;

const KiB = 1024;
const MiB = 1024 * KiB;
/**
 * The kernel goes at RAM base + 2 MiB: OpenSBI's fw_jump on QEMU virt jumps to FW_JUMP_ADDR = RAM base
 * + 0x200000 with the firmware below it, so kernels and boot scripts expect this address.
 */
export const KERNEL_OFFSET = 0x200000;
/** boot.rst "Kernel location": an RV64 kernel must sit on a PMD (2 MiB) boundary. */
export const KERNEL_ALIGNMENT = 2 * MiB;
/** Linux maps the early DTB through a 2 MiB fixmap window, so it must be smaller; QEMU also aligns it to 2 MiB. */
export const MAX_DTB_SIZE = 2 * MiB;
export const DTB_ALIGNMENT = 2 * MiB;
/** Linux reserves and later frees the initrd in whole pages. */
export const INITRD_ALIGNMENT = 4 * KiB;

/** A file that is not a bootable RISC-V Linux Image, or a boot that does not fit; the message says why. */
export class BootImageError extends Error {}

export interface LinuxImage {
  /** Header text_offset (0x200000 for RV64 kernels); informative, placement uses KERNEL_OFFSET. */
  readonly textOffset: number;
  /** Bytes the kernel occupies once running, including .bss: the larger of image_size and the file. */
  readonly imageSize: number;
  readonly flags: bigint;
  readonly version: { readonly major: number; readonly minor: number };
  readonly bytes: Uint8Array;
}

/** Reads and checks the header of an `Image` file (arch/riscv/boot/Image, not vmlinux or Image.gz). */
export function parseLinuxImage(bytes: Uint8Array): LinuxImage {
  if (startsWith(bytes, 0, [0x7f, 0x45, 0x4c, 0x46])) {
    throw new BootImageError('this is an ELF file (vmlinux?); pass the raw Image (arch/riscv/boot/Image)');
  }
  if (startsWith(bytes, 0, [0x1f, 0x8b])) {
    throw new BootImageError('this is a gzip-compressed file (Image.gz?); decompress it and pass the Image');
  }
  if (bytes.length < IMAGE_HEADER_SIZE) {
    throw new BootImageError(`not a RISC-V Linux Image: ${bytes.length} bytes, shorter than the 64-byte header`);
  }
  if (!startsWith(bytes, MAGIC2_AT, MAGIC2) && !startsWith(bytes, MAGIC_AT, MAGIC)) {
    throw new BootImageError('not a RISC-V Linux Image: no "RSC\\x05" or "RISCV" magic in its header');
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const flags = view.getBigUint64(FLAGS_AT, true);
  if ((flags & FLAG_BIG_ENDIAN) !== 0n) throw new BootImageError('a big-endian kernel; this machine is little-endian');
  const textOffset = safeNumber(view.getBigUint64(TEXT_OFFSET_AT, true), 'text_offset');
  const declared = safeNumber(view.getBigUint64(IMAGE_SIZE_AT, true), 'image_size');
  const version = view.getUint32(VERSION_AT, true);
  return {
    textOffset,
    imageSize: Math.max(declared, bytes.length),
    flags,
    version: { major: version >>> 16, minor: version & 0xffff },
    bytes,
  };
}

/** A range of physical memory. */
export interface Placement {
  readonly base: number;
  readonly size: number;
}

/** Where each part of a direct Linux boot goes. Hart `bootHart` starts at `entry` with a0 = hartid, a1 = dtb.base. */
export interface LinuxBootPlan {
  readonly kernel: Placement;
  readonly initrd?: Placement;
  readonly dtb: Placement;
  readonly entry: number;
}

export interface BootSizes {
  readonly kernelBytes: number;
  readonly initrdBytes?: number;
  readonly dtbBytes: number;
}

/**
 * Kernel at the first node's base + `kernelOffset`; the DTB at the top of the first node and the initrd
 * just below it, so the kernel's .bss and early allocations grow into free memory between them.
 */
export function planLinuxBoot(layout: MachineLayout, sizes: BootSizes, kernelOffset = KERNEL_OFFSET): LinuxBootPlan {
  const node = layout.nodes[0]!;
  const kernel = { base: node.base + kernelOffset, size: sizes.kernelBytes };
  if (!Number.isSafeInteger(kernelOffset) || kernelOffset < 0) throw new BootImageError(`bad kernel offset ${kernelOffset}`);
  if (kernel.base % KERNEL_ALIGNMENT !== 0) {
    throw new BootImageError(`kernel address 0x${hex(kernel.base)} is not 2 MiB aligned, as an RV64 kernel requires`);
  }
  if (sizes.dtbBytes > MAX_DTB_SIZE) throw new BootImageError(`device tree of ${describe(sizes.dtbBytes)} exceeds 2 MiB`);
  const { dtb, initrd, lowest } = placeHigh(node.base + node.size, sizes);
  const kernelEnd = kernel.base + kernel.size;
  if (kernelEnd > lowest) {
    const parts = [`kernel (${describe(kernel.size)} at 0x${hex(kernel.base)})`];
    if (initrd !== undefined) parts.push(`initrd (${describe(initrd.size)})`);
    parts.push(`device tree (${describe(dtb.size)}, 2 MiB aligned at the top)`);
    let enough = Math.ceil(node.size / MiB) * MiB;
    while (enough <= MAX_NODE_MEMORY && placeHigh(node.base + enough, sizes).lowest < kernelEnd) enough += MiB;
    const advice = enough <= MAX_NODE_MEMORY ? `give node 0 at least ${describe(enough)}` : 'they exceed the largest node';
    throw new BootImageError(
      `${parts.join(', ')} do not fit in node 0's ${describe(node.size)} ` +
        `(0x${hex(node.base)}-0x${hex(node.base + node.size)}): ${advice}`,
    );
  }
  return { kernel, initrd, dtb, entry: kernel.base };
}

/** The DTB in the highest 2 MiB-aligned place below `top`, the initrd page-aligned right under it. */
function placeHigh(top: number, sizes: BootSizes): { dtb: Placement; initrd?: Placement; lowest: number } {
  const dtb = { base: alignDown(top - sizes.dtbBytes, DTB_ALIGNMENT), size: sizes.dtbBytes };
  const bytes = sizes.initrdBytes ?? 0;
  if (bytes === 0) return { dtb, lowest: dtb.base };
  const initrd = { base: alignDown(dtb.base - bytes, INITRD_ALIGNMENT), size: bytes };
  return { dtb, initrd, lowest: initrd.base };
}

/** Everything a direct boot needs, ready for loadLinuxBoot. */
export interface LinuxBoot {
  readonly plan: LinuxBootPlan;
  readonly image: LinuxImage;
  readonly initrd?: Uint8Array;
  readonly dtb: Uint8Array;
}

/** Parses the kernel, plans the memory and builds the device tree that points at the initrd. */
export function prepareLinuxBoot(
  layout: MachineLayout,
  files: { kernel: Uint8Array; initrd?: Uint8Array },
  options: Omit<DeviceTreeOptions, 'initrd'> & { kernelOffset?: number } = {},
): LinuxBoot {
  const image = parseLinuxImage(files.kernel);
  const initrd = files.initrd !== undefined && files.initrd.length > 0 ? files.initrd : undefined;
  const { kernelOffset, ...dtOptions } = options;
  // The tree's size does not depend on the initrd's address (two u64 cells either way), so size it first.
  const placeholder = initrd === undefined ? undefined : { start: 0, end: initrd.length };
  const dtbBytes = deviceTreeBlob(layout, { ...dtOptions, initrd: placeholder }).length;
  const plan = planLinuxBoot(layout, { kernelBytes: image.imageSize, initrdBytes: initrd?.length, dtbBytes }, kernelOffset);
  const range = plan.initrd === undefined ? undefined : { start: plan.initrd.base, end: plan.initrd.base + plan.initrd.size };
  const dtb = deviceTreeBlob(layout, { ...dtOptions, initrd: range });
  if (dtb.length !== dtbBytes) throw new Error('device tree changed size between sizing and building');
  return { plan, image, initrd, dtb };
}

/** Writes kernel, initrd and DTB into the bus's RAM (the kernel's .bss is left to the kernel to clear). */
export function loadLinuxBoot(bus: Bus, boot: LinuxBoot): void {
  const parts: [string, Placement, Uint8Array][] = [
    ['kernel', boot.plan.kernel, boot.image.bytes],
    ['device tree', boot.plan.dtb, boot.dtb],
  ];
  if (boot.plan.initrd !== undefined && boot.initrd !== undefined) parts.push(['initrd', boot.plan.initrd, boot.initrd]);
  for (const [what, place, bytes] of parts) {
    const problem = ramProblem(bus, place.base, Math.max(place.size, bytes.length));
    if (problem !== undefined) throw new BootImageError(`${what} at 0x${hex(place.base)} ${problem}`);
  }
  for (const [, place, bytes] of parts) writeRam(bus, place.base, bytes);
}

function startsWith(bytes: Uint8Array, at: number, prefix: readonly number[]): boolean {
  return bytes.length >= at + prefix.length && prefix.every((b, i) => bytes[at + i] === b);
}

function safeNumber(v: bigint, field: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new BootImageError(`header ${field} 0x${v.toString(16)} is implausibly large`);
  return Number(v);
}

function alignDown(value: number, to: number): number {
  return Math.floor(value / to) * to;
}

function describe(bytes: number): string {
  if (bytes >= MiB) return `${(bytes / MiB).toFixed(bytes % MiB === 0 ? 0 : 1)} MiB`;
  if (bytes >= KiB) return `${(bytes / KiB).toFixed(bytes % KiB === 0 ? 0 : 1)} KiB`;
  return `${bytes} bytes`;
}

function hex(n: number): string {
  return n.toString(16);
}
