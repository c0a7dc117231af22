// A hart's state as plain data and back (snapshots, docs/snapshots.md): registers, CSRs, counters, TLBs.

import { StateError, StateReader, bigintItem, integerItem } from '../memory/state.js';
import type { RamRegion } from '../memory/ram.js';
import type { Hart } from './hart.js';
import { KIND_RESTORED } from './monitor-kinds.js';
import { PMP_ENTRIES } from './pmp.js';
import { TLB_INVALID, TLB_MASK, TLB_SIZE, type Tlb } from './tlb.js';
import { LARGE_ENTRIES, TLB_WAYS } from './tlb-model.js';

/** One emulator TLB (tlb.ts): tags, offsets, hidden tags, and the RAM region of each entry by its index (-1: none). */
interface TlbState {
  tag: Float64Array;
  delta: Float64Array;
  hidden: Float64Array;
  region: Int32Array;
}

/**
 * Everything a hart is between two rounds. The translator's blocks are not here: they are a cache of code
 * the restored hart compiles again. The emulator's TLBs are, with the modelled TLB: which accesses walk
 * the page table (setting A/D bits in guest memory) and count as TLB misses depends on them, so a restored
 * hart must hold exactly the entries the saved one held.
 */
export interface HartSnapshot {
  x: Int32Array;
  f: Int32Array;
  pc: number;
  priv: number;
  frm: number;
  fflags: number;
  /** Numeric CSRs and counters by field name (see NUMBER_FIELDS). */
  numbers: Record<string, number>;
  /** 64-bit CSRs kept as bigints: mcause, scause, mscratch, sscratch, menvcfg, senvcfg, and the counters' offsets. */
  bigints: Record<string, bigint>;
  pmpcfg: bigint[];
  pmpaddr: bigint[];
  waiting: boolean;
  parked: boolean;
  stop: boolean;
  privCycles: Float64Array;
  privMark: number;
  privRunning: number;
  countersSynced: boolean;
  monitorCycles: Float64Array;
  /** tlbSets[view][kind]: kinds read, write, exec. */
  tlbs: TlbState[][];
  tlbModel: ReturnType<Hart['tlbModel']['saveState']>;
  superpages: number[];
}

/** pmpcfg0..15 as saved (the odd ones, which RV64 does not have, as 0). */
const PMP_CFG_CSRS = 16;

/** HartState and HartMemory fields that are plain numbers, with the integers each may hold ('amount': a count). */
const WORD: [number, number] = [-(2 ** 31), 2 ** 32 - 1];
const ADDRESS: [number, number] = [-(2 ** 63), 2 ** 64];
const NUMBER_RANGES = {
  mstatus: WORD, mip: WORD, mipLines: WORD, mie: WORD, medeleg: WORD, mideleg: WORD, mtvec: ADDRESS, stvec: ADDRESS,
  mepc: ADDRESS, sepc: ADDRESS, mtval: ADDRESS, stval: ADDRESS, mcounteren: WORD, scounteren: WORD, mcountinhibit: WORD,
  satpMode: [0, 15], satpAsid: [0, 0xffff], satpPpn: [0, 2 ** 44 - 1], instret: 'amount', stallCycles: 'amount',
  idleCycles: 'amount', tlbMisses: 'amount', secondLevelHits: 'amount', timingCpu: [0, 4095],
} as const;
const NUMBER_FIELDS = Object.keys(NUMBER_RANGES) as (keyof typeof NUMBER_RANGES)[];
const BIGINT_FIELDS = ['mcause', 'scause', 'mscratch', 'sscratch', 'menvcfg', 'senvcfg', 'cycleAdjust', 'instretAdjust'] as const;
const KINDS = ['read', 'write', 'exec'] as const;

/** `regions`: the machine's RAM regions, which TLB entries point into (saved by index). */
export function saveHart(h: Hart, regions: readonly RamRegion[]): HartSnapshot {
  const numbers: Record<string, number> = {};
  for (const key of NUMBER_FIELDS) numbers[key] = h[key];
  const bigints: Record<string, bigint> = {};
  for (const key of BIGINT_FIELDS) bigints[key] = h[key];
  const tlb = (t: Tlb): TlbState => ({
    tag: t.tag.slice(), delta: t.delta.slice(), hidden: t.hidden.slice(),
    region: Int32Array.from({ length: TLB_SIZE }, (_, i) => (t.mem[i] === undefined ? -1 : regions.indexOf(t.mem[i]!))),
  });
  return {
    x: h.x.slice(), f: h.f.slice(), pc: h.pc, priv: h.priv, frm: h.frm, fflags: h.fflags, numbers, bigints,
    pmpcfg: Array.from({ length: PMP_CFG_CSRS }, (_, n) => ((n & 1) === 0 ? h.pmp.readCfg(n) : 0n)), pmpaddr: [...h.pmp.addr], waiting: h.waiting, parked: h.parked, stop: h.stop,
    ...h.runState(),
    monitorCycles: h.monitorCycles.slice(),
    tlbs: h.tlbSets.map((set) => KINDS.map((kind) => tlb(set[kind]))),
    tlbModel: h.tlbModel.saveState(),
    superpages: h.superpageKeys(),
  };
}

/**
 * Puts a saved hart back into `h`, a hart of a machine built like the saved one that has not run: checks
 * every field first (StateError), then writes them. `path` names the hart in errors.
 */
