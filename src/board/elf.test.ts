// Tests of the ELF loader: hand-built files for every error, and real programs from the cross toolchain.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { Bus } from '../memory/bus.js';
import { RamRegion } from '../memory/ram.js';
import { ElfError, loadElf, parseElf, symbolAddress } from './elf.js';

const RAM = 0x8000_0000;
const MiB = 1024 * 1024;

interface Segment {
  address: number;
  data: number[];
  memorySize: number;
}

/** A minimal ELF64 RISC-V executable: header, program headers, segment data, and a .symtab + .strtab. */
function makeElf(segments: Segment[], symbols: Record<string, number> = {}, entry = RAM): Uint8Array {
  const phoff = 64;
  let dataAt = phoff + 56 * segments.length;
  const offsets = segments.map((s) => {
    const at = dataAt;
    dataAt += s.data.length;
    return at;
  });
  const names = Object.keys(symbols);
  const strtab = [0, ...names.flatMap((n) => [...new TextEncoder().encode(n), 0])];
  const symtabAt = dataAt;
  const symtabSize = 24 * (names.length + 1); // entry 0 is the null symbol
  const strtabAt = symtabAt + symtabSize;
  const shoff = strtabAt + strtab.length;
  const bytes = new Uint8Array(shoff + 3 * 64);
  const v = new DataView(bytes.buffer);
  bytes.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  v.setUint16(16, 2, true); // ET_EXEC
  v.setUint16(18, 243, true); // EM_RISCV
  v.setUint32(20, 1, true);
  v.setBigUint64(24, BigInt(entry), true);
  v.setBigUint64(32, BigInt(phoff), true);
  v.setBigUint64(40, BigInt(shoff), true);
  v.setUint16(52, 64, true);
  v.setUint16(54, 56, true);
  v.setUint16(56, segments.length, true);
  v.setUint16(58, 64, true);
  v.setUint16(60, 3, true);
  segments.forEach((s, i) => {
    const ph = phoff + 56 * i;
    v.setUint32(ph, 1, true); // PT_LOAD
    v.setUint32(ph + 4, 7, true);
    v.setBigUint64(ph + 8, BigInt(offsets[i]!), true);
    v.setBigUint64(ph + 16, BigInt(s.address), true);
    v.setBigUint64(ph + 24, BigInt(s.address), true);
    v.setBigUint64(ph + 32, BigInt(s.data.length), true);
    v.setBigUint64(ph + 40, BigInt(s.memorySize), true);
    bytes.set(s.data, offsets[i]!);
  });
  let nameAt = 1;
  names.forEach((n, i) => {
    const sym = symtabAt + 24 * (i + 1);
    v.setUint32(sym, nameAt, true);
    v.setBigUint64(sym + 8, BigInt(symbols[n]!), true);
    nameAt += n.length + 1;
  });
  bytes.set(strtab, strtabAt);
  // Section 1: .symtab (SHT_SYMTAB, linked to section 2); section 2: .strtab (SHT_STRTAB).
  const section = (i: number, type: number, offset: number, size: number, link: number): void => {
    const sh = shoff + 64 * i;
    v.setUint32(sh + 4, type, true);
    v.setBigUint64(sh + 24, BigInt(offset), true);
    v.setBigUint64(sh + 32, BigInt(size), true);
    v.setUint32(sh + 40, link, true);
  };
  section(1, 2, symtabAt, symtabSize, 2);
  section(2, 3, strtabAt, strtab.length, 0);
  return bytes;
}

function busWith(...sizes: number[]): Bus {
  const bus = new Bus();
  let base = RAM;
  sizes.forEach((size, node) => {
    const region = new RamRegion(node, base, size);
    region.u8.fill(0xaa);
    bus.addRam(region);
    base += size;
  });
  return bus;
}

function ramBytes(bus: Bus, address: number, length: number): number[] {
  return Array.from({ length }, (_, i) => {
    const r = bus.ramAt(address + i)!;
    return r.u8[address + i - r.base]!;
  });
}

test('segments are copied, zero-filled to p_memsz, and symbols are found', () => {
  const elf = parseElf(
    makeElf(
      [
        { address: RAM, data: [1, 2, 3, 4], memorySize: 4 },
        { address: RAM + 0x1000, data: [5, 6], memorySize: 6 },
      ],
      { tohost: RAM + 0x1000, fromhost: RAM + 0x1008 },
      RAM + 2,
    ),
  );
  assert.equal(elf.entry, RAM + 2);
  assert.equal(symbolAddress(elf, 'tohost'), RAM + 0x1000);
  assert.equal(symbolAddress(elf, 'fromhost'), RAM + 0x1008);
  assert.equal(symbolAddress(elf, 'nothing'), undefined);
  const bus = busWith(MiB);
  loadElf(bus, elf);
  assert.deepEqual(ramBytes(bus, RAM, 5), [1, 2, 3, 4, 0xaa]);
  assert.deepEqual(ramBytes(bus, RAM + 0x1000, 7), [5, 6, 0, 0, 0, 0, 0xaa]);
});

test('a segment may run across the boundary between two nodes', () => {
  const bus = busWith(MiB, MiB);
  loadElf(bus, parseElf(makeElf([{ address: RAM + MiB - 2, data: [1, 2, 3], memorySize: 5 }])));
  assert.deepEqual(ramBytes(bus, RAM + MiB - 2, 6), [1, 2, 3, 0, 0, 0xaa]);
});

