// ELF64 little-endian RISC-V loader for bare-metal programs: PT_LOAD segments into RAM, entry, symbols.
// Layouts from the System V ABI (gABI) chapters 4 and 5 and the RISC-V ELF psABI (EM_RISCV = 243).

import { ACCESS_WRITE, type Bus } from '../memory/bus.js';

const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46]; // "\x7fELF"
const EI_CLASS = 4;
const EI_DATA = 5;
const EI_VERSION = 6;
const ELFCLASS32 = 1;
const ELFCLASS64 = 2;
const ELFDATA2LSB = 1;
const EV_CURRENT = 1;
const ET_EXEC = 2;
const ET_DYN = 3;
const EM_RISCV = 243;
const PT_LOAD = 1;
const SHT_SYMTAB = 2;
/** gABI: sizes of the ELF64 header, program header, section header and symbol entries. */
const EHDR_SIZE = 64;
const PHDR_SIZE = 56;
const SHDR_SIZE = 64;
const SYM_SIZE = 24;
/** Offsets of the ELF64 header fields used here. */
const E_TYPE = 16;
const E_MACHINE = 18;
const E_ENTRY = 24;
const E_PHOFF = 32;
const E_SHOFF = 40;
const E_PHENTSIZE = 54;
const E_PHNUM = 56;
const E_SHENTSIZE = 58;
const E_SHNUM = 60;

/** A file that cannot be loaded; the message says why in words a user can act on. */
export class ElfError extends Error {}

export interface ElfSegment {
  /** Physical load address (p_paddr): where a bare-metal program lives before any MMU is on. */
  readonly address: number;
  readonly offset: number;
  readonly fileSize: number;
  readonly memorySize: number;
  /** PF_X = 1, PF_W = 2, PF_R = 4. */
  readonly flags: number;
}

export interface ElfSymbol {
  readonly name: string;
  readonly value: number;
  readonly size: number;
}

export interface ElfImage {
  readonly entry: number;
  readonly segments: readonly ElfSegment[];
  /** Named symbols of .symtab (empty for a stripped file); the first definition wins on duplicates. */
  readonly symbols: ReadonlyMap<string, ElfSymbol>;
  readonly bytes: Uint8Array;
}

/** Reads the header, PT_LOAD segments and symbol table of an ELF64 RISC-V executable. */
export function parseElf(bytes: Uint8Array): ElfImage {
  if (bytes.length < 4 || ELF_MAGIC.some((b, i) => bytes[i] !== b)) throw new ElfError('not an ELF file (no \\x7fELF magic)');
  if (bytes.length < EHDR_SIZE) throw new ElfError(`ELF file truncated: ${bytes.length} bytes, shorter than its header`);
  if (bytes[EI_CLASS] === ELFCLASS32) throw new ElfError('a 32-bit ELF file (RV32?); this machine is RV64 and needs ELF64');
  if (bytes[EI_CLASS] !== ELFCLASS64) throw new ElfError(`unknown ELF class ${bytes[EI_CLASS]}`);
  if (bytes[EI_DATA] !== ELFDATA2LSB) throw new ElfError('a big-endian ELF file; RISC-V programs are little-endian');
  if (bytes[EI_VERSION] !== EV_CURRENT) throw new ElfError(`unknown ELF version ${bytes[EI_VERSION]}`);
  const r = new Reader(bytes);
  const machine = r.u16(E_MACHINE);
  if (machine !== EM_RISCV) throw new ElfError(`ELF file for machine ${machine}, not RISC-V (${EM_RISCV})`);
  const type = r.u16(E_TYPE);
  if (type === ET_DYN) throw new ElfError('a position-independent (ET_DYN) ELF file; link the program with -static -no-pie');
  if (type !== ET_EXEC) throw new ElfError(`ELF type ${type} is not an executable (ET_EXEC)`);

  const segments: ElfSegment[] = [];
  const phoff = r.u64(E_PHOFF, 'e_phoff');
  const phnum = r.u16(E_PHNUM);
  if (phnum > 0 && r.u16(E_PHENTSIZE) !== PHDR_SIZE) throw new ElfError(`bad program header size ${r.u16(E_PHENTSIZE)}`);
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * PHDR_SIZE;
    r.need(ph, PHDR_SIZE, `program header ${i}`);
    if (r.u32(ph) !== PT_LOAD) continue;
    const segment: ElfSegment = {
      flags: r.u32(ph + 4),
      offset: r.u64(ph + 8, 'p_offset'),
      address: r.u64(ph + 24, 'p_paddr'),
      fileSize: r.u64(ph + 32, 'p_filesz'),
      memorySize: r.u64(ph + 40, 'p_memsz'),
    };
    if (segment.fileSize > segment.memorySize) throw new ElfError(`segment ${i} has p_filesz > p_memsz`);
    r.need(segment.offset, segment.fileSize, `segment ${i} contents`);
    segments.push(segment);
  }
  if (segments.length === 0) throw new ElfError('ELF file has no PT_LOAD segment: nothing to load');
  return { entry: r.u64(E_ENTRY, 'e_entry'), segments, symbols: readSymbols(r), bytes };
}

/** The address of symbol `name` (e.g. riscv-tests' `tohost` and `fromhost`), or undefined. */
export function symbolAddress(elf: ElfImage, name: string): number | undefined {
  return elf.symbols.get(name)?.value;
}

