// Reading the NUMA policy's saved state (a whole monitor snapshot's `policy`), checked field by field.

import { MAX_AMOUNT, StateError, StateReader, integerItem } from '../memory/state.js';
import type { LargePageCounts, LargePageState } from './large-pages.js';
import { BLOCK_PAGES } from './machine-memory.js';
import { LocalityHistory, type LocalityState } from './locality-history.js';
import type { PolicyCounts, PolicyState } from './numa-policy.js';

function readCounts(r: StateReader, nodes: number): PolicyCounts {
  const perNode = (key: string): number[] => r.array(key, integerItem(0, MAX_AMOUNT), nodes);
  return {
    migratedTo: perNode('migratedTo'), replicatedTo: perNode('replicatedTo'), leftWriteShared: r.amount('leftWriteShared'),
    leftFrozen: r.amount('leftFrozen'), leftOther: r.amount('leftOther'), cycles: r.amount('cycles'),
  };
}

export function readPolicy(r: StateReader, nodes: number): PolicyState {
  const p = r.object('parameters');
  const pairs = (key: string): Float64Array => {
    const a = r.amounts(key, Float64Array);
    if (a.length % 2 !== 0) throw new StateError(`${r.path}.${key}: not pairs`);
    return a;
  };
  return {
    parameters: {
      hotMisses: p.number('hotMisses', 1, MAX_AMOUNT), tlbHotMisses: p.number('tlbHotMisses', 1, MAX_AMOUNT),
      sharedHotMisses: p.number('sharedHotMisses', 0, MAX_AMOUNT), tlbSharedHotMisses: p.number('tlbSharedHotMisses', 0, MAX_AMOUNT), migrateShare: p.number('migrateShare'), writeSharedWrites: p.number('writeSharedWrites', 1, MAX_AMOUNT),
      intervalRounds: p.number('intervalRounds', 1, MAX_AMOUNT), moveLimit: p.number('moveLimit', 1, MAX_AMOUNT), freezeIntervals: p.number('freezeIntervals', 0, MAX_AMOUNT),
      blockPages: p.number('blockPages', 0, BLOCK_PAGES), coalescePages: p.number('coalescePages', 0, BLOCK_PAGES),
      // Snapshots from before whole-group replication have none: it was off.
      replicateGroupPages: p.has('replicateGroupPages') ? p.number('replicateGroupPages', 0, BLOCK_PAGES) : 0,
    },
    enabled: r.boolean('enabled'), rounds: r.amount('rounds'), interval: r.amount('interval'), moves: pairs('moves'), frozenUntil: pairs('frozenUntil'),
    locality: readLocality(r.object('locality')), missesAtInterval: { local: r.object('missesAtInterval').amount('local'), remote: r.object('missesAtInterval').amount('remote') },
    counts: readCounts(r.object('counts'), nodes),
    perVm: r.array('perVm', (v, path) => { const e = new StateReader(v, path); return { vm: e.number('vm', 0, 2 ** 16), counts: readCounts(e.object('counts'), nodes) }; }),
    large: readLargePages(r.object('large'), nodes),
  };
}

function readLargePageCounts(r: StateReader, nodes: number): LargePageCounts {
  const perNode = (key: string): number[] => r.array(key, integerItem(0, MAX_AMOUNT), nodes);
  return {
    blocksMovedTo: perNode('blocksMovedTo'), coalescedOn: perNode('coalescedOn'), pagesCopied: r.amount('pagesCopied'), noBlock: r.amount('noBlock'),
    broken: r.amount('broken'), breakCycles: r.amount('breakCycles'), moveCycles: r.amount('moveCycles'), coalesceCycles: r.amount('coalesceCycles'),
    // Snapshots from before whole-group replication have none of these: it was off.
    groupsReplicatedOn: r.has('groupsReplicatedOn') ? perNode('groupsReplicatedOn') : new Array<number>(nodes).fill(0),
    groupsCollapsed: r.has('groupsCollapsed') ? r.amount('groupsCollapsed') : 0,
    groupsCollapsedByWrites: r.has('groupsCollapsedByWrites') ? r.amount('groupsCollapsedByWrites') : 0,
    replicateCycles: r.has('replicateCycles') ? r.amount('replicateCycles') : 0,
  };
}

function readLargePages(r: StateReader, nodes: number): LargePageState {
  const pairs = (key: string): Float64Array => {
    const a = r.amounts(key, Float64Array);
    if (a.length % 2 !== 0) throw new StateError(`${r.path}.${key}: not pairs`);
    return a;
  };
  return {
    swept: r.amount('swept'), moves: pairs('moves'), frozenUntil: pairs('frozenUntil'),
    replicated: r.has('replicated') ? r.amounts('replicated', Float64Array) : new Float64Array(0), counts: readLargePageCounts(r.object('counts'), nodes),
    perVm: r.array('perVm', (v, path) => { const e = new StateReader(v, path); return { vm: e.number('vm', 0, 2 ** 16), counts: readLargePageCounts(e.object('counts'), nodes) }; }),
  };
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
