// Tiny kernels for `up`'s tests: a few instructions behind a Linux Image header, booted as VMs in a blink.

// Tiny kernels: a RISC-V Linux Image header (boot-image-header.rst) whose first instruction jumps past it.
const T0 = 5, T1 = 6, T2 = 7, S1 = 9, A0 = 10, A1 = 11, A6 = 16, A7 = 17;
const itype = (opcode: number, funct3: number, rd: number, rs1: number, imm: number): number => (((imm & 0xfff) << 20) | (rs1 << 15) | (funct3 << 12) | (rd << 7) | opcode) >>> 0;
const addi = (rd: number, rs1: number, imm: number): number => itype(0x13, 0, rd, rs1, imm);
const andi = (rd: number, rs1: number, imm: number): number => itype(0x13, 7, rd, rs1, imm);
const lbu = (rd: number, rs1: number, imm: number): number => itype(0x03, 4, rd, rs1, imm);
const lui = (rd: number, imm20: number): number => ((imm20 << 12) | (rd << 7) | 0x37) >>> 0;
const sb = (rs2: number, rs1: number, imm: number): number => ((((imm >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | ((imm & 0x1f) << 7) | 0x23) >>> 0;
const beqz = (rs1: number, offset: number): number => {
  const o = offset & 0x1fff;
  return ((((o >> 12) & 1) << 31) | (((o >> 5) & 0x3f) << 25) | (rs1 << 15) | (((o >> 1) & 0xf) << 8) | (((o >> 11) & 1) << 7) | 0x63) >>> 0;
};
const j = (offset: number): number => {
  const o = offset & 0x1fffff;
  return ((((o >> 20) & 1) << 31) | (((o >> 1) & 0x3ff) << 21) | (((o >> 11) & 1) << 20) | (((o >> 12) & 0xff) << 12) | 0x6f) >>> 0;
};
const WFI = 0x10500073;
const ECALL = 0x00000073;
/** Waits for a byte on the UART (LSR bit 0, data ready): the loop's first three instructions. */
const WAIT_FOR_INPUT = [lui(T0, 0x10000), lbu(T1, T0, 5), andi(T1, T1, 1), beqz(T1, -8)];
export const PROGRAMS = {
  /** Sleeps forever. */
  idle: [WFI, j(-4)],
  /** Prints each byte typed, plus one ('a' → 'b'). */
  echo: [...WAIT_FOR_INPUT, lbu(T2, T0, 0), addi(T2, T2, 1), sb(T2, T0, 0), j(-24)],
  /** Prints 'a' for the first byte typed, 'b' for the second, and so on: its count is in a register. */
  counter: [addi(S1, 0, 0x61), ...WAIT_FOR_INPUT, lbu(T2, T0, 0), sb(S1, T0, 0), addi(S1, S1, 1), j(-28)],
  /** Powers off (SBI SRST, shutdown, no reason) when a byte is typed. */
  poweroff: [...WAIT_FOR_INPUT, lui(A7, 0x53525), addi(A7, A7, 0x354), addi(A6, 0, 0), addi(A0, 0, 0), addi(A1, 0, 0), ECALL, j(0)],
  /** Powers off at once, reporting a system failure (SBI SRST, shutdown, reason 1). */
  fail: [lui(A7, 0x53525), addi(A7, A7, 0x354), addi(A6, 0, 0), addi(A0, 0, 0), addi(A1, 0, 1), ECALL, j(0)],
};

export function tinyKernel(program: number[]): Buffer {
  const image = Buffer.alloc(64 + program.length * 4);
  image.writeUInt32LE(j(64), 0);
  image.writeBigUInt64LE(0x200000n, 8); // text_offset
  image.writeUInt32LE(2, 32); // header version 0.2
  image.write('RISCV\0\0\0', 48, 'latin1');
  image.write('RSC\x05', 56, 'latin1');
  program.forEach((word, i) => image.writeUInt32LE(word, 64 + i * 4));
  return image;
}

