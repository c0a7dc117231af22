// The monitor's snapshot loader against hostile input (fast-check): a damaged file is one SnapshotFileError, and
// a well-formed file whose content is wrong anywhere is one SnapshotFileError from the restore (the whole
// machine, or one VM into a running monitor), or restores and runs without the monitor failing: never a crash,
// never a half-restored VM that runs.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import type { MachineConfig } from '../../src/board/address-map.js';
import { PRIV_S } from '../../src/isa/opcodes.js';
import { decodeMonitorSnapshot, encodeMonitorSnapshot, restoreVm, restoreWhole, type VmBuild } from '../../src/host/monitor-snapshot.js';
import { attachDrives } from '../../src/host/drives.js';
import { VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VirtioBlk } from '../../src/devices/virtio/blk.js';
import { blkRequest, startBlk } from '../helpers/blk-driver.js';
import { decodeSnapshot, encodeSnapshot, SnapshotFileError } from '../../src/host/snapshot-file.js';
import { paths, refusesDamagedFiles } from '../helpers/snapshot-fuzz.js';
import type { MachineMemoryState } from '../../src/monitor/machine-memory.js';
import type { PageCacheState } from '../../src/monitor/page-cache.js';
import type { ScannerState } from '../../src/monitor/page-scanner.js';
import { Monitor } from '../../src/monitor/monitor.js';
import type { VirtualMachine } from '../../src/monitor/vm.js';
import { latenciesFromDistances } from '../../src/board/topology.js';
import { machineDisks } from '../../src/board/disk-pages.js';

const MiB = 2 ** 20;
const CONFIG: MachineConfig = { harts: 2, nodes: [{ memoryBytes: 16 * MiB, harts: [0] }, { memoryBytes: 16 * MiB, harts: [1] }], distances: [[10, 20], [20, 10]] };
const SETTINGS = { config: CONFIG, quantumRounds: 4, timing: { latencies: latenciesFromDistances(CONFIG.distances!), cache: { sizeBytes: 4096 } } };

/** VM a's disk: blocks of bytes that are not zero. */
const directory = mkdtempSync(join(tmpdir(), 'mirrorball-fuzz-disk-'));
after(() => rmSync(directory, { recursive: true, force: true }));
/** And a copy-on-write disk (snapshot=on) over a base of 16 blocks and a half, which a writes: its changed clusters are in the snapshot. */
const DRIVES = [{ file: join(directory, 'a.img'), readOnly: true }, { file: join(directory, 'base.img'), readOnly: false, snapshot: true }];
writeFileSync(DRIVES[0]!.file, Uint8Array.from({ length: 16 * 4096 }, (_, i) => (i % 241) + 1));
writeFileSync(DRIVES[1]!.file, Uint8Array.from({ length: 16 * 4096 + 2048 }, (_, i) => (i % 239) + 1));

/** addi t0, t0, 1; sd t0, 0(t1); addi t1, t1, 1024; j back: a store a quarter page further each time, so pages fill. */
const LOOP = Uint32Array.of(0x00128293, 0x00533023, 0x40030313, 0xff5ff06f);

/**
 * Two VMs (the second with a network card, stopped), a few rounds, pages shared, timing mode on, the content
 * scanner on and a disk block in the page cache: its file's bytes.
 */
