// Test helper: assembles RISC-V source with the Debian cross toolchain, cached by a hash of the input.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

const PREFIX = 'riscv64-linux-gnu-';
/** Where programs are linked: the start of RAM on the virt board. */
export const TEXT_BASE = 0x8000_0000;
const CACHE_DIR = join(tmpdir(), 'mirrorball-asm-cache');
/** Bump when the build recipe changes so stale cache entries are not reused. */
const RECIPE_VERSION = 3;

export interface Program {
  /** The loadable image, starting at TEXT_BASE (objcopy -O binary). */
  readonly image: Uint8Array;
  /** Every symbol of the linked program (labels included) by name. */
  readonly symbols: ReadonlyMap<string, number>;
}

let available: boolean | undefined;

/** True when the cross assembler, compiler driver and objcopy are all installed. */
export function toolchainAvailable(): boolean {
  if (available === undefined) {
    available = ['gcc', 'objcopy', 'nm', 'objdump'].every((tool) => {
      try {
        execFileSync(PREFIX + tool, ['--version'], { stdio: 'ignore' });
        return true;
      } catch {
        return false;
      }
    });
  }
  return available;
}

/** Marks the test skipped (with the reason) and returns false when the toolchain is missing. */
export function requireToolchain(t: TestContext): boolean {
  if (toolchainAvailable()) return true;
  t.skip(`the RISC-V cross toolchain (${PREFIX}gcc, objcopy, nm, objdump) is not installed: apt-get install gcc-riscv64-linux-gnu`);
  return false;
}

function cachePaths(key: string): { bin: string; sym: string } {
  const hash = createHash('sha256').update(`${RECIPE_VERSION}\n${key}`).digest('hex').slice(0, 32);
  return { bin: join(CACHE_DIR, `${hash}.bin`), sym: join(CACHE_DIR, `${hash}.sym.json`) };
}

/** Writes via a temporary name and renames, so concurrent test files never see half a file. */
function writeAtomic(path: string, data: string | Uint8Array): void {
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, data);
  renameSync(temporary, path);
}

/**
 * Assembles and links `source` (GNU as syntax, entry `_start` or simply the first instruction) at
 * TEXT_BASE for rv64gc, and returns the flat image and the symbol table. Throws with the assembler's
 * message on a syntax error. Results are cached in the OS temp directory.
 */