test('a segment outside RAM is refused before anything is written', () => {
  const bus = busWith(MiB);
  const elf = parseElf(
    makeElf([
      { address: RAM, data: [1], memorySize: 1 },
      { address: RAM + MiB - 1, data: [2, 3], memorySize: 2 },
    ]),
  );
  assert.throws(() => loadElf(bus, elf), /segment 1 \(0x800fffff, 2 bytes\) is outside RAM \(nothing at 0x80100000\)/);
  assert.deepEqual(ramBytes(bus, RAM, 1), [0xaa]);
  const low = parseElf(makeElf([{ address: 0x1000, data: [1], memorySize: 1 }]));
  assert.throws(() => loadElf(bus, low), /outside RAM \(nothing at 0x1000\)/);
});

function corrupt(edit: (bytes: Uint8Array, view: DataView) => void): Uint8Array {
  const bytes = makeElf([{ address: RAM, data: [1, 2, 3, 4], memorySize: 4 }]);
  edit(bytes, new DataView(bytes.buffer));
  return bytes;
}

test('each kind of wrong file gets its own clear error', () => {
  const cases: [Uint8Array, RegExp][] = [
    [new TextEncoder().encode('#!/bin/sh\necho hi\n'), /not an ELF file/],
    [new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 2, 1]), /truncated/],
    [corrupt((b) => (b[4] = 1)), /32-bit ELF file/],
    [corrupt((b) => (b[5] = 2)), /big-endian/],
    [corrupt((_, v) => v.setUint16(18, 62, true)), /machine 62, not RISC-V/],
    [corrupt((_, v) => v.setUint16(16, 3, true)), /-static -no-pie/],
    [corrupt((_, v) => v.setUint16(16, 1, true)), /not an executable/],
    [corrupt((_, v) => v.setUint16(56, 0, true)), /no PT_LOAD segment/],
    [corrupt((_, v) => v.setBigUint64(64 + 40, 1n, true)), /p_filesz > p_memsz/],
    [corrupt((_, v) => v.setBigUint64(64 + 8, 1n << 40n, true)), /segment 0 contents lies past its end/],
    [corrupt((_, v) => v.setBigUint64(32, 1n << 62n, true)), /e_phoff 0x4000000000000000 is too large/],
  ];
  for (const [bytes, message] of cases) {
    assert.throws(() => parseElf(bytes), (e: unknown) => e instanceof ElfError && message.test(e.message));
  }
});

test('damaged files only ever raise ElfError', () => {
  const good = makeElf([{ address: RAM, data: [1, 2, 3, 4], memorySize: 8 }], { tohost: RAM });
  const edits = fc.array(fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 8 });
  fc.assert(
    fc.property(edits, fc.nat(good.length), (changes, cut) => {
      const bytes = good.slice(0, Math.max(cut, 4));
      for (const [at, value] of changes) if (at < bytes.length) bytes[at] = value;
      try {
        loadElf(busWith(MiB), parseElf(bytes));
      } catch (e) {
        assert.ok(e instanceof ElfError, String(e));
      }
    }),
  );
});

const GCC = 'riscv64-linux-gnu-gcc';
const GCC_MISSING = spawnSync(GCC, ['--version']).status === 0 ? false : `${GCC} (RISC-V cross compiler) is not installed`;

/** Assembles `source` with the cross toolchain and a linker script placing it at `base`. */
function build(source: string, base: number): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), 'mirrorball-elf-'));
  try {
    writeFileSync(join(dir, 'prog.S'), source);
    const sections = ['.text : { *(.text*) }', '. = ALIGN(0x1000);', '.data : { *(.data*) }', '.bss : { *(.bss*) }'];
    const script = `ENTRY(_start)\nSECTIONS {\n. = 0x${base.toString(16)};\n${sections.join('\n')}\n}\n`;
    writeFileSync(join(dir, 'link.ld'), script);
    const args = ['-nostdlib', '-static', '-Wl,--build-id=none', '-T', join(dir, 'link.ld')];
    args.push('-o', join(dir, 'prog'), join(dir, 'prog.S'));
    const result = spawnSync(GCC, args, { encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
    return new Uint8Array(readFileSync(join(dir, 'prog')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const PROGRAM = `
  .text
  .globl _start
_start:
  lla t0, tohost
  li t1, 1
  sd t1, 0(t0)
1: j 1b
  .data
  .align 3
  .globl tohost
tohost: .dword 0
  .globl fromhost
fromhost: .dword 0
message: .ascii "hello"
  .bss
  .align 3
buffer: .zero 4096
`;

test('a program built by the cross toolchain loads with its .bss cleared', { skip: GCC_MISSING }, () => {
  const elf = parseElf(build(PROGRAM, RAM));
  assert.equal(elf.entry, RAM);
  const tohost = symbolAddress(elf, 'tohost')!;
  assert.equal(symbolAddress(elf, 'fromhost'), tohost + 8);
  const buffer = symbolAddress(elf, 'buffer')!;
  const bus = busWith(MiB);
  loadElf(bus, elf);
  // The first instruction is the auipc (opcode 0x17) of lla.
  assert.equal(ramBytes(bus, RAM, 1)[0]! & 0x7f, 0x17);
  assert.deepEqual(ramBytes(bus, tohost + 16, 5), [...new TextEncoder().encode('hello')]);
  assert.deepEqual(ramBytes(bus, buffer, 4096), new Array(4096).fill(0));
});

test('a program linked above RAM is refused', { skip: GCC_MISSING }, () => {
  const elf = parseElf(build(PROGRAM, RAM + 16 * MiB));
  assert.throws(() => loadElf(busWith(MiB), elf), /segment 0 \(0x81000000, \d+ bytes\) is outside RAM/);
});