const saved: Uint8Array = (() => {
  const monitor = new Monitor({ ...SETTINGS, scan: { pagesPerSecond: 400_000, cpu: 1 } });
  const vms = ['a', 'b'].map((name) => monitor.createVm({ name, vcpus: 2, memoryBytes: 16 * MiB, net: name === 'b', secondLevelEntries: 64, console: () => {} }));
  attachDrives(vms[0]!.machine, DRIVES);
  for (const vm of vms) {
    vm.machine.bus.guestMemory().write(vm.pmap.base, new Uint8Array(LOOP.buffer));
    for (const h of vm.vcpus) {
      h.reset(vm.pmap.base);
      h.priv = PRIV_S;
      h.setReg(6, vm.pmap.base + 0x10_0000 + h.id * 0x8_0000);
      h.updateTranslation();
    }
  }
  monitor.setExecutionMode('timing');
  // Enough rounds for the scanner to look at the pages three times (a first look only tests for zero, the second
  // hashes, the third finds the hash unchanged), so that its index has candidates to save.
  for (let i = 0; i < 40; i++) monitor.runRound();
  monitor.sharePages();
  const [a, b] = vms as [VirtualMachine, VirtualMachine];
  monitor.pageCache.blockHook(a.pmap, 'fuzz', () => true).copied(0, a.pmap.base + 0x10_0000);
  monitor.pageCache.blockHook(b.pmap, 'fuzz', () => true).map(0, b.pmap.base + 0x10_0000);
  monitor.runRound();
  monitor.stopVm(vms[1]!);
  monitor.runRound();
  // VM a's disk reads a block into a page: saved as (VM a, disk 0, block 5), and in the device's record.
  const transport = a.machine.virtioTransports().find((t) => t?.device instanceof VirtioBlk)!;
  const memory = a.machine.bus.guestMemory();
  blkRequest(transport, memory, startBlk(transport, memory, a.pmap.base + 0xe0_0000), VIRTIO_BLK_T_IN, 5 * 8, a.pmap.base + 0xf0_0000, 4096);
  // And writes that page to its copy-on-write disk's block 2 and the last, short cluster: two clusters changed.
  const cow = a.machine.virtioTransports().filter((t) => t?.device instanceof VirtioBlk)[1]!;
  const queue = startBlk(cow, memory, a.pmap.base + 0xd0_0000);
  blkRequest(cow, memory, queue, VIRTIO_BLK_T_OUT, 2 * 8, a.pmap.base + 0xf0_0000, 4096);
  blkRequest(cow, memory, queue, VIRTIO_BLK_T_OUT, 16 * 8, a.pmap.base + 0xf0_0000, 1024);
  const build = (vm: VirtualMachine): VmBuild => (vm === a ? { drives: DRIVES, rngSeed: null } : { drives: [], rngSeed: null });
  return Uint8Array.from(encodeMonitorSnapshot(monitor, build));
})();

const HOSTILE: unknown[] = [
  'delete', null, 0, -1, 1, 2, 1.5, 2 ** 31, 2 ** 53, -(2 ** 60), NaN, Infinity, -0, 'x', true, 7n, [], {}, [1, 2, 3],
  new Uint8Array(0), new Uint8Array(5), new Float64Array(1), new Int32Array(9), new Int32Array(1000).fill(-1), new Uint32Array(7),
];

/** Restores `bytes` (the whole machine, or VM a into a running monitor) and runs two rounds; a SnapshotFileError is fine. */
function restoreAndRun(bytes: Uint8Array, whole: boolean, what: string): void {
  let monitor: Monitor;
  try {
    const loaded = decodeMonitorSnapshot(bytes);
    if (whole) monitor = restoreWhole(loaded, {}, () => ({ console: () => {} })).monitor;
    else {
      monitor = new Monitor(SETTINGS);
      monitor.createVm({ name: 'first', vcpus: 1, memoryBytes: 16 * MiB, console: () => {} });
      const before = monitor.vms.length;
      try {
        restoreVm(monitor, loaded, 'a', 'a', { console: () => {} });
      } catch (error) {
        // Nothing half-restored runs: the VM made for it has ended.
        assert.ok(monitor.vms.slice(before).every((vm) => vm.state !== 'running'), `${what}: a VM whose restore failed still runs`);
        throw error;
      }
    }
  } catch (error) {
    if (error instanceof SnapshotFileError) return;
    throw new Error(`${what}: ${(error as Error).stack}`);
  }
  try {
    for (let i = 0; i < 3; i++) monitor.runRound();
  } catch (error) {
    throw new Error(`${what} was restored, then: ${(error as Error).stack}`);
  }
  // A VM the monitor ended on an error of its own was restored into a state the monitor cannot handle.
  const crashed = monitor.vms.find((vm) => vm.state === 'crashed');
  assert.equal(crashed, undefined, `${what} was restored, then the monitor failed: ${crashed?.reason}`);
}

/** Every typed array in a decoded snapshot, as a list of keys, with its length. */
function arrays(value: unknown, prefix: (string | number)[] = []): { path: (string | number)[]; length: number }[] {
  if (ArrayBuffer.isView(value)) return (value as Uint8Array).length > 0 ? [{ path: prefix, length: (value as Uint8Array).length }] : [];
  if (typeof value !== 'object' || value === null) return [];
  const entries = Array.isArray(value) ? value.map((v, i) => [i, v] as const) : Object.entries(value);
  return entries.flatMap(([key, v]) => arrays(v, [...prefix, key]));
}

