// expandCompressed against the toolchain: every 16-bit encoding, and the assembler's own RVC choices.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { expandCompressed } from '../../src/isa/compressed.js';
import { disassemble, encode, requireToolchain } from '../helpers/asm.js';

/**
 * The 32-bit instruction each RVC mnemonic stands for (unprivileged spec ch. 16, tables 16.5–16.7),
 * written from the operands objdump prints. Branch and jump targets are printed as offsets in the
 * disassembled blob, so they are turned back into `.±delta`, relative to the instruction itself.
 */
function expansionText(mnemonic: string, operands: string, offset: number): string | undefined {
  const ops = operands.split(',');
  const rel = (target: string): string => {
    const delta = Number.parseInt(target, 16) - offset;
    return delta < 0 ? `.-${-delta}` : `.+${delta}`;
  };
  switch (mnemonic) {
    case 'c.addi4spn': return `addi ${ops[0]},x2,${ops[2]}`;
    case 'c.fld': return `fld ${operands}`;
    case 'c.lw': return `lw ${operands}`;
    case 'c.ld': return `ld ${operands}`;
    case 'c.fsd': return `fsd ${operands}`;
    case 'c.sw': return `sw ${operands}`;
    case 'c.sd': return `sd ${operands}`;
    case 'c.nop': return 'addi x0,x0,0';
    case 'c.addi': return `addi ${ops[0]},${ops[0]},${ops[1]}`;
    case 'c.addiw': return `addiw ${ops[0]},${ops[0]},${ops[1]}`;
    case 'c.li': return `addi ${ops[0]},x0,${ops[1]}`;
    // nzimm = 0 is reserved (§16.5) although objdump still names it.
    case 'c.addi16sp': return Number(ops[1]) === 0 ? undefined : `addi x2,x2,${ops[1]}`;
    case 'c.lui': return `lui ${ops[0]},${ops[1]}`;
    case 'c.srli': return `srli ${ops[0]},${ops[0]},${ops[1]}`;
    case 'c.srai': return `srai ${ops[0]},${ops[0]},${ops[1]}`;
    case 'c.slli': return `slli ${ops[0]},${ops[0]},${ops[1]}`;
    case 'c.srli64': return `srli ${ops[0]},${ops[0]},0`;
    case 'c.srai64': return `srai ${ops[0]},${ops[0]},0`;
    case 'c.slli64': return `slli ${ops[0]},${ops[0]},0`;
    case 'c.andi': return `andi ${ops[0]},${ops[0]},${ops[1]}`;
    case 'c.sub': case 'c.xor': case 'c.or': case 'c.and': case 'c.subw': case 'c.addw':
      return `${mnemonic.slice(2)} ${ops[0]},${ops[0]},${ops[1]}`;
    case 'c.j': return `jal x0,${rel(ops[0])}`;
    case 'c.beqz': return `beq ${ops[0]},x0,${rel(ops[1])}`;
    case 'c.bnez': return `bne ${ops[0]},x0,${rel(ops[1])}`;
    case 'c.fldsp': return `fld ${operands}`;
    case 'c.lwsp': return `lw ${operands}`;
    case 'c.ldsp': return `ld ${operands}`;
    case 'c.fsdsp': return `fsd ${operands}`;
    case 'c.swsp': return `sw ${operands}`;
    case 'c.sdsp': return `sd ${operands}`;
    case 'c.jr': return `jalr x0,0(${ops[0]})`;
    case 'c.jalr': return `jalr x1,0(${ops[0]})`;
    case 'c.mv': return `add ${ops[0]},x0,${ops[1]}`;
    case 'c.add': return `add ${ops[0]},${ops[0]},${ops[1]}`;
    case 'c.ebreak': return 'ebreak';
    default: return undefined; // c.unimp, .2byte: illegal or reserved
  }
}

