// Putting software into a fresh machine: a bare-metal ELF, or Linux with our SBI or with M-mode firmware.

import type { Hart } from '../cpu/hart.js';
import { PMP_ADDR_ALL, PMP_NAPOT, PMP_R, PMP_W, PMP_X } from '../cpu/pmp.js';
import { MIP_SEIP, MIP_SSIP, MIP_STIP } from '../isa/opcodes.js';
import { ElfError, loadElf, parseElf, ramProblem, symbolAddress, writeRam } from './elf.js';
import { deviceTreeBlob } from './device-tree.js';
import { BootImageError, DTB_ALIGNMENT, loadLinuxBoot, MAX_DTB_SIZE, prepareLinuxBoot, type LinuxBootPlan, type Placement } from './linux-image.js';
import type { Machine } from './machine.js';

/** Exceptions the built-in SBI delegates to S-mode: all but ECALL from S and M (priv spec §3.1.8). */
const MEDELEG_TO_S = 0xb1ff;

/** Bad software given to boot (not an ELF, not a kernel, does not fit): a message for the user. */
export class BootError extends Error {}

/** Whether `bytes` begin as an ELF file does (not whether it is a good one: parseElf says that). */
export function isElf(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x7f && bytes[1] === 0x45 && bytes[2] === 0x4c && bytes[3] === 0x46;
}

/** Loads a bare-metal ELF; every hart starts at its entry in M-mode with a0 = hartid. HTIF if present. */
export function bootElf(machine: Machine, bytes: Uint8Array): void {
  try {
    const elf = parseElf(bytes);
    loadElf(machine.bus, elf);
    const tohost = symbolAddress(elf, 'tohost');
    const fromhost = symbolAddress(elf, 'fromhost');
    if (tohost !== undefined) machine.htif = { tohost, fromhost: fromhost ?? tohost + 8 };
    machine.resetAll(elf.entry, true, 0);
  } catch (error) {
    if (error instanceof ElfError) throw new BootError(error.message);
    throw error;
  }
}

export interface LinuxBootOptions {
  kernel: Uint8Array;
  initrd?: Uint8Array;
  append: string;
  /** M-mode firmware (OpenSBI fw_jump) loaded at the start of RAM; without it the built-in SBI is used. */
  firmware?: Uint8Array;
}

/**
 * Linux boot protocol (Documentation/riscv/boot.rst): a0 = hartid, a1 = physical address of the DTB,
 * satp = 0. With our SBI the boot hart enters the kernel in S-mode and the others wait for HSM hart_start.
 * With firmware, every hart enters the firmware in M-mode (fw_jump then jumps to the kernel).
 * Returns where kernel, initrd and device tree went.
 */
export function bootLinux(machine: Machine, options: LinuxBootOptions): LinuxBootPlan {
  let boot;
  try {
    boot = prepareLinuxBoot(machine.layout, { kernel: options.kernel, initrd: options.initrd }, { bootargs: options.append });
    loadLinuxBoot(machine.bus, boot);
  } catch (error) {
    if (error instanceof BootImageError) throw new BootError(error.message);
    throw error;
  }
  const entry = boot.plan.entry;
  const dtb = boot.plan.dtb.base;
  if (options.firmware !== undefined) {
    // fw_jump sits at the start of RAM and jumps to RAM base + 2 MiB, where the kernel is.
    const base = machine.layout.nodes[0].base;
    if (options.firmware.length > entry - base) throw new BootError(`firmware of ${options.firmware.length} bytes overlaps the kernel at 0x${entry.toString(16)}`);
    writeRam(machine.bus, base, options.firmware);
    machine.resetAll(base, true, dtb);
    return boot.plan;
  }
  startUnderSbi(machine, entry, dtb);
  return boot.plan;
}

/** Where an S-mode program's parts went: its segments, the device tree, and the entry hart 0 starts at. */
export interface PayloadPlan {
  readonly entry: number;
  readonly segments: readonly Placement[];
  readonly dtb: Placement;
}

