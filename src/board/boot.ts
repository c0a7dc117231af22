// Putting software into a fresh machine: a bare-metal ELF, or Linux with our SBI or with M-mode firmware.

import { PMP_ADDR_ALL, PMP_NAPOT, PMP_R, PMP_W, PMP_X } from '../cpu/pmp.js';
import { MIP_SEIP, MIP_SSIP, MIP_STIP } from '../isa/opcodes.js';
import { ElfError, loadElf, parseElf, symbolAddress, writeRam } from './elf.js';
import { BootImageError, loadLinuxBoot, prepareLinuxBoot, type LinuxBootPlan } from './linux-image.js';
import type { Machine } from './machine.js';

/** Exceptions the built-in SBI delegates to S-mode: all but ECALL from S and M (priv spec §3.1.8). */
const MEDELEG_TO_S = 0xb1ff;

/** Bad software given to boot (not an ELF, not a kernel, does not fit): a message for the user. */
export class BootError extends Error {}

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
  const sbi = machine.sbi;
  if (sbi === undefined) throw new BootError('the machine was built without the built-in SBI and no firmware was given');
  for (const h of machine.harts) {
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
  sbi.startHart(0, entry, BigInt(dtb));
  return boot.plan;
}