export function restoreHart(h: Hart, state: unknown, regions: readonly RamRegion[], path: string): void {
  const r = new StateReader(state, path);
  const x = r.typed('x', Int32Array, 64);
  const f = r.typed('f', Int32Array, 64);
  const pc = r.number('pc', -(2 ** 63), 2 ** 64);
  const priv = r.number('priv', 0, 3);
  if (priv === 2) throw new StateError(`${path}.priv: 2 is no privilege level of this hart`);
  const frm = r.number('frm', 0, 7);
  const fflags = r.number('fflags', 0, 0x1f);
  const numbersReader = r.object('numbers');
  const numbers = NUMBER_FIELDS.map((key) => {
    const range = NUMBER_RANGES[key];
    return range === 'amount' ? numbersReader.amount(key) : numbersReader.number(key, range[0], range[1]);
  });
  const bigintsReader = r.object('bigints');
  const bigints = BIGINT_FIELDS.map((key) => bigintsReader.bigint(key));
  const pmpcfg = r.array('pmpcfg', bigintItem, PMP_CFG_CSRS);
  const pmpaddr = r.array('pmpaddr', bigintItem, PMP_ENTRIES);
  const waiting = r.boolean('waiting');
  const parked = r.boolean('parked');
  const stop = r.boolean('stop');
  const run = {
    privCycles: r.amounts('privCycles', Float64Array, 4),
    privMark: r.amount('privMark'),
    privRunning: r.number('privRunning', 0, 3),
    countersSynced: r.boolean('countersSynced'),
  };
  const monitorCycles = r.amounts('monitorCycles', Float64Array, 4);
  const tlbs = r.array('tlbs', (value, setPath) => {
    const set = new StateReader({ kinds: value }, setPath);
    return set.array('kinds', (tlbValue, tlbPath) => {
      const t = new StateReader(tlbValue, tlbPath);
      const state = {
        tag: t.typed('tag', Float64Array, TLB_SIZE), delta: t.typed('delta', Float64Array, TLB_SIZE),
        hidden: t.typed('hidden', Float64Array, TLB_SIZE), region: t.typed('region', Int32Array, TLB_SIZE),
      };
      // A valid entry must lead into a page of its region: the fast path indexes the region's arrays with it.
      for (let i = 0; i < TLB_SIZE; i++) {
        const index = state.region[i]!;
        if (index < -1 || index >= regions.length) throw new StateError(`${tlbPath}.region: an entry in no RAM region`);
        for (const tag of [state.tag[i]!, state.hidden[i]!]) {
          if (tag === TLB_INVALID) continue;
          const offset = tag * 4096 + state.delta[i]!;
          if (index < 0 || !Number.isInteger(tag) || (tag & TLB_MASK) !== i || !Number.isInteger(offset) || offset < 0 ||
            offset % 4096 !== 0 || offset + 4096 > regions[index]!.size) {
            throw new StateError(`${tlbPath}: entry ${i} leads outside RAM`);
          }
        }
      }
      return state;
    }, KINDS.length);
  }, h.tlbSets.length);
  const m = r.object('tlbModel');
  const model = {
    tag: m.typed('tag', Float64Array, TLB_WAYS * TLB_SIZE), asid: m.typed('asid', Int32Array, TLB_WAYS * TLB_SIZE),
    allows: m.typed('allows', Uint8Array, TLB_WAYS * TLB_SIZE), page: m.typed('page', Float64Array, TLB_WAYS * TLB_SIZE),
    largeTag: m.typed('largeTag', Float64Array, LARGE_ENTRIES), largeAsid: m.typed('largeAsid', Int32Array, LARGE_ENTRIES),
    largeAllows: m.typed('largeAllows', Uint8Array, LARGE_ENTRIES), largeBase: m.typed('largeBase', Float64Array, LARGE_ENTRIES),
  };
  const superpages = r.array('superpages', integerItem(-Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER));

  h.x.set(x);
  h.f.set(f);
  h.pc = pc;
  h.priv = priv;
  h.frm = frm;
  h.fflags = fflags;
  NUMBER_FIELDS.forEach((key, i) => { h[key] = numbers[i]!; });
  BIGINT_FIELDS.forEach((key, i) => { h[key] = bigints[i]!; });
  h.pmp.restore(pmpcfg, pmpaddr);
  h.waiting = waiting;
  h.parked = parked;
  h.stop = stop;
  h.restoreRunState(run);
  h.monitorCycles.set(monitorCycles);
  // The split by kind is not saved: what was charged before the snapshot is one kind of its own, so the kinds
  // still add up to the monitor's cycles.
  h.monitorKindCycles.fill(0);
  h.monitorKindCycles[KIND_RESTORED] = monitorCycles.reduce((a, b) => a + b, 0);
  h.tlbSets.forEach((set, view) => KINDS.forEach((kind, k) => {
    const saved = tlbs[view]![k]!;
    const t = set[kind];
    t.tag.set(saved.tag);
    t.delta.set(saved.delta);
    t.hidden.set(saved.hidden);
    saved.region.forEach((index, i) => { if (index >= 0) t.mem[i] = regions[index]!; });
  }));
  h.tlbModel.restoreState(model);
  h.restoreSuperpages(superpages);
  // Which tables serve fetches and data follows from priv and mstatus (MPRV, MPP, SUM).
  h.updateTranslation();
}
