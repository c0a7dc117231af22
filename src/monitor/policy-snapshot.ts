// Reading the NUMA policy's saved state (a whole monitor snapshot's `policy`), checked field by field: the
// driver's clock and statistics, and each cell's records of its pages and groups.

import { MAX_AMOUNT, StateError, StateReader, integerItem } from '../memory/state.js';
import type { LargePageCounts, LargePageState } from './large-pages.js';
import { BLOCK_PAGES } from './machine-memory.js';
import { LocalityHistory, type LocalityState } from './locality-history.js';
import type { CellPolicyState, PolicyCounts, PolicyState } from './numa-policy.js';

function readCounts(r: StateReader, nodes: number): PolicyCounts {
  const perNode = (key: string): number[] => r.array(key, integerItem(0, MAX_AMOUNT), nodes);
  return {
    migratedTo: perNode('migratedTo'), replicatedTo: perNode('replicatedTo'), leftWriteShared: r.amount('leftWriteShared'),
    leftFrozen: r.amount('leftFrozen'), leftOther: r.amount('leftOther'), cycles: r.amount('cycles'),
  };
}

/** Pairs of (key, value): a key is VM id × 2^32 + guest page or group. */
function readPairs(r: StateReader, key: string): Float64Array {
  const a = r.amounts(key, Float64Array);
  if (a.length % 2 !== 0) throw new StateError(`${r.path}.${key}: not pairs`);
  return a;
}

/**
 * The policy's state for a monitor of `cells` cells, in which VM `vm` may use the cells `cellsOf(vm)` (undefined:
 * no such VM): each cell's records are of VMs that may use it.
 */
export function readPolicy(r: StateReader, nodes: number, cells: number, cellsOf: (vm: number) => readonly number[] | undefined): PolicyState {
  const p = r.object('parameters');
  const pairs = (key: string): Float64Array => readPairs(r, key);
  const large = r.object('large');
  const cellStates = r.array('cells', (v, path) => readCellPolicy(new StateReader(v, path)));
  if (cellStates.length !== cells) throw new StateError(`${r.path}.cells: ${cellStates.length} cells' policy states, and the machine has ${cells} cells`);
  cellStates.forEach((state, cell) => {
    for (const key of [...keysOf(state.moves), ...keysOf(state.frozenUntil), ...keysOf(state.large.moves), ...keysOf(state.large.frozenUntil), ...state.large.replicated]) {
      const vm = Math.floor(key / 2 ** 32);
      if (!(cellsOf(vm)?.includes(cell) ?? false)) throw new StateError(`${r.path}.cells[${cell}]: a record of VM ${vm}, which ${cellsOf(vm) === undefined ? 'is not in the snapshot' : `is not in cell ${cell}`}`);
    }
  });
  return {
    parameters: {
      hotMisses: p.number('hotMisses', 1, MAX_AMOUNT), tlbHotMisses: p.number('tlbHotMisses', 1, MAX_AMOUNT),
      sharedHotMisses: p.number('sharedHotMisses', 0, MAX_AMOUNT), tlbSharedHotMisses: p.number('tlbSharedHotMisses', 0, MAX_AMOUNT), migrateShare: p.number('migrateShare'), writeSharedWrites: p.number('writeSharedWrites', 1, MAX_AMOUNT),
      intervalRounds: p.number('intervalRounds', 1, MAX_AMOUNT), moveLimit: p.number('moveLimit', 1, MAX_AMOUNT), freezeIntervals: p.number('freezeIntervals', 0, MAX_AMOUNT),
      blockPages: p.number('blockPages', 0, BLOCK_PAGES), coalescePages: p.number('coalescePages', 0, BLOCK_PAGES),
      replicateGroupPages: p.number('replicateGroupPages', 0, BLOCK_PAGES),
    },
    enabled: r.boolean('enabled'), rounds: r.amount('rounds'), interval: r.amount('interval'),
    locality: readLocality(r.object('locality')), missesAtInterval: { local: r.object('missesAtInterval').amount('local'), remote: r.object('missesAtInterval').amount('remote') },
    counts: readCounts(r.object('counts'), nodes),
    perVm: r.array('perVm', (v, path) => { const e = new StateReader(v, path); return { vm: e.number('vm', 0, 2 ** 16), counts: readCounts(e.object('counts'), nodes) }; }),
    large: {
      counts: readLargePageCounts(large.object('counts'), nodes),
      perVm: large.array('perVm', (v, path) => { const e = new StateReader(v, path); return { vm: e.number('vm', 0, 2 ** 16), counts: readLargePageCounts(e.object('counts'), nodes) }; }),
    },
    cells: cellStates,
  };
}

/** The keys of (key, value) pairs. */
function keysOf(pairs: Float64Array): number[] {
  return Array.from({ length: pairs.length / 2 }, (_, i) => pairs[2 * i]!);
}

function readCellPolicy(r: StateReader): CellPolicyState {
  return { moves: readPairs(r, 'moves'), frozenUntil: readPairs(r, 'frozenUntil'), large: readLargePages(r.object('large')) };
}

function readLargePageCounts(r: StateReader, nodes: number): LargePageCounts {
  const perNode = (key: string): number[] => r.array(key, integerItem(0, MAX_AMOUNT), nodes);
  return {
    blocksMovedTo: perNode('blocksMovedTo'), coalescedOn: perNode('coalescedOn'), pagesCopied: r.amount('pagesCopied'), noBlock: r.amount('noBlock'),
    broken: r.amount('broken'), breakCycles: r.amount('breakCycles'), moveCycles: r.amount('moveCycles'), coalesceCycles: r.amount('coalesceCycles'),
    groupsReplicatedOn: perNode('groupsReplicatedOn'), groupsCollapsed: r.amount('groupsCollapsed'),
    groupsCollapsedByWrites: r.amount('groupsCollapsedByWrites'), replicateCycles: r.amount('replicateCycles'),
  };
}

function readLargePages(r: StateReader): LargePageState {
  return { swept: r.amount('swept'), moves: readPairs(r, 'moves'), frozenUntil: readPairs(r, 'frozenUntil'), replicated: r.amounts('replicated', Float64Array) };
}

function readLocality(r: StateReader): LocalityState {
  const samples = r.array('samples', (v, path) => {
    const e = new StateReader(v, path);
    return { endCycles: e.amount('endCycles'), local: e.amount('local'), remote: e.amount('remote') };
  });
  const s = { samples, width: r.number('width', 1, MAX_AMOUNT), filled: r.number('filled', 0, MAX_AMOUNT) };
  try {
    new LocalityHistory().restoreState(s);
  } catch (error) {
    throw new StateError(`${r.path}: ${(error as Error).message}`);
  }
  return s;
}