/**
 * A bare S-mode program (an ELF, not Linux) under the built-in SBI, as QEMU's `-kernel` runs an ELF after
 * OpenSBI: its PT_LOAD segments at their physical addresses, the device tree (no bootargs: it is no kernel) in the
 * highest 2 MiB-aligned place of node 0 as for Linux, and hart 0 started in S-mode at the entry with a0 = hartid,
 * a1 = the tree's address; the other harts wait for HSM hart_start. Nothing is written unless all of it fits.
 */
export function bootSbiPayload(machine: Machine, bytes: Uint8Array): PayloadPlan {
  const node = machine.layout.nodes[0]!;
  let elf;
  try {
    elf = parseElf(bytes);
  } catch (error) {
    if (error instanceof ElfError) throw new BootError(error.message);
    throw error;
  }
  const blob = deviceTreeBlob(machine.layout);
  if (blob.length > MAX_DTB_SIZE) throw new BootError(`device tree of ${blob.length} bytes exceeds 2 MiB`);
  const dtb = { base: Math.floor((node.base + node.size - blob.length) / DTB_ALIGNMENT) * DTB_ALIGNMENT, size: blob.length };
  const segments = elf.segments.map((s) => ({ base: s.address, size: s.memorySize }));
  for (const [i, s] of segments.entries()) {
    const outside = ramProblem(machine.bus, s.base, s.size);
    if (outside !== undefined) throw new BootError(`segment ${i} (0x${s.base.toString(16)}, ${s.size} bytes) ${outside}`);
    if (s.base < dtb.base + DTB_ALIGNMENT && dtb.base < s.base + s.size) {
      throw new BootError(`segment ${i} (0x${s.base.toString(16)}, ${s.size} bytes) overlaps the device tree's 2 MiB at 0x${dtb.base.toString(16)}, the top of node 0: give the machine more memory or link the program lower`);
    }
  }
  if (!segments.some((s) => elf.entry >= s.base && elf.entry < s.base + s.size)) {
    throw new BootError(`entry point 0x${elf.entry.toString(16)} is not in a loaded segment in RAM`);
  }
  try {
    loadElf(machine.bus, elf);
    writeRam(machine.bus, dtb.base, blob);
  } catch (error) {
    if (error instanceof ElfError) throw new BootError(error.message);
    throw error;
  }
  startUnderSbi(machine, elf.entry, dtb.base);
  return { entry: elf.entry, segments, dtb };
}

/**
 * Every hart as M-mode firmware leaves it before entering S-mode, parked; hart 0 started at `entry` with
 * a0 = 0, a1 = `dtb` (the built-in SBI answers from then on).
 */
export function startUnderSbi(machine: Machine, entry: number, dtb: number): void {
  const sbi = machine.sbi;
  if (sbi === undefined) throw new BootError('the machine was built without the built-in SBI and no firmware was given');
  for (const h of machine.harts) parkUnderSbi(h, entry);
  sbi.startHart(0, entry, BigInt(dtb));
}

/**
 * A hart as M-mode firmware leaves it before entering S-mode, parked until an HSM start (also a hart of a
 * VM spanning hosts on a host other than 0, docs/giantvm.md).
 */
export function parkUnderSbi(h: Hart, entry: number): void {
  h.reset(entry);
  // What M-mode firmware would have set up before entering S-mode: delegation and counter access.
  h.medeleg = MEDELEG_TO_S;
  h.mideleg = MIP_SSIP | MIP_STIP | MIP_SEIP;
  h.mcounteren = 7;
  // PMP: one NAPOT entry over every address with R, W and X, as OpenSBI's last entry and the riscv-tests
  // give S- and U-mode (with entries implemented and none matching, S/U accesses fail; privileged spec §3.7.1).
  h.pmp.writeAddr(0, PMP_ADDR_ALL);
  h.pmp.writeCfg(0, BigInt(PMP_NAPOT | PMP_R | PMP_W | PMP_X));
  h.parked = true;
}
