// The platform-level interrupt controller (RISC-V PLIC spec v1.0.0, the layout of sifive,plic-1.0.0 and QEMU virt).

import type { AccessSize, Device, HartInterruptSink, IrqLine } from '../memory/device.js';
import { StateReader } from '../memory/state.js';
import { mergeSubword, readSubword } from './subword.js';

/** mip bits driven by the PLIC (RISC-V privileged spec §3.1.9): context 2h is M-mode, 2h+1 S-mode of hart h. */
export const MIP_SEIP = 9;
export const MIP_MEIP = 11;

// Register layout (PLIC spec §3 memory map).
const PRIORITY_BASE = 0x000000;
const PENDING_BASE = 0x001000;
const ENABLE_BASE = 0x002000;
const ENABLE_STRIDE = 0x80;
const CONTEXT_BASE = 0x200000;
const CONTEXT_STRIDE = 0x1000;
const THRESHOLD = 0x0;
const CLAIM_COMPLETE = 0x4;
const CONTEXTS_PER_HART = 2;
/** Source 0 means "no interrupt" (PLIC spec §1.2), so 1024 ids leave 1023 sources. */
const MAX_SOURCES = 1024;
/** Priorities 0..7 as on QEMU virt; 0 means "never interrupt" (PLIC spec §4). */
const PRIORITY_MASK = 0x7;
const BITS_PER_WORD = 32;

export interface PlicState {
  priority: Uint32Array;
  pending: Uint32Array;
  inService: Uint32Array;
  line: Uint32Array;
  enable: Uint32Array;
  threshold: Uint32Array;
  output: Uint8Array;
}

export class Plic implements Device {
  readonly name = 'plic';
  /** Bytes of register space the contexts use; a larger window reads as zero above it. */
  readonly size: number;
  readonly contexts: number;
  private readonly words: number;
  private readonly priority: Uint32Array;
  private readonly pending: Uint32Array;
  /** Sources claimed and not yet completed: their gateway forwards no new request (PLIC spec §1.4). */
  private readonly inService: Uint32Array;
  private readonly line: Uint32Array;
  /** Bits of the pending and enable words that name real sources. */
  private readonly validBits: Uint32Array;
  private readonly enable: Uint32Array;
  private readonly threshold: Uint32Array;
  private readonly output: Uint8Array;

  constructor(readonly harts: number, readonly sources = 96, private readonly sink: HartInterruptSink) {
    if (!Number.isInteger(harts) || harts < 1) throw new Error(`PLIC: bad hart count ${harts}`);
    if (!Number.isInteger(sources) || sources < 2 || sources > MAX_SOURCES) throw new Error(`PLIC: bad source count ${sources}`);
    this.contexts = harts * CONTEXTS_PER_HART;
    this.size = CONTEXT_BASE + CONTEXT_STRIDE * this.contexts;
    this.words = Math.ceil(sources / BITS_PER_WORD);
    this.priority = new Uint32Array(sources);
    this.pending = new Uint32Array(this.words);
    this.inService = new Uint32Array(this.words);
    this.line = new Uint32Array(this.words);
    this.validBits = new Uint32Array(this.words);
    for (let source = 1; source < sources; source++) this.validBits[source >>> 5] |= 1 << (source & 31);
    this.enable = new Uint32Array(this.contexts * this.words);
    this.threshold = new Uint32Array(this.contexts);
    this.output = new Uint8Array(this.contexts);
  }

  /** The registers and wires as plain data (snapshots, docs/snapshots.md). */
  saveState(): PlicState {
    return {
      priority: this.priority.slice(), pending: this.pending.slice(), inService: this.inService.slice(), line: this.line.slice(),
      enable: this.enable.slice(), threshold: this.threshold.slice(), output: this.output.slice(),
    };
  }

  /** Puts saved state back, checked first; no output wire moves (the harts' pending bits are restored with them). */
  restoreState(state: unknown): void {
    const r = new StateReader(state, 'plic');
    const parts = {
      priority: r.typed('priority', Uint32Array, this.sources),
      pending: r.typed('pending', Uint32Array, this.words),
      inService: r.typed('inService', Uint32Array, this.words),
      line: r.typed('line', Uint32Array, this.words),
      enable: r.typed('enable', Uint32Array, this.contexts * this.words),
      threshold: r.typed('threshold', Uint32Array, this.contexts),
      output: r.typed('output', Uint8Array, this.contexts),
    };
    this.priority.set(parts.priority);
    this.pending.set(parts.pending);
    this.inService.set(parts.inService);
    this.line.set(parts.line);
    this.enable.set(parts.enable);
    this.threshold.set(parts.threshold);
    this.output.set(parts.output);
  }

  /** The wire of interrupt source `source` (1 .. sources-1), level-triggered. */
  irqLine(source: number): IrqLine {
    if (!Number.isInteger(source) || source < 1 || source >= this.sources) throw new RangeError(`PLIC has no source ${source}`);
    return (level) => this.setLine(source, level);
  }