export function assemble(source: string, march = 'rv64gc'): Program {
  const { bin, sym } = cachePaths(`${march}\n${source}`);
  if (existsSync(bin) && existsSync(sym)) {
    const entries = JSON.parse(readFileSync(sym, 'utf8')) as [string, number][];
    return { image: new Uint8Array(readFileSync(bin)), symbols: new Map(entries) };
  }
  mkdirSync(CACHE_DIR, { recursive: true });
  const base = bin.slice(0, -4) + `.${process.pid}`;
  writeFileSync(`${base}.S`, source.endsWith('\n') ? source : source + '\n');
  try {
    execFileSync(PREFIX + 'gcc', [
      `-march=${march}`, '-mabi=lp64', '-nostdlib', '-nostartfiles', '-static', '-fno-pic', '-fno-pie', '-no-pie',
      `-Wl,-Ttext=0x${TEXT_BASE.toString(16)}`, '-Wl,--build-id=none', '-Wl,--no-relax', '-Wl,-e,0x80000000',
      '-o', `${base}.elf`, `${base}.S`,
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const stderr = (e as { stderr?: Buffer }).stderr?.toString() ?? String(e);
    rmSync(`${base}.S`, { force: true });
    throw new Error(`assembly failed:\n${stderr}`);
  }
  execFileSync(PREFIX + 'objcopy', ['-O', 'binary', `${base}.elf`, `${base}.raw`]);
  const nm = execFileSync(PREFIX + 'nm', [`${base}.elf`], { encoding: 'utf8' });
  const entries: [string, number][] = [];
  for (const line of nm.split('\n')) {
    const m = /^([0-9a-f]+) \S (\S+)$/.exec(line.trim());
    if (m) entries.push([m[2], Number.parseInt(m[1], 16)]);
  }
  writeAtomic(sym, JSON.stringify(entries));
  renameSync(`${base}.raw`, bin);
  rmSync(`${base}.S`, { force: true });
  rmSync(`${base}.elf`, { force: true });
  return { image: new Uint8Array(readFileSync(bin)), symbols: new Map(entries) };
}

/**
 * Assembles and links `source` (entry `_start`) for rv64 at `textBase` and returns the ELF file itself: a bare
 * S-mode program as `run --elf F --sbi` and a VM's `elf:` (VirtualMachine.bootElf) load it. Cached as `assemble`.
 */
export function assembleElf(source: string, march = 'rv64gc', textBase = TEXT_BASE): Uint8Array {
  const { bin } = cachePaths(`elf -N\n${march}\n${textBase}\n${source}`);
  if (existsSync(bin)) return new Uint8Array(readFileSync(bin));
  mkdirSync(CACHE_DIR, { recursive: true });
  const base = bin.slice(0, -4) + `.${process.pid}`;
  writeFileSync(`${base}.S`, source.endsWith('\n') ? source : source + '\n');
  try {
    execFileSync(PREFIX + 'gcc', [
      `-march=${march}`, '-mabi=lp64', '-nostdlib', '-nostartfiles', '-static', '-fno-pic', '-fno-pie', '-no-pie',
      // -N: one segment from textBase, the ELF headers not loaded below it.
      '-Wl,-N', `-Wl,-Ttext=0x${textBase.toString(16)}`, '-Wl,--build-id=none', '-Wl,--no-relax', '-Wl,-e,_start',
      '-o', `${base}.elf`, `${base}.S`,
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const stderr = (e as { stderr?: Buffer }).stderr?.toString() ?? String(e);
    throw new Error(`assembly failed:\n${stderr}`);
  } finally {
    rmSync(`${base}.S`, { force: true });
  }
  renameSync(`${base}.elf`, bin);
  return new Uint8Array(readFileSync(bin));
}

/** The HTIF mailbox that `run --elf` watches (riscv-tests convention): `tohost` and `fromhost`, 8 bytes each. */
const HTIF_SECTION = ['.section .tohost, "aw"', '.align 3', '.globl tohost', 'tohost: .dword 0', '.globl fromhost', 'fromhost: .dword 0'];

/**
 * Writes `lines` (GNU as, entry `_start`) plus the HTIF mailbox to `<dir>/<name>.S` and links them into the
 * ELF `<dir>/<name>.elf` at TEXT_BASE, as a bare-metal program for `mirrorball run --elf`. Returns its path.
 */
export function linkHtifElf(dir: string, name: string, lines: readonly string[]): string {
  const source = join(dir, `${name}.S`);
  const elf = join(dir, `${name}.elf`);
  writeFileSync(source, [...lines, ...HTIF_SECTION, ''].join('\n'));
  execFileSync(PREFIX + 'gcc', ['-nostdlib', '-static', '-no-pie', `-Wl,-N,-Ttext=0x${TEXT_BASE.toString(16)},--build-id=none`, source, '-o', elf],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  return elf;
}

/**
 * The machine encodings of `lines`, one instruction each, as the toolchain emits them: with `rvc`
 * the assembler may pick a 16-bit form (returned as the halfword), without it every line is 32 bits.
 * All lines are assembled in one run, so asking for hundreds costs one toolchain invocation.
 */
export function encode(lines: readonly string[], rvc: boolean): number[] {
  const body = lines.map((line) => `  ${line}`).join('\n');
  const source = `.option ${rvc ? 'rvc' : 'norvc'}\n.globl _start\n_start:\n${body}\n`;
  const { image } = assemble(source);
  const words: number[] = [];
  let o = 0;
  while (words.length < lines.length) {
    if (o + 2 > image.length) throw new Error(`encode: image too short for ${lines.length} instructions`);
    const half = image[o] | (image[o + 1] << 8);
    if ((half & 3) !== 3) {
      words.push(half);
      o += 2;
    } else {
      words.push((half | (image[o + 2] << 16) | (image[o + 3] << 24)) >>> 0);
      o += 4;
    }
  }
  return words;
}

/**
 * The toolchain's disassembly of raw bytes (objdump, no aliases, numeric register names): one entry per
 * instruction with its byte offset, the raw encoding, the mnemonic and the operand text.
 */
export function disassemble(bytes: Uint8Array): { offset: number; raw: number; mnemonic: string; operands: string }[] {
  mkdirSync(CACHE_DIR, { recursive: true });
  const file = join(CACHE_DIR, `disassemble.${process.pid}.bin`);
  writeFileSync(file, bytes);
  let text: string;
  try {
    text = execFileSync(PREFIX + 'objdump', ['-D', '-b', 'binary', '-m', 'riscv:rv64', '-M', 'no-aliases,numeric', file],
      { encoding: 'utf8', maxBuffer: 1 << 28 });
  } finally {
    rmSync(file, { force: true });
  }
  const out: { offset: number; raw: number; mnemonic: string; operands: string }[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*([0-9a-f]+):\t([0-9a-f]+)\s*\t(\S+)\t?(.*)$/.exec(line);
    if (m) out.push({ offset: Number.parseInt(m[1], 16), raw: Number.parseInt(m[2], 16), mnemonic: m[3], operands: m[4].trim() });
  }
  return out;
}
