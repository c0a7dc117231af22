// One VM under the monitor as plain data and back (docs/snapshots.md): its machine without RAM, and the
// monitor's state for it (pmap, tables, second-level and G-stage TLBs, exits, accounts, place in the
// scheduler). Every saved machine address can be moved to another page (`Relocation`), for a VM restored
// into a running monitor on fresh machine pages.

import type { ExitReason } from '../board/machine.js';
import { restoreMachine, saveMachine, SnapshotError } from '../board/snapshot.js';
import { TLB_INVALID, TLB_SIZE, type LargeEntries, type SecondLevelTlb } from '../cpu/tlb.js';
import { LARGE_ENTRIES, TLB_WAYS } from '../cpu/tlb-model.js';
import { VirtioNet } from '../devices/virtio/net.js';
import { BALLOON_ACCOUNT_KEYS, type BalloonAccount } from './balloon.js';
import { LARGE_PAGE_BYTES, PERM_RWX } from '../memory/bus.js';
import type { RamRegion } from '../memory/ram.js';
import { MAX_AMOUNT, StateError, StateReader, integerItem } from '../memory/state.js';
import { FREE, PAGE } from './machine-memory.js';
import type { Monitor } from './monitor.js';
import { PMAP_FLAGS, PMAP_SCATTERED, type PmapState } from './pmap.js';
import type { SchedulerVmState } from './scheduler.js';
import type { MmuMode, VirtualMachine, VmState } from './vm.js';

/** Numbers per vCPU in `moves`. */
const MOVE_FIELDS = 7;

/** A second-level TLB (one view and kind of access): its 4 KiB entries and its large ones, regions by index. */
interface SecondLevelState {
  tag: Float64Array;
  asid: Int32Array;
  delta: Float64Array;
  region: Int32Array;
  levels: Uint8Array;
  allows: Uint8Array;
  largeTag: Float64Array;
  largeAsid: Int32Array;
  largeAllows: Uint8Array;
  largeBase: Float64Array;
  largeLevels: Uint8Array;
  largeRegion: Int32Array;
}

/** A VM as plain data. Its machine pages' contents are saved beside it, by machine page number (monitor-snapshot.ts). */
export interface VmSnapshot {
  id: number;
  name: string;
  vcpus: number;
  memoryBytes: number;
  mmu: MmuMode;
  secondLevelEntries: number;
  /** Entries of each vCPU's G-stage TLB (0: none). */
  gStageTlbEntries: number;
  /** A network card on the monitor's subnet (in the first virtio slot). */
  net: boolean;
  /** False for a VM that opted out of sharing pages with other VMs (`share: false`). */
  sharing: boolean;
  /** Its balloon's account (balloon.ts) when it has a balloon (after the network card), else null. */
  balloon: BalloonAccount | null;
  state: VmState;
  reason: string;
  /** How its guest ended it, when it did. */
  exit: ExitReason | null;
  outOfMemory: string | null;
  machine: ReturnType<typeof saveMachine>;
  /** Per vCPU, its second-level TLBs by view and kind of access (software mmu), else null. */
  secondLevel: (SecondLevelState[] | null)[];
  gStageTlb: ({ key: Float64Array; used: Float64Array; clock: number; hits: number; misses: number } | null)[];
  pmap: PmapState;
  /** The machine pages of its tables (monitor-data.ts), table by table. */
  tables: number[][];
  exits: Record<string, number>;
  monitorCalls: Record<string, number>;
  vcpuExits: Record<string, number>[];
  /** The monitor's record of each vCPU: its last physical CPU (-1: none), world switches, ready cycles. */
  lastPcpu: Int32Array;
  worldSwitches: Float64Array;
  readyCycles: Float64Array;
  /**
   * Per vCPU, 7 numbers: its moves within its node, to another node and to another cell, the cycles of those not
   * yet charged, and the cycles each kind cost.
   */
  moves: Float64Array;
  /** Its part of the scheduler while it runs (null once it has ended). */
  scheduler: SchedulerVmState | null;
}

const STATES: readonly VmState[] = ['running', 'off', 'crashed', 'stopped'];
const EXIT_KINDS: readonly ExitReason['kind'][] = ['poweroff', 'reboot', 'htif', 'limit', 'quit'];
const MAX_LEVELS = 5;
/** The most users a machine page may have (machine-memory.ts counts them in 16 bits), less one for another VM's. */
const MAX_USERS = 0xfffe;