test('every 16-bit encoding expands to what the toolchain decodes it as', (t) => {
  if (!requireToolchain(t)) return;
  const halves: number[] = [];
  for (let h = 0; h < 0x10000; h++) if ((h & 3) !== 3) halves.push(h);
  const blob = new Uint8Array(halves.length * 2);
  halves.forEach((h, k) => { blob[2 * k] = h & 0xff; blob[2 * k + 1] = h >>> 8; });
  const listing = disassemble(blob);
  assert.equal(listing.length, halves.length);

  const legal: { half: number; text: string }[] = [];
  const illegal: number[] = [];
  for (const { offset, raw, mnemonic, operands } of listing) {
    const text = expansionText(mnemonic, operands, offset);
    if (text === undefined) illegal.push(raw);
    else legal.push({ half: raw, text });
  }
  // Targets are written as `.±delta`, relative to the instruction itself, so they survive the move.
  const words = encode(legal.map((l) => l.text), false);
  let mismatches = 0;
  const examples: string[] = [];
  legal.forEach(({ half, text }, k) => {
    const got = expandCompressed(half) >>> 0;
    if (got !== words[k]) {
      mismatches++;
      if (examples.length < 10) examples.push(`0x${half.toString(16)} (${text}): got 0x${got.toString(16)}, want 0x${words[k].toString(16)}`);
    }
  });
  assert.equal(mismatches, 0, examples.join('\n'));
  const accepted = illegal.filter((h) => expandCompressed(h) !== 0);
  assert.deepEqual(accepted.map((h) => h.toString(16)), [], 'reserved encodings must expand to 0 (illegal)');
  assert.ok(legal.length > 40000 && illegal.length > 2000);
});

/** Instructions the assembler compresses under `.option rvc`, one per RVC form (ISA ch. 16). */
const COMPRESSIBLE = [
  'addi x8, x2, 1020', 'fld f9, 248(x10)', 'lw x11, 124(x12)', 'ld x13, 248(x14)', 'fsd f15, 8(x8)',
  'sw x9, 4(x15)', 'sd x10, 0(x9)', 'addi x0, x0, 0', 'addi x5, x5, -32', 'addi x31, x31, 31',
  'addiw x6, x6, -1', 'addiw x7, x7, 0', 'addi x9, x0, -32', 'addi x2, x2, -512', 'addi x2, x2, 496',
  'lui x3, 0xfffe0', 'lui x31, 0x1f', 'srli x8, x8, 63', 'srli x15, x15, 1', 'srai x9, x9, 32',
  'andi x10, x10, -1', 'sub x8, x8, x15', 'xor x9, x9, x14', 'or x10, x10, x13', 'and x11, x11, x12',
  'subw x12, x12, x11', 'addw x13, x13, x10', 'slli x1, x1, 63', 'slli x31, x31, 1',
  'fld f31, 504(x2)', 'lw x1, 252(x2)', 'ld x31, 504(x2)', 'jr x1', 'add x10, x0, x11',
  'ebreak', 'jalr x31', 'add x12, x12, x13', 'fsd f0, 504(x2)', 'sw x31, 252(x2)', 'sd x1, 504(x2)',
  'beqz x8, .+254', 'bnez x15, .-256', 'j .+2046', 'j .-2048',
];

test('the assembler\'s own RVC encodings expand to its 32-bit encodings of the same instruction', (t) => {
  if (!requireToolchain(t)) return;
  const short = encode(COMPRESSIBLE, true);
  const long = encode(COMPRESSIBLE, false);
  COMPRESSIBLE.forEach((line, k) => {
    assert.ok(short[k] < 0x10000 && (short[k] & 3) !== 3, `${line} was not compressed`);
    assert.equal((expandCompressed(short[k]) >>> 0).toString(16), long[k].toString(16), line);
  });
});

test('reserved and illegal forms expand to 0', () => {
  assert.equal(expandCompressed(0x0000), 0, 'all-zero halfword is defined illegal (§16.1)');
  assert.equal(expandCompressed(0x6101), 0, 'C.ADDI16SP with nzimm = 0');
  assert.equal(expandCompressed(0x6081), 0, 'C.LUI with nzimm = 0');
  assert.equal(expandCompressed(0x8002), 0, 'C.JR with rs1 = 0');
  assert.equal(expandCompressed(0x4002), 0, 'C.LWSP with rd = 0');
  assert.equal(expandCompressed(0x6002), 0, 'C.LDSP with rd = 0');
  assert.equal(expandCompressed(0x2001), 0, 'C.ADDIW with rd = 0');
  assert.equal(expandCompressed(0x8000), 0, 'quadrant 0 funct3 = 4 is reserved');
  assert.equal(expandCompressed(0x9c41), 0, 'C.SUBW-space reserved form (funct2 = 2)');
});
