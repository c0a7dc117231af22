// F/D decode: every OP-FP and fused-multiply-add encoding is legal exactly when the assembler can produce it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { executeFp } from '../../src/isa/fp/execute.js';
import { assemble, toolchainAvailable } from '../helpers/asm.js';
import { encode, newState, OPCODE_OP_FP } from './harness.js';

const skip = toolchainAvailable() ? false : 'the RISC-V cross toolchain is not installed (riscv64-linux-gnu-gcc)';

const ROUNDING = ['rne', 'rtz', 'rdn', 'rup', 'rmm', 'dyn'];
/** Register numbers used throughout, so that only the fields under test vary. */
const RD = 4, RS1 = 1, RS3 = 3;
/** rs2 is a register for two-operand instructions and a sub-opcode (0..3) for others: 9 tells them apart. */
const RS2 = 9;
const RS2_SHIFT = 20;
const FUNCT3_SHIFT = 12;
const DYN = 7;
const FUSED_OPCODES = [0x43, 0x47, 0x4b, 0x4f];

/** Every F/D instruction that does not touch memory, with and without a rounding-mode operand. */
function sourceLines(): string[] {
  const lines: string[] = [];
  for (const t of ['s', 'd']) {
    const withRm = [
      ...['fadd', 'fsub', 'fmul', 'fdiv'].map((m) => `${m}.${t} f${RD}, f${RS1}, f${RS2}`),
      `fsqrt.${t} f${RD}, f${RS1}`,
      ...['fmadd', 'fmsub', 'fnmsub', 'fnmadd'].map((m) => `${m}.${t} f${RD}, f${RS1}, f${RS2}, f${RS3}`),
      ...['w', 'wu', 'l', 'lu'].map((i) => `fcvt.${i}.${t} x${RD}, f${RS1}`),
      ...['l', 'lu'].map((i) => `fcvt.${t}.${i} f${RD}, x${RS1}`),
      ...(t === 's' ? ['w', 'wu'].map((i) => `fcvt.s.${i} f${RD}, x${RS1}`).concat(`fcvt.s.d f${RD}, f${RS1}`) : []),
    ];
    for (const line of withRm) for (const rm of ROUNDING) lines.push(`${line}, ${rm}`);
    lines.push(
      ...['fsgnj', 'fsgnjn', 'fsgnjx', 'fmin', 'fmax'].map((m) => `${m}.${t} f${RD}, f${RS1}, f${RS2}`),
      ...['feq', 'flt', 'fle'].map((m) => `${m}.${t} x${RD}, f${RS1}, f${RS2}`),
      `fclass.${t} x${RD}, f${RS1}`,
      t === 's' ? `fmv.x.w x${RD}, f${RS1}` : `fmv.x.d x${RD}, f${RS1}`,
      t === 's' ? `fmv.w.x f${RD}, x${RS1}` : `fmv.d.x f${RD}, x${RS1}`,
    );
  }
  return lines;
}

/**
 * This assembler takes no rounding operand for the exact conversions FCVT.D.S/W/WU, but they have an
 * rm field like every FCVT; as in Spike and QEMU, any valid rm is accepted and a reserved one is not.
 */
const EXACT_CONVERSIONS = [`fcvt.d.s f${RD}, f${RS1}`, `fcvt.d.w f${RD}, x${RS1}`, `fcvt.d.wu f${RD}, x${RS1}`];
const VALID_RM = [0, 1, 2, 3, 4, DYN];

function words(lines: string[]): number[] {
  const image = assemble(`.option norvc\n${lines.join('\n')}\n`).image;
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  return Array.from({ length: image.byteLength / 4 }, (_, i) => view.getUint32(4 * i, true));
}

function legalWords(): Set<number> {
  const legal = new Set(words(sourceLines()));
  for (const w of words(EXACT_CONVERSIONS)) {
    for (const rm of VALID_RM) legal.add(((w & ~(7 << FUNCT3_SHIFT)) | (rm << FUNCT3_SHIFT)) >>> 0);
  }
  return legal;
}

/** Every word that differs from the legal ones only in funct7/fmt, rs2 and funct3 (rs3 fixed). */
function candidateWords(): number[] {
  const all: number[] = [];
  for (let funct7 = 0; funct7 < 128; funct7++) {
    for (let rs2 = 0; rs2 < 32; rs2++) for (let f3 = 0; f3 < 8; f3++) all.push(encode(OPCODE_OP_FP, funct7, rs2, RS1, f3, RD));
  }
  for (const opcode of FUSED_OPCODES) {
    for (let fmt = 0; fmt < 4; fmt++) for (let f3 = 0; f3 < 8; f3++) all.push(encode(opcode, fmt, RS2, RS1, f3, RD, RS3));
  }
  return all;
}

function randomState(frm: number) {
  const s = newState();
  for (let i = 2; i < s.x.length; i++) s.x[i] = (Math.random() * 2 ** 32) | 0;
  for (let i = 0; i < s.f.length; i++) s.f[i] = (Math.random() * 2 ** 32) | 0;
  s.frm = frm;
  return s;
}

function snapshot(s: ReturnType<typeof newState>) {
  return { x: Array.from(s.x), f: Array.from(s.f), frm: s.frm, fflags: s.fflags };
}

test('exactly the encodings the assembler produces are legal, and an illegal one changes nothing', { skip }, () => {
  const legal = legalWords();
  assert.ok(legal.size > 200, `only ${legal.size} legal encodings assembled`);
  const wrong: string[] = [];
  for (const word of candidateWords()) {
    const s = randomState(0);
    const before = snapshot(s);
    const accepted = executeFp(s, word);
    // Any register may stand in rs2 of a two-operand instruction.
    const asRegisterOperand = ((word & ~(31 << RS2_SHIFT)) | (RS2 << RS2_SHIFT)) >>> 0;
    const expected = legal.has(word) || legal.has(asRegisterOperand);
    if (accepted !== expected && wrong.length < 10) wrong.push(`${word.toString(16)}: ${accepted ? 'accepted' : 'rejected'}`);
    if (!accepted) assert.deepEqual(snapshot(s), before, `rejected ${word.toString(16)} changed the state`);
  }
  assert.deepEqual(wrong, []);
  for (const word of legal) assert.ok(executeFp(randomState(0), word), `legal ${word.toString(16)} rejected`);
});

test('the dynamic rounding mode is illegal when frm holds a reserved value, other instructions ignore frm', { skip }, () => {
  for (const word of legalWords()) {
    const usesFrm = ((word >>> FUNCT3_SHIFT) & 7) === DYN;
    for (const frm of [5, 6, 7]) {
      const s = randomState(frm);
      const before = snapshot(s);
      assert.equal(executeFp(s, word), !usesFrm, `${word.toString(16)} with frm=${frm}`);
      if (usesFrm) assert.deepEqual(snapshot(s), before);
    }
  }
});
