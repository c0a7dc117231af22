// Test helper: RV64 instruction words by format (ISA spec §2.2, §8.4), for programs generated at random in a
// test, where running an assembler per case would cost more than the case itself.

export const OPCODE_LOAD = 0x03;
export const OPCODE_OP_IMM = 0x13;
export const OPCODE_STORE = 0x23;
export const OPCODE_AMO = 0x2f;
export const OPCODE_OP = 0x33;
export const OPCODE_BRANCH = 0x63;

/** funct3 of loads and stores by access size in bytes (LB/SB 0 … LD/SD 3); LBU/LHU/LWU add UNSIGNED_LOAD. */
export const SIZE_FUNCT3: Readonly<Record<number, number>> = { 1: 0, 2: 1, 4: 2, 8: 3 };
export const UNSIGNED_LOAD = 4;

/** funct5 of the A extension's operations (ISA §8.4). */
export const AMO_ADD = 0x00;
export const AMO_SWAP = 0x01;
export const AMO_LR = 0x02;
export const AMO_SC = 0x03;
/** funct3 of the A extension by width. */
export const AMO_WORD = 2;
export const AMO_DOUBLE = 3;

const FIELD_5 = 0x1f;
const FIELD_12 = 0xfff;

function checkImmediate(imm: number, bits: number): void {
  const limit = 2 ** (bits - 1);
  if (!Number.isInteger(imm) || imm < -limit || imm >= limit) throw new RangeError(`immediate ${imm} does not fit in ${bits} bits`);
}

export function rType(opcode: number, funct3: number, funct7: number, rd: number, rs1: number, rs2: number): number {
  return ((funct7 << 25) | ((rs2 & FIELD_5) << 20) | ((rs1 & FIELD_5) << 15) | (funct3 << 12) | ((rd & FIELD_5) << 7) | opcode) >>> 0;
}

export function iType(opcode: number, funct3: number, rd: number, rs1: number, imm: number): number {
  checkImmediate(imm, 12);
  return (((imm & FIELD_12) << 20) | ((rs1 & FIELD_5) << 15) | (funct3 << 12) | ((rd & FIELD_5) << 7) | opcode) >>> 0;
}

export function sType(opcode: number, funct3: number, rs1: number, rs2: number, imm: number): number {
  checkImmediate(imm, 12);
  const high = (imm >> 5) & 0x7f;
  const low = imm & FIELD_5;
  return ((high << 25) | ((rs2 & FIELD_5) << 20) | ((rs1 & FIELD_5) << 15) | (funct3 << 12) | (low << 7) | opcode) >>> 0;
}

/** A conditional branch by `offset` bytes from itself (even, ±4 KiB). */
export function bType(funct3: number, rs1: number, rs2: number, offset: number): number {
  checkImmediate(offset, 13);
  if (offset % 2 !== 0) throw new RangeError(`branch offset ${offset} is odd`);
  const bit12 = (offset >> 12) & 1;
  const bits10to5 = (offset >> 5) & 0x3f;
  const bits4to1 = (offset >> 1) & 0xf;
  const bit11 = (offset >> 11) & 1;
  return ((bit12 << 31) | (bits10to5 << 25) | ((rs2 & FIELD_5) << 20) | ((rs1 & FIELD_5) << 15) | (funct3 << 12) |
    (bits4to1 << 8) | (bit11 << 7) | OPCODE_BRANCH) >>> 0;
}

/** An A-extension instruction (aq and rl clear): LR has rs2 = 0. */
export function amoType(funct5: number, width: number, rd: number, rs1: number, rs2: number): number {
  return rType(OPCODE_AMO, width, funct5 << 2, rd, rs1, rs2);
}

// ---- the instructions the generated programs use ----

export const addi = (rd: number, rs1: number, imm: number): number => iType(OPCODE_OP_IMM, 0, rd, rs1, imm);
export const slli = (rd: number, rs1: number, shamt: number): number => iType(OPCODE_OP_IMM, 1, rd, rs1, shamt & 0x3f);
export const srli = (rd: number, rs1: number, shamt: number): number => iType(OPCODE_OP_IMM, 5, rd, rs1, shamt & 0x3f);
export const add = (rd: number, rs1: number, rs2: number): number => rType(OPCODE_OP, 0, 0, rd, rs1, rs2);
export const sub = (rd: number, rs1: number, rs2: number): number => rType(OPCODE_OP, 0, 0x20, rd, rs1, rs2);
export const xor = (rd: number, rs1: number, rs2: number): number => rType(OPCODE_OP, 4, 0, rd, rs1, rs2);
export const or = (rd: number, rs1: number, rs2: number): number => rType(OPCODE_OP, 6, 0, rd, rs1, rs2);
export const mul = (rd: number, rs1: number, rs2: number): number => rType(OPCODE_OP, 0, 1, rd, rs1, rs2);
export const load = (size: number, unsigned: boolean, rd: number, rs1: number, imm: number): number =>
  iType(OPCODE_LOAD, SIZE_FUNCT3[size]! + (unsigned ? UNSIGNED_LOAD : 0), rd, rs1, imm);
export const store = (size: number, rs1: number, rs2: number, imm: number): number => sType(OPCODE_STORE, SIZE_FUNCT3[size]!, rs1, rs2, imm);
export const beq = (rs1: number, rs2: number, offset: number): number => bType(0, rs1, rs2, offset);
export const bne = (rs1: number, rs2: number, offset: number): number => bType(1, rs1, rs2, offset);