describe('the monitor snapshot loader', () => {
  it('restores its own file, whole and one VM', () => {
    restoreAndRun(saved, true, 'the file');
    restoreAndRun(saved, false, 'the file');
    const { monitor } = restoreWhole(decodeMonitorSnapshot(saved), {}, () => ({ console: () => {} }));
    assert.deepEqual(monitor.vms.map((vm) => vm.state), ['running', 'stopped']);
    assert.equal(monitor.pageCache.size, 1);
    // The page saved as a block of a's disk (the corruptions below change its reference) came back from it.
    assert.equal((decodeSnapshot(saved) as { monitor: { pages: { blocks: Float64Array } } }).monitor.pages.blocks.length, 4);
    const a = monitor.vm('a')!;
    assert.deepEqual(a.machine.bus.guestMemory().read(a.pmap.base + 0xf0_0000, 8), Uint8Array.from({ length: 8 }, (_, i) => ((5 * 4096 + i) % 241) + 1));
    assert.ok(monitor.scanner !== undefined && monitor.scanner.counts.visited > 0);
    // a's copy-on-write disk as it wrote it (the corruptions below change its saved clusters).
    const block = new Uint8Array(4096);
    machineDisks(a.machine)[1]!.readBlock(2, block);
    assert.deepEqual(block.subarray(0, 8), Uint8Array.from({ length: 8 }, (_, i) => ((5 * 4096 + i) % 241) + 1));
    assert.deepEqual(machineDisks(a.machine)[1]!.savedClusters()!.clusters, Uint32Array.of(2, 16));
    assert.ok(monitor.scanner.saveState(monitor.vms.filter((vm) => vm.state === 'running').map((vm) => vm.pmap)).index.candidates.length >= 2, 'the saved scanner remembers candidates (the corruptions below change them)');
  });

  it('refuses a machine memory that does not add up: each page is a VM\'s, the monitor\'s, reserved, freed or never used, exactly', () => {
    type Saved = { monitor: { whole: { memory: MachineMemoryState; pageCache: PageCacheState; scanner: ScannerState }; vms: { pmap: { machine: Int32Array } }[] } };
    const inUse = (s: Saved): number => s.monitor.vms[0]!.pmap.machine.find((mpn) => mpn >= 0)!;
    const corruptions: Record<string, (s: Saved) => void> = {
      'a page in use is also freed': (s) => { s.monitor.whole.memory.freed[0] = Int32Array.of(...s.monitor.whole.memory.freed[0]!, inUse(s)); },
      'one page too many in use on a node': (s) => { s.monitor.whole.memory.used[0]! += 1; },
      'a page in use belongs to the ended VM': (s) => { s.monitor.whole.memory.owner[inUse(s)] = 1; },
      'a page has a user too many': (s) => { s.monitor.whole.memory.users[inUse(s)]! += 1; },
      'the never-used pages start below pages in use': (s) => { s.monitor.whole.memory.fresh[0] = 0; },
      'a guest page maps a free page': (s) => { const m = s.monitor.vms[0]!.pmap.machine; m[m.indexOf(inUse(s))] = 8000; },
      'every guest page maps one machine page': (s) => { s.monitor.vms[0]!.pmap.machine.fill(inUse(s)); },
      'the page cache holds a page the memmap does not name it a user of': (s) => { s.monitor.whole.pageCache.pages[0] = inUse(s); },
      'the page cache loses a page the memmap names it a user of': (s) => {
        const c = s.monitor.whole.pageCache;
        Object.assign(c, { keys: [], pages: new Int32Array(0), order: new Int32Array(0), freeSlots: new Int32Array(0) });
      },
      'the scanner remembers a page past the VM\'s end': (s) => { s.monitor.whole.scanner.index.candidates[1] = 4096; },
      'the scanner remembers the pages of a VM that ended': (s) => { s.monitor.whole.scanner.seen[0]!.vm = 1; },
      'the scanner\'s idle rate is negative': (s) => { s.monitor.whole.scanner.parameters.idlePagesPerSecond = -1; },
      'the scanner\'s idle budget is no amount': (s) => { s.monitor.whole.scanner.idleBudget = -3; },
    };
    for (const [what, corrupt] of Object.entries(corruptions)) {
      const state = decodeSnapshot(saved.slice()) as Saved;
      corrupt(state);
      assert.throws(() => restoreWhole(decodeMonitorSnapshot(encodeSnapshot(state)), {}, () => ({ console: () => {} })), SnapshotFileError, what);
    }
  });

  it('refuses a file of another monitor snapshot version in one line that says so', () => {
    const state = decodeSnapshot(saved.slice()) as { monitor: { version: number } };
    state.monitor.version = 10;
    assert.throws(() => decodeMonitorSnapshot(encodeSnapshot(state)), (e: Error) => e instanceof SnapshotFileError
      && /monitor snapshot version 10, this Mirrorball reads version 11: an older Mirrorball saved it/.test(e.message) && !e.message.includes('\n'));
  });

  it('what the fuzzing found, every time', () => {
    // An ended VM's TLB entry made to lead below RAM: its machine addresses were taken as they were, unchecked.
    const found: [(string | number)[], number, number][] = [[['monitor', 'vms', 1, 'machine', 'harts', 0, 'tlbs', 1, 1, 'tag'], 0, -2]];
    for (const [path, index, value] of found) {
      for (const whole of [true, false]) {
        const state = decodeSnapshot(saved.slice()) as Record<string | number, unknown>;
        let array: unknown = state;
        for (const key of path) array = (array as Record<string | number, unknown>)[key];
        (array as Float64Array)[index] = value;
        restoreAndRun(encodeSnapshot(state), whole, `${path.join('.')}[${index}] = ${value}`);
      }
    }
  });

  it('refuses every truncated or altered file with a SnapshotFileError', () => {
    refusesDamagedFiles(saved, decodeMonitorSnapshot, 100);
  });

  it('turns any wrong value anywhere in a well-formed file into a SnapshotFileError, or restores it and it runs', () => {
    const places = paths(decodeSnapshot(saved)).filter((p) => p.length > 0);
    fc.assert(fc.property(fc.constantFrom(...places), fc.constantFrom(...HOSTILE), fc.boolean(), (path, hostile, whole) => {
      // Through the file format again, as a crafted file would come: a valid checksum over wrong content.
      const state = decodeSnapshot(saved) as Record<string | number, unknown>;
      let parent = state;
      for (const key of path.slice(0, -1)) parent = parent[key] as Record<string | number, unknown>;
      const last = path[path.length - 1]!;
      if (hostile === 'delete') delete parent[last];
      else parent[last] = hostile;
      restoreAndRun(encodeSnapshot(state), whole, `${path.join('.')} = ${String(hostile)} (${whole ? 'whole' : 'one VM'})`);
    }), { numRuns: Number(process.env.FUZZ_RUNS ?? 120) });
  });

  it('the same for every field of the VMs\' drives (copy-on-write ones with their clusters), every hostile value, whole and one VM', () => {
    const places = paths(decodeSnapshot(saved)).filter((p) => p[0] === 'host' && p.includes('drives') && p.length > 4);
    assert.ok(places.some((p) => p.at(-1) === 'clusters') && places.some((p) => p.at(-1) === 'data'));
    for (const path of places) {
      for (const hostile of HOSTILE) {
        for (const whole of [true, false]) {
          const state = decodeSnapshot(saved) as Record<string | number, unknown>;
          let parent = state;
          for (const key of path.slice(0, -1)) parent = parent[key] as Record<string | number, unknown>;
          const last = path[path.length - 1]!;
          if (hostile === 'delete') delete parent[last];
          else parent[last] = hostile;
          restoreAndRun(encodeSnapshot(state), whole, `${path.join('.')} = ${String(hostile)} (${whole ? 'whole' : 'one VM'})`);
        }
      }
    }
  });

  it('the same for one element of any array: a page number, a count, an entry', () => {
    const places = arrays(decodeSnapshot(saved));
    const values = [-2, -1, 0, 1, 2, 511, 512, 4095, 4096, 8191, 8192, 65535, 2 ** 31 - 1];
    fc.assert(fc.property(fc.constantFrom(...places), fc.nat(), fc.constantFrom(...values), fc.boolean(), (place, at, value, whole) => {
      // A copy: decoded arrays view the bytes they came from.
      const state = decodeSnapshot(saved.slice()) as Record<string | number, unknown>;
      let array: unknown = state;
      for (const key of place.path) array = (array as Record<string | number, unknown>)[key];
      const index = at % place.length;
      (array as Float64Array)[index] = value;
      restoreAndRun(encodeSnapshot(state), whole, `${place.path.join('.')}[${index}] = ${value} (${whole ? 'whole' : 'one VM'})`);
    }), { numRuns: Number(process.env.FUZZ_RUNS ?? 120) });
  });

  it('the same for the pages saved as disk blocks: their page, VM, disk or block replaced', () => {
    const values = [-1, 0, 1, 2, 3, 5, 15, 16, 4095, 4096, 8191, 8192, 2 ** 31, 2 ** 53, 0.5, NaN];
    fc.assert(fc.property(fc.nat(3), fc.constantFrom(...values), fc.boolean(), (index, value, whole) => {
      const state = decodeSnapshot(saved.slice()) as { monitor: { pages: { blocks: Float64Array } } };
      const blocks = state.monitor.pages.blocks.slice();
      blocks[index] = value;
      state.monitor.pages.blocks = blocks;
      restoreAndRun(encodeSnapshot(state), whole, `pages.blocks[${index}] = ${value} (${whole ? 'whole' : 'one VM'})`);
    }), { numRuns: Number(process.env.FUZZ_RUNS ?? 120) });
  });
});