  read(offset: number, size: AccessSize, _hart: number): number {
    const aligned = offset & ~3;
    if (this.isClaim(aligned)) return readSubword(this.claim(this.contextOf(aligned)), offset, size);
    return readSubword(this.peek(aligned), offset, size);
  }

  write(offset: number, size: AccessSize, value: number, _hart: number): void {
    const aligned = offset & ~3;
    const word = mergeSubword(this.peek(aligned), offset, size, value);
    if (aligned < PENDING_BASE) {
      const source = (aligned - PRIORITY_BASE) >>> 2;
      if (source > 0 && source < this.sources) this.priority[source] = word & PRIORITY_MASK;
    } else if (aligned >= ENABLE_BASE && aligned < CONTEXT_BASE) {
      const index = this.enableIndex(aligned);
      if (index >= 0) this.enable[index] = word & this.validBits[index % this.words];
    } else if (aligned >= CONTEXT_BASE) {
      const context = this.contextOf(aligned);
      if (context >= this.contexts) return;
      const register = (aligned - CONTEXT_BASE) % CONTEXT_STRIDE;
      if (register === THRESHOLD) this.threshold[context] = word & PRIORITY_MASK;
      else if (register === CLAIM_COMPLETE) this.complete(context, value >>> 0);
    }
    this.updateOutputs();
  }

  /** A register's value without side effects (the claim register peeks as zero). */
  private peek(aligned: number): number {
    if (aligned < PENDING_BASE) {
      const source = (aligned - PRIORITY_BASE) >>> 2;
      return source < this.sources ? this.priority[source] : 0;
    }
    if (aligned < ENABLE_BASE) {
      const index = (aligned - PENDING_BASE) >>> 2;
      return index < this.words ? this.pending[index] : 0;
    }
    if (aligned < CONTEXT_BASE) {
      const index = this.enableIndex(aligned);
      return index >= 0 ? this.enable[index] : 0;
    }
    const context = this.contextOf(aligned);
    if (context < this.contexts && (aligned - CONTEXT_BASE) % CONTEXT_STRIDE === THRESHOLD) return this.threshold[context];
    return 0;
  }

  private isClaim(aligned: number): boolean {
    return aligned >= CONTEXT_BASE && (aligned - CONTEXT_BASE) % CONTEXT_STRIDE === CLAIM_COMPLETE && this.contextOf(aligned) < this.contexts;
  }

  private contextOf(aligned: number): number {
    return Math.floor((aligned - CONTEXT_BASE) / CONTEXT_STRIDE);
  }

  /** Index into `enable` of the word at `aligned`, or -1 when no context or source has it. */
  private enableIndex(aligned: number): number {
    const context = Math.floor((aligned - ENABLE_BASE) / ENABLE_STRIDE);
    const word = ((aligned - ENABLE_BASE) % ENABLE_STRIDE) >>> 2;
    return context < this.contexts && word < this.words ? context * this.words + word : -1;
  }

  /** The gateway (PLIC spec §1.4): a high line becomes one request, and no more until completion. */
  private setLine(source: number, level: boolean): void {
    const word = source >>> 5;
    const bit = 1 << (source & 31);
    if (level) {
      this.line[word] |= bit;
      if ((this.inService[word] & bit) === 0) this.pending[word] |= bit;
    } else {
      this.line[word] &= ~bit;
    }
    this.updateOutputs();
  }

  /** The best pending source enabled for `context` above its threshold; ties go to the lowest id (§5). */
  private best(context: number): number {
    let best = 0;
    let bestPriority = this.threshold[context];
    const base = context * this.words;
    for (let word = 0; word < this.words; word++) {
      let candidates = this.pending[word] & this.enable[base + word];
      while (candidates !== 0) {
        const low = candidates & -candidates;
        const source = word * BITS_PER_WORD + (31 - Math.clz32(low));
        if (this.priority[source] > bestPriority) {
          best = source;
          bestPriority = this.priority[source];
        }
        candidates ^= low;
      }
    }
    return best;
  }

  /** Claim (PLIC spec §7): returns the best source and clears its pending bit; 0 when none. */
  private claim(context: number): number {
    const source = this.best(context);
    if (source !== 0) {
      const bit = 1 << (source & 31);
      this.pending[source >>> 5] &= ~bit;
      this.inService[source >>> 5] |= bit;
      this.updateOutputs();
    }
    return source;
  }

  /** Completion (§8): ignored unless the source is enabled for this context; re-opens the gateway. */
  private complete(context: number, source: number): void {
    if (source < 1 || source >= this.sources) return;
    const word = source >>> 5;
    const bit = 1 << (source & 31);
    if ((this.enable[context * this.words + word] & bit) === 0) return;
    this.inService[word] &= ~bit;
    if ((this.line[word] & bit) !== 0) this.pending[word] |= bit;
  }

  private updateOutputs(): void {
    for (let context = 0; context < this.contexts; context++) {
      const level = this.best(context) !== 0 ? 1 : 0;
      if (level !== this.output[context]) {
        this.output[context] = level;
        this.sink.setPending(context >>> 1, (context & 1) === 0 ? MIP_MEIP : MIP_SEIP, level === 1);
      }
    }
  }
}