/** Copies every PT_LOAD segment into the bus's RAM and zero-fills to p_memsz; checks all before writing any. */
export function loadElf(bus: Bus, elf: ElfImage): void {
  for (const [i, s] of elf.segments.entries()) {
    const problem = ramProblem(bus, s.address, s.memorySize);
    if (problem !== undefined) throw new ElfError(`segment ${i} (0x${s.address.toString(16)}, ${s.memorySize} bytes) ${problem}`);
  }
  for (const s of elf.segments) {
    writeRam(bus, s.address, elf.bytes.subarray(s.offset, s.offset + s.fileSize));
    zeroRam(bus, s.address + s.fileSize, s.memorySize - s.fileSize);
  }
}

/** Why [address, address + length) is not all RAM (it may span adjacent nodes), or undefined if it is. */
export function ramProblem(bus: Bus, address: number, length: number): string | undefined {
  let at = address;
  const end = address + length;
  while (at < end) {
    // A page the monitor has not given the VM yet is RAM all the same (the write will fill it).
    if (bus.resolveRam(at) === undefined && !bus.denied) return `is outside RAM (nothing at 0x${at.toString(16)})`;
    at += bus.resolvedRun;
  }
  return undefined;
}

/** Copies `data` to physical `address`, across node boundaries; the caller has checked with ramProblem. */
export function writeRam(bus: Bus, address: number, data: Uint8Array): void {
  let done = 0;
  while (done < data.length) {
    const at = address + done;
    const region = bus.resolveRamForDma(at, ACCESS_WRITE);
    if (region === undefined) throw new ElfError(`no RAM at 0x${at.toString(16)}`);
    const n = Math.min(data.length - done, bus.resolvedRun);
    region.u8.set(data.subarray(done, done + n), bus.resolvedOffset);
    done += n;
  }
}

/** Clears [address, address + length) in place (a large .bss needs no temporary buffer). */
function zeroRam(bus: Bus, address: number, length: number): void {
  let done = 0;
  while (done < length) {
    const at = address + done;
    const region = bus.resolveRamForDma(at, ACCESS_WRITE);
    if (region === undefined) throw new ElfError(`no RAM at 0x${at.toString(16)}`);
    const n = Math.min(length - done, bus.resolvedRun);
    region.u8.fill(0, bus.resolvedOffset, bus.resolvedOffset + n);
    done += n;
  }
}

function readSymbols(r: Reader): Map<string, ElfSymbol> {
  const symbols = new Map<string, ElfSymbol>();
  const shoff = r.u64(E_SHOFF, 'e_shoff');
  const shnum = r.u16(E_SHNUM);
  if (shoff === 0 || shnum === 0) return symbols;
  if (r.u16(E_SHENTSIZE) !== SHDR_SIZE) throw new ElfError(`bad section header size ${r.u16(E_SHENTSIZE)}`);
  r.need(shoff, shnum * SHDR_SIZE, 'section headers');
  const section = (i: number) => ({
    type: r.u32(shoff + i * SHDR_SIZE + 4),
    offset: r.u64(shoff + i * SHDR_SIZE + 24, 'sh_offset'),
    size: r.u64(shoff + i * SHDR_SIZE + 32, 'sh_size'),
    link: r.u32(shoff + i * SHDR_SIZE + 40),
  });
  for (let i = 0; i < shnum; i++) {
    const symtab = section(i);
    if (symtab.type !== SHT_SYMTAB) continue;
    if (symtab.link >= shnum) throw new ElfError(`symbol table links to missing section ${symtab.link}`);
    const strtab = section(symtab.link);
    r.need(symtab.offset, symtab.size, 'symbol table');
    r.need(strtab.offset, strtab.size, 'symbol string table');
    for (let at = symtab.offset; at + SYM_SIZE <= symtab.offset + symtab.size; at += SYM_SIZE) {
      const name = r.cString(strtab.offset, strtab.size, r.u32(at));
      // Absolute symbols may hold any 64-bit value; those beyond 2^53 are no load addresses and are skipped.
      const value = r.u64Exact(at + 8);
      const size = r.u64Exact(at + 16);
      if (name === '' || symbols.has(name) || value === undefined || size === undefined) continue;
      symbols.set(name, { name, value, size });
    }
  }
  return symbols;
}

/** Bounds-checked little-endian reads; 64-bit values must be exact JavaScript numbers. */
class Reader {
  private readonly view: DataView;

  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  need(offset: number, length: number, what: string): void {
    if (offset + length > this.bytes.length) throw new ElfError(`ELF file truncated: ${what} lies past its end`);
  }

  u16(offset: number): number {
    this.need(offset, 2, 'a header field');
    return this.view.getUint16(offset, true);
  }

  u32(offset: number): number {
    this.need(offset, 4, 'a header field');
    return this.view.getUint32(offset, true);
  }

  u64(offset: number, field: string): number {
    const v = this.u64Exact(offset);
    if (v === undefined) throw new ElfError(`${field} 0x${this.view.getBigUint64(offset, true).toString(16)} is too large`);
    return v;
  }

  /** The value as a number, or undefined when it is above 2^53 and a number cannot hold it exactly. */
  u64Exact(offset: number): number | undefined {
    this.need(offset, 8, 'a 64-bit field');
    const v = this.view.getBigUint64(offset, true);
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? undefined : Number(v);
  }

  cString(tableOffset: number, tableSize: number, index: number): string {
    if (index >= tableSize) throw new ElfError(`symbol name offset ${index} outside the string table`);
    const start = tableOffset + index;
    const end = this.bytes.indexOf(0, start);
    if (end < 0 || end >= tableOffset + tableSize) throw new ElfError('unterminated symbol name');
    return new TextDecoder().decode(this.bytes.subarray(start, end));
  }
}