function sorted(map: ReadonlyMap<string, number>): Record<string, number> {
  return Object.fromEntries([...map].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** `h`'s second-level TLBs as plain data; entries point into `regions` by index. */
function saveSecondLevel(levels: readonly (readonly SecondLevelTlb[])[], regions: readonly RamRegion[]): SecondLevelState[] {
  const index = (mem: readonly (RamRegion | undefined)[], length: number): Int32Array =>
    Int32Array.from({ length }, (_, i) => (mem[i] === undefined ? -1 : regions.indexOf(mem[i]!)));
  return levels.flatMap((level) => level.map((t) => ({
    tag: t.tag.slice(), asid: t.asid.slice(), delta: t.delta.slice(), region: index(t.mem, t.size), levels: t.levels.slice(), allows: t.allows.slice(),
    largeTag: t.large.tag.slice(), largeAsid: t.large.asid.slice(), largeAllows: t.large.allows.slice(), largeBase: t.large.base.slice(),
    largeLevels: t.large.levels.slice(), largeRegion: index(t.large.mem, t.large.size),
  })));
}

/**
 * VM `vm` of `monitor` as plain data, between two rounds. Throws SnapshotError while one of its vCPUs waits
 * at an exit (a held page): its instruction is half done, for the monitor.
 */
export function saveVm(monitor: Monitor, vm: VirtualMachine): VmSnapshot {
  const regions = monitor.memory.regions;
  if (vm.vcpus.some((h) => h.suspended)) throw new SnapshotError(`VM ${vm.name}: a vCPU waits on a page the monitor holds; save it once the page is back`);
  const config = { harts: vm.vcpus.length, nodes: [{ memoryBytes: vm.pmap.size, harts: vm.vcpus.map((_, i) => i) }] };
  const records = vm.vcpus.map((_, i) => monitor.vcpuRecord(vm, i));
  const exit = vm.machine.exit;
  return {
    id: vm.id, name: vm.name, vcpus: vm.vcpus.length, memoryBytes: vm.pmap.size, mmu: vm.mmu, secondLevelEntries: vm.tables.secondLevelEntries,
    gStageTlbEntries: vm.vcpus[0]!.gStageTlb?.entries ?? 0,
    net: vm.machine.virtioTransports()[0]?.device instanceof VirtioNet, sharing: vm.sharesWithOthers, balloon: vm.balloon?.saveState() ?? null,
    state: vm.state, reason: vm.reason, exit: exit === undefined ? null : { ...exit }, outOfMemory: vm.outOfMemory ?? null,
    machine: saveMachine(vm.machine, config),
    secondLevel: vm.vcpus.map((h) => (h.secondLevel === undefined ? null : saveSecondLevel(h.secondLevel.levels, regions))),
    gStageTlb: vm.vcpus.map((h) => (h.gStageTlb === undefined ? null : { ...h.gStageTlb.saveState(), hits: h.gStageTlb.hits, misses: h.gStageTlb.misses })),
    pmap: vm.pmap.saveState(),
    tables: vm.state === 'running' ? vm.tables.savePages() : [],
    exits: sorted(vm.exits), monitorCalls: sorted(vm.monitorCalls), vcpuExits: vm.vcpuExits.map(sorted),
    lastPcpu: Int32Array.from(records, (r) => r.lastPcpu), worldSwitches: Float64Array.from(records, (r) => r.worldSwitches),
    readyCycles: Float64Array.from(records, (r) => r.readyCycles),
    moves: Float64Array.from(records.flatMap((r) => [r.cpuMoves, r.nodeMoves, r.cellMigrations, r.owedMigration, r.cpuMoveCycles, r.nodeMoveCycles, r.cellMoveCycles])),
    scheduler: vm.state === 'running' ? monitor.scheduler.saveVm(vm.id) : null,
  };
}

/** Machine pages a saved VM maps: its pmap's (each once) and, apart, its replicas. */
export function savedPages(pmap: PmapState, nodes: number): { pages: number[]; replicas: number[] } {
  const pages = new Set<number>();
  for (const mpn of pmap.machine) if (mpn !== FREE) pages.add(mpn);
  const replicas: number[] = [];
  for (let i = 0; i < pmap.replicas.length; i += 1 + nodes) {
    for (let n = 0; n < nodes; n++) if (pmap.replicas[i + 1 + n] !== FREE) replicas.push(pmap.replicas[i + 1 + n]!);
  }
  return { pages: [...pages], replicas };
}

/** A saved VM read back and checked, but for its machine, which `restoreVmState` checks as it restores it. */
export type ReadVm = Omit<VmSnapshot, 'exits' | 'monitorCalls' | 'vcpuExits' | 'machine'> & {
  exits: Map<string, number>;
  monitorCalls: Map<string, number>;
  vcpuExits: Map<string, number>[];
  machine: unknown;
};

function counts(r: StateReader, key: string): Map<string, number> {
  const o = r.object(key);
  const value = r.value(key) as Record<string, unknown>;
  return new Map(Object.keys(value).map((k) => [k, o.amount(k)]));
}

/**
 * Reads a saved VM (`path` names it in errors), checking every field against itself: `nodes` and `pages` are
 * the machine's it was saved on. Throws StateError.
 */
export function readVm(value: unknown, path: string, nodes: number, pages: number, pcpus: number): ReadVm {
  const r = new StateReader(value, path);
  const vcpus = r.number('vcpus', 1, 1024);
  const memoryBytes = r.number('memoryBytes', PAGE, MAX_AMOUNT);
  if (memoryBytes % PAGE !== 0) throw new StateError(`${path}.memoryBytes: not whole pages`);
  const guestPages = memoryBytes / PAGE;
  const mmu = r.string('mmu');
  if (mmu !== 'software' && mmu !== 'nested') throw new StateError(`${path}.mmu: '${mmu}'`);
  const state = r.string('state') as VmState;
  if (!STATES.includes(state)) throw new StateError(`${path}.state: '${state}'`);
  let exit: ExitReason | null = null;
  if (r.value('exit') !== null) {
    const e = r.object('exit');
    const kind = e.string('kind') as ExitReason['kind'];
    if (!EXIT_KINDS.includes(kind)) throw new StateError(`${path}.exit.kind: '${kind}'`);
    exit = kind === 'poweroff' || kind === 'htif' ? { kind, code: e.number('code', -(2 ** 53), 2 ** 53) } : { kind } as ExitReason;
  }
  const perVcpu = <T>(key: string, item: (v: unknown, p: string) => T): T[] => r.array(key, item, vcpus);
  const secondLevelEntries = r.number('secondLevelEntries', 32, 2 ** 20);
  const gStageTlbEntries = r.number('gStageTlbEntries', 0, 4096);
  const secondLevel = perVcpu('secondLevel', (v, p) => (v === null ? null : readSecondLevel(v, p, secondLevelEntries)));
  const gStageTlb = perVcpu('gStageTlb', (v, p) => {
    if (v === null) return null;
    const g = new StateReader(v, p);
    return {
      key: g.typed('key', Float64Array, gStageTlbEntries), used: g.amounts('used', Float64Array, gStageTlbEntries), clock: g.amount('clock'),
      hits: g.amount('hits'), misses: g.amount('misses'),
    };
  });
  const tables = r.array('tables', (v, p) => new StateReader({ list: v }, p).array('list', integerItem(0, pages - 1)));
  const lastPcpu = r.typed('lastPcpu', Int32Array, vcpus);
  if (lastPcpu.some((p) => p < -1 || p >= pcpus)) throw new StateError(`${path}.lastPcpu: no such CPU`);
  let scheduler: SchedulerVmState | null = null;
  if (state === 'running') {
    const s = r.object('scheduler');
    const pcpuList = (key: string, limit: number): Int32Array => {
      const a = s.typed(key, Int32Array, pcpus);
      if (a.some((x) => x < -1 || x >= limit)) throw new StateError(`${s.path}.${key}: out of range`);
      return a;
    };
    scheduler = {
      id: s.number('id', 0, 2 ** 16), share: s.number('share'), homeNode: s.number('homeNode', -1, nodes - 1), virtualTime: s.amount('virtualTime'),
      runnableLastRound: s.boolean('runnableLastRound'), cycles: s.amounts('cycles', Float64Array, vcpus), lastPcpu: s.typed('lastPcpu', Int32Array, vcpus),
      roundsHeld: s.amounts('roundsHeld', Float64Array, vcpus), holding: pcpuList('holding', vcpus), lastOn: pcpuList('lastOn', vcpus),
    };
    if (!(scheduler.share > 0 && scheduler.share <= 2 ** 20)) throw new StateError(`${s.path}.share: ${scheduler.share}`);
    if (scheduler.lastPcpu.some((p) => p < -1 || p >= pcpus)) throw new StateError(`${s.path}.lastPcpu: no such CPU`);
  }
  return {
    id: r.number('id', 0, 2 ** 16), name: r.string('name'), vcpus, memoryBytes, mmu, secondLevelEntries, gStageTlbEntries, net: r.boolean('net'), sharing: r.boolean('sharing'),
    balloon: readBalloon(r),
    state, reason: r.string('reason'), exit, outOfMemory: r.value('outOfMemory') === null ? null : r.string('outOfMemory'),
    machine: r.value('machine'), secondLevel, gStageTlb, pmap: readPmap(r.object('pmap'), guestPages, nodes, pages), tables,
    exits: counts(r, 'exits'), monitorCalls: counts(r, 'monitorCalls'),
    vcpuExits: perVcpu('vcpuExits', (v, p) => counts(new StateReader({ c: v }, p), 'c')),
    lastPcpu, worldSwitches: r.amounts('worldSwitches', Float64Array, vcpus), readyCycles: r.amounts('readyCycles', Float64Array, vcpus),
    moves: r.amounts('moves', Float64Array, MOVE_FIELDS * vcpus), scheduler,
  };
}

function readPmap(p: StateReader, guestPages: number, nodes: number, pages: number): PmapState {
  const groups = Math.ceil(guestPages / (LARGE_PAGE_BYTES / PAGE));
  const machine = p.typed('machine', Int32Array, guestPages);
  if (machine.some((mpn) => mpn < FREE || mpn >= pages)) throw new StateError(`${p.path}.machine: a page outside the machine`);
  // The memmap counts a page's users in 16 bits.
  const users = new Map<number, number>();
  for (const mpn of machine) {
    if (mpn === FREE) continue;
    const n = (users.get(mpn) ?? 0) + 1;
    if (n > MAX_USERS) throw new StateError(`${p.path}.machine: page ${mpn} mapped ${n} times`);
    users.set(mpn, n);
  }
  const perm = p.typed('perm', Uint8Array, guestPages);
  if (perm.some((a) => (a & ~PERM_RWX) !== 0)) throw new StateError(`${p.path}.perm: not permissions`);
  const flags = p.typed('flags', Uint8Array, guestPages);
  if (flags.some((f) => (f & ~PMAP_FLAGS) !== 0)) throw new StateError(`${p.path}.flags: unknown flags`);
  const blocks = p.typed('blocks', Int32Array, groups);
  if (blocks.some((b) => b < PMAP_SCATTERED || b >= pages)) throw new StateError(`${p.path}.blocks: a block outside the machine`);
  const replicas = p.typed('replicas', Int32Array);
  if (replicas.length % (1 + nodes) !== 0) throw new StateError(`${p.path}.replicas: not a page and its copies by node`);
  for (let i = 0; i < replicas.length; i += 1 + nodes) {
    if (replicas[i]! < 0 || replicas[i]! >= guestPages || machine[replicas[i]!] === FREE) throw new StateError(`${p.path}.replicas: a copy of a page with none`);
    for (let n = 1; n <= nodes; n++) if (replicas[i + n]! < FREE || replicas[i + n]! >= pages) throw new StateError(`${p.path}.replicas: a copy outside the machine`);
  }
  return {
    machine, perm, flags, blocks, replicas, readerNode: p.number('readerNode', -1, nodes - 1), replicasMade: p.amount('replicasMade'),
    collapses: p.amount('collapses'), groupsBroken: p.amount('groupsBroken'), homeNode: p.number('homeNode', 0, nodes - 1),
  };
}

function readSecondLevel(value: unknown, path: string, entries: number): SecondLevelState[] {
  const large = entries / 32;
  return new StateReader({ tables: value }, path).array('tables', (v, p) => {
    const t = new StateReader(v, p);
    const s: SecondLevelState = {
      tag: t.typed('tag', Float64Array, entries), asid: t.typed('asid', Int32Array, entries), delta: t.typed('delta', Float64Array, entries),
      region: t.typed('region', Int32Array, entries), levels: t.typed('levels', Uint8Array, entries), allows: t.typed('allows', Uint8Array, entries),
      largeTag: t.typed('largeTag', Float64Array, large), largeAsid: t.typed('largeAsid', Int32Array, large), largeAllows: t.typed('largeAllows', Uint8Array, large),
      largeBase: t.typed('largeBase', Float64Array, large), largeLevels: t.typed('largeLevels', Uint8Array, large), largeRegion: t.typed('largeRegion', Int32Array, large),
    };
    if ([...s.levels, ...s.largeLevels].some((l) => l > MAX_LEVELS) || [...s.allows, ...s.largeAllows].some((a) => (a & ~PERM_RWX) !== 0)) {
      throw new StateError(`${p}: levels or permissions out of range`);
    }
    return s;
  }, 9);
}

/**
 * Where a saved VM's machine addresses are now. `page`: the new machine address of the page saved at
 * `address` (page-aligned), or undefined if the VM has no such page here; `block`: the same for the first
 * address of a 2 MiB block a large TLB entry maps, if the group is one block here too. `from`: the saved
 * machine's RAM regions' bases, by index.
 */
export interface Relocation {
  from: readonly number[];
  page(address: number): number | undefined;
  block(address: number): number | undefined;
}

/** The index of the region of `regions` holding machine address `address` (-1: none). */
function regionIndex(regions: readonly RamRegion[], address: number): number {
  return regions.findIndex((r) => address >= r.base && address < r.end);
}

/**
 * Moves the 4 KiB entries of a TLB's arrays (`tags`: the tags whose entries are valid, TLB_INVALID where not)
 * by `reloc`: a valid entry whose page the VM no longer has is dropped (its tags made invalid); stale entries
 * keep their region only where it exists here.
 */
function relocateSmall(tags: Float64Array[], delta: Float64Array, region: Int32Array, reloc: Relocation, regions: readonly RamRegion[]): void {
  for (let i = 0; i < delta.length; i++) {
    const vpn = tags.find((t) => t[i] !== TLB_INVALID)?.[i];
    const r = region[i]!;
    if (vpn === undefined) {
      if (r >= regions.length) region[i] = -1;
      continue;
    }
    const address = r >= 0 && r < reloc.from.length ? reloc.from[r]! + vpn * PAGE + delta[i]! : NaN;
    const to = Number.isInteger(address) && address % PAGE === 0 ? reloc.page(address) : undefined;
    const index = to === undefined ? -1 : regionIndex(regions, to);
    if (index < 0) {
      for (const t of tags) t[i] = TLB_INVALID;
      region[i] = -1;
      continue;
    }
    region[i] = index;
    delta[i] = to! - regions[index]!.base - vpn * PAGE;
  }
}

/** A machine snapshot of a VM's machine with its TLBs' and reservations' machine addresses moved by `reloc` (copies of what changes). */
function relocateMachine(value: unknown, reloc: Relocation, regions: readonly RamRegion[]): unknown {
  if (typeof value !== 'object' || value === null) return value;
  const m = { ...(value as Record<string, unknown>) };
  if (Array.isArray(m.harts)) {
    m.harts = m.harts.map((hart: unknown) => {
      if (typeof hart !== 'object' || hart === null) return hart;
      const h = { ...(hart as Record<string, unknown>) };
      if (Array.isArray(h.tlbs)) {
        h.tlbs = h.tlbs.map((set: unknown) => (!Array.isArray(set) ? set : set.map((tlb: unknown) => {
          const t = tlb as Record<string, unknown>;
          if (typeof t !== 'object' || t === null || !(t.tag instanceof Float64Array) || !(t.hidden instanceof Float64Array) ||
            !(t.delta instanceof Float64Array) || !(t.region instanceof Int32Array) || t.tag.length !== TLB_SIZE || t.hidden.length !== TLB_SIZE ||
            t.delta.length !== TLB_SIZE || t.region.length !== TLB_SIZE) return tlb;
          const copy = { tag: t.tag.slice(), hidden: t.hidden.slice(), delta: t.delta.slice(), region: t.region.slice() };
          relocateSmall([copy.tag, copy.hidden], copy.delta, copy.region, reloc, regions);
          return copy;
        })));
      }
      const model = h.tlbModel as Record<string, unknown> | undefined;
      if (typeof model === 'object' && model !== null && model.tag instanceof Float64Array && model.page instanceof Float64Array &&
        model.largeTag instanceof Float64Array && model.largeBase instanceof Float64Array &&
        model.tag.length === TLB_WAYS * TLB_SIZE && model.page.length === model.tag.length && model.largeTag.length === LARGE_ENTRIES && model.largeBase.length === LARGE_ENTRIES) {
        const tag = model.tag.slice();
        const page = model.page.slice();
        for (let i = 0; i < tag.length; i++) {
          if (tag[i] === TLB_INVALID) continue;
          const to = reloc.page(page[i]!);
          if (to === undefined) tag[i] = TLB_INVALID;
          else page[i] = to;
        }
        const largeTag = model.largeTag.slice();
        const largeBase = model.largeBase.slice();
        relocateLarge(largeTag, largeBase, reloc);
        h.tlbModel = { ...model, tag, page, largeTag, largeBase };
      }
      return h;
    });
  }
  if (m.reservations instanceof Float64Array) {
    m.reservations = m.reservations.map((line) => {
      if (line < 0) return line;
      const address = line * 64;
      const page = address - (address % PAGE);
      const to = reloc.page(page);
      return to === undefined ? -1 : (to + address - page) / 64;
    });
  }
  return m;
}

function relocateLarge(tag: Float64Array, base: Float64Array, reloc: Relocation, region?: Int32Array, regions?: readonly RamRegion[]): void {
  for (let j = 0; j < tag.length; j++) {
    if (tag[j] === TLB_INVALID) continue;
    const to = reloc.block(base[j]!);
    if (to === undefined) {
      tag[j] = TLB_INVALID;
      continue;
    }
    base[j] = to;
    if (region !== undefined) region[j] = regionIndex(regions!, to);
  }
}

/** Checks a second-level TLB's entries against `regions` and puts them into `t`. */
function restoreSecondLevel(t: SecondLevelTlb, s: SecondLevelState, regions: readonly RamRegion[], path: string): void {
  const region = (index: number): RamRegion | undefined => {
    if (index < -1 || index >= regions.length) throw new StateError(`${path}: an entry in no RAM region`);
    return index < 0 ? undefined : regions[index];
  };
  for (let i = 0; i < t.size; i++) {
    const r = region(s.region[i]!);
    if (s.tag[i] === TLB_INVALID) continue;
    const offset = s.tag[i]! * PAGE + s.delta[i]!;
    if (r === undefined || !Number.isInteger(s.tag[i]) || !Number.isInteger(offset) || offset < 0 || offset % PAGE !== 0 || offset + PAGE > r.size) {
      throw new StateError(`${path}: entry ${i} leads outside RAM`);
    }
  }
  for (let j = 0; j < t.large.size; j++) {
    const r = region(s.largeRegion[j]!);
    if (s.largeTag[j] === TLB_INVALID) continue;
    const base = s.largeBase[j]!;
    if (r === undefined || !Number.isInteger(s.largeTag[j]) || !Number.isInteger(base) || base % LARGE_PAGE_BYTES !== 0 || base < r.base || base + LARGE_PAGE_BYTES > r.end) {
      throw new StateError(`${path}: large entry ${j} leads outside RAM`);
    }
  }
  t.tag.set(s.tag);
  t.asid.set(s.asid);
  t.delta.set(s.delta);
  t.levels.set(s.levels);
  t.allows.set(s.allows);
  s.region.forEach((index, i) => { t.mem[i] = regions[index]!; });
  const large: LargeEntries = t.large;
  large.tag.set(s.largeTag);
  large.asid.set(s.largeAsid);
  large.allows.set(s.largeAllows);
  large.base.set(s.largeBase);
  large.levels.set(s.largeLevels);
  s.largeRegion.forEach((index, j) => { large.mem[j] = index < 0 ? undefined : regions[index]; });
}

/**
 * Puts a saved VM's machine, TLBs of both levels, G-stage TLBs, exits and records into `vm`, which `monitor`
 * made like it (vCPUs, memory, mmu, second-level size, devices) and which has not run, its machine addresses
 * moved by `reloc`. The pmap and the scheduler are the caller's. Throws StateError; `vm` must then be ended.
 */
export function restoreVmState(monitor: Monitor, vm: VirtualMachine, saved: ReadVm, reloc: Relocation, path: string): void {
  const regions = monitor.memory.regions;
  if (saved.vcpus !== vm.vcpus.length || saved.memoryBytes !== vm.pmap.size) throw new StateError(`${path}: saved with ${saved.vcpus} vCPUs and ${saved.memoryBytes} bytes`);
  if (saved.mmu !== vm.mmu) throw new StateError(`${path}.mmu: saved under the ${saved.mmu} mmu, this monitor's is ${vm.mmu}`);
  if (saved.secondLevelEntries !== vm.tables.secondLevelEntries) throw new StateError(`${path}.secondLevelEntries: ${saved.secondLevelEntries}, here ${vm.tables.secondLevelEntries}`);
  restoreMachine(vm.machine, relocateMachine(saved.machine, reloc, regions));
  vm.vcpus.forEach((h, i) => {
    const second = saved.secondLevel[i] ?? null;
    if ((second === null) !== (h.secondLevel === undefined)) throw new StateError(`${path}.secondLevel[${i}]: saved ${second === null ? 'without' : 'with'} a second-level TLB`);
    if (second !== null) {
      h.secondLevel!.levels.flat().forEach((t, k) => {
        const s = second[k]!;
        const copy = { ...s, tag: s.tag.slice(), delta: s.delta.slice(), region: s.region.slice(), largeTag: s.largeTag.slice(), largeBase: s.largeBase.slice(), largeRegion: s.largeRegion.slice() };
        relocateSmall([copy.tag], copy.delta, copy.region, reloc, regions);
        relocateLarge(copy.largeTag, copy.largeBase, reloc, copy.largeRegion, regions);
        restoreSecondLevel(t, copy, regions, `${path}.secondLevel[${i}][${k}]`);
      });
    }
    const g = saved.gStageTlb[i] ?? null;
    if ((g === null) !== (h.gStageTlb === undefined) || (g !== null && g.key.length !== h.gStageTlb!.entries)) {
      throw new StateError(`${path}.gStageTlb[${i}]: saved with another G-stage TLB`);
    }
    if (g !== null) {
      h.gStageTlb!.restoreState(g);
      h.gStageTlb!.hits = g.hits;
      h.gStageTlb!.misses = g.misses;
    }
    const record = monitor.vcpuRecord(vm, i);
    record.lastPcpu = saved.lastPcpu[i]!;
    record.worldSwitches = saved.worldSwitches[i]!;
    record.readyCycles = saved.readyCycles[i]!;
    [record.cpuMoves, record.nodeMoves, record.cellMigrations, record.owedMigration, record.cpuMoveCycles, record.nodeMoveCycles, record.cellMoveCycles] =
      saved.moves.subarray(MOVE_FIELDS * i, MOVE_FIELDS * (i + 1));
  });
  const fill = (to: Map<string, number>, from: ReadonlyMap<string, number>): void => {
    to.clear();
    for (const [k, n] of from) to.set(k, n);
  };
  fill(vm.exits, saved.exits);
  fill(vm.monitorCalls, saved.monitorCalls);
  vm.vcpuExits.forEach((m, i) => fill(m, saved.vcpuExits[i]!));
  vm.outOfMemory = saved.outOfMemory ?? undefined;
  if ((saved.balloon === null) !== (vm.balloon === undefined)) throw new StateError(`${path}.balloon: saved ${saved.balloon === null ? 'without' : 'with'} a balloon`);
  if (saved.balloon !== null) vm.balloon!.restoreState(saved.balloon);
}

/** A saved VM's balloon account; null when it had none (or was saved before VMs had balloons). */
function readBalloon(r: StateReader): BalloonAccount | null {
  if (!r.has('balloon') || r.value('balloon') === null) return null;
  const b = r.object('balloon');
  return Object.fromEntries(BALLOON_ACCOUNT_KEYS.map((k) => [k, b.amount(k)])) as unknown as BalloonAccount;
}

/** The machine address of machine page `mpn` on a machine whose regions start at `bases` (pages are counted from the first). */
export function pageAddress(bases: readonly number[], mpn: number): number {
  return bases[0]! + mpn * PAGE;
}
