// Monitor snapshots of VMs whose disks are copy-on-write (snapshot=on, overlay=FILE) over one base, through the
// page cache, while their S-mode programs run and their drivers read and write the disks: the whole machine and
// one VM come back as saved and go on as the straight run does (state, statistics, every disk block).

import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { machineDisks } from '../../src/board/disk-pages.js';
import { BLOCK_PAGE, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VirtioBlk } from '../../src/devices/virtio/blk.js';
import type { VirtioMmio } from '../../src/devices/virtio/mmio.js';
import { attachDrives, type DriveSpec, type OpenDrive } from '../../src/host/drives.js';
import { decodeMonitorSnapshot, monitorSnapshot, restoreVm, restoreWhole, type VmBuild } from '../../src/host/monitor-snapshot.js';
import { decodeSnapshot, encodeSnapshot, SnapshotFileError } from '../../src/host/snapshot-file.js';
import { registerMonitorStats } from '../../src/monitor/accounting.js';
import { PAGE } from '../../src/monitor/machine-memory.js';
import { saveMonitor } from '../../src/monitor/monitor-snapshot.js';
import { Monitor } from '../../src/monitor/monitor.js';
import type { VirtualMachine } from '../../src/monitor/vm.js';
import { formatStatsText, StatsRegistry } from '../../src/timing/stats.js';
import { blkRequest, startBlk, type BlkQueue } from '../helpers/blk-driver.js';
import { comparableMonitorState, SEAM_MACHINE, startSeamProgram } from '../helpers/monitor-program.js';

const MiB = 2 ** 20;
const BLOCKS = 64;
/** Guest-physical, past the seam program's code, tables and array: the driver's queue, and the pages reads land in. */
const QUEUE_AT = 6 * MiB;
const DATA_AT = 8 * MiB;
const SLOTS = 12;

const directory = mkdtempSync(join(tmpdir(), 'mirrorball-cow-snapshot-'));
after(() => rmSync(directory, { recursive: true, force: true }));
const baseFile = join(directory, 'base.img');
writeFileSync(baseFile, Uint8Array.from({ length: BLOCKS * BLOCK_PAGE }, (_, i) => ((i * 29 + (i >> 12) * 17) % 251) + 1));

interface Disk {
  vm: VirtualMachine;
  transport: VirtioMmio;
  queue: BlkQueue;
}

/** A VM's driver: started in a VM that boots, or where the saved one had its queue in a restored one. */
function disk(vm: VirtualMachine, queue?: BlkQueue): Disk {
  const transport = vm.machine.virtioTransports().find((t) => t?.device instanceof VirtioBlk)!;
  return { vm, transport, queue: queue ?? startBlk(transport, vm.machine.bus.guestMemory(), vm.pmap.base + QUEUE_AT) };
}

/** One step of a VM's driver or CPU: read a block into a data page, write a data page to a block, or change a byte of a data page. */
type Action = { vm: 0 | 1; kind: 'read' | 'write' | 'store'; slot: number; block: number };
const action: fc.Arbitrary<Action> = fc.record({
  vm: fc.constantFrom(0 as const, 1 as const), kind: fc.constantFrom('read' as const, 'read' as const, 'write' as const, 'store' as const),
  slot: fc.nat(SLOTS - 1), block: fc.nat(BLOCKS - 1),
});

function act(d: Disk, a: Action): void {
  const memory = d.vm.machine.bus.guestMemory();
  const page = d.vm.pmap.base + DATA_AT + a.slot * PAGE;
  if (a.kind === 'store') memory.write(page + a.block, Uint8Array.of(memory.read(page + a.block, 1)[0]! ^ 0x5a));
  else blkRequest(d.transport, memory, d.queue, a.kind === 'read' ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT, a.block * 8, page, PAGE);
}

/** Every block of every VM's disks as the VM sees them now, and their saved clusters: what the disks are. */
function disksOf(monitor: Monitor): Buffer {
  const parts: Uint8Array[] = [];
  for (const vm of monitor.vms) {
    for (const device of machineDisks(vm.machine)) {
      const block = new Uint8Array(BLOCK_PAGE);
      for (let k = 0; k < device.blocks; k++) {
        device.readBlock(k, block);
        parts.push(block.slice());
      }
      const saved = device.savedClusters();
      if (saved !== undefined) parts.push(new Uint8Array(saved.clusters.buffer), saved.data);
    }
  }
  return Buffer.concat(parts);
}

function statsText(monitor: Monitor): string {
  const stats = new StatsRegistry();
  registerMonitorStats(stats, monitor);
  return formatStatsText(stats.snapshot());
}

interface Rig {
  monitor: Monitor;
  disks: Disk[];
  builds: Map<string, VmBuild>;
  open: OpenDrive[];
}

/** VMs a and b running the seam program, each with a copy-on-write disk over the one base (drives of `drive(name)`), through the page cache. */
function rig(drive: (name: string) => DriveSpec = () => ({ file: baseFile, readOnly: false, snapshot: true })): Rig {
  const monitor = new Monitor({ config: SEAM_MACHINE, quantumRounds: 8 });
  const builds = new Map<string, VmBuild>();
  const open: OpenDrive[] = [];
  const disks = ['a', 'b'].map((name, i) => {
    const vm = monitor.createVm({ name, vcpus: 1, memoryBytes: 16 * MiB, console: () => {} });
    const drives = [drive(name)];
    open.push(...attachDrives(vm.machine, drives, `vm ${name}`, (baseId, metrics) => monitor.diskHook(vm, baseId, metrics)));
    builds.set(name, { drives, rngSeed: null });
    startSeamProgram(vm, 11 + i, 300);
    return disk(vm);
  });
  return { monitor, disks, builds, open };
}

function step(monitor: Monitor, disks: readonly Disk[], a: Action): void {
  act(disks[a.vm]!, a);
  monitor.runRound();
}

function close(...rigs: { open: OpenDrive[] }[]): void {
  for (const r of rigs) for (const d of r.open) d.close();
}

describe('snapshots of VMs with copy-on-write disks', () => {
  it('the whole machine saved after N steps and restored runs M more as N + M straight (state, statistics, disks)', () => {
    fc.assert(fc.property(fc.array(action, { minLength: 1, maxLength: 24 }), fc.array(action, { maxLength: 24 }), (first, then) => {
      const straight = rig();
      for (const a of first) step(straight.monitor, straight.disks, a);
      const saved = monitorSnapshot(straight.monitor, (vm) => straight.builds.get(vm.name)!);
      const restored = restoreWhole(decodeMonitorSnapshot(encodeSnapshot(saved.value)), {}, () => ({ console: () => {} }));
      const seam = restored.monitor;
      const seamDisks = straight.disks.map((d) => disk(seam.vm(d.vm.name)!, d.queue));
      try {
        assert.ok(disksOf(seam).equals(disksOf(straight.monitor)), 'the disks as saved');
        for (const a of then) {
          step(straight.monitor, straight.disks, a);
          step(seam, seamDisks, a);
        }
        assert.ok(comparableMonitorState(saveMonitor(seam)).equals(comparableMonitorState(saveMonitor(straight.monitor))), 'state across the seam');
        assert.equal(statsText(seam), statsText(straight.monitor), 'stats.txt across the seam');
        assert.ok(disksOf(seam).equals(disksOf(straight.monitor)), 'the disks across the seam');
      } finally {
        close(straight, { open: restored.disks });
      }
    }), { numRuns: 25 });
  });

  it('pages saved as blocks of a disk\'s changed clusters come back from them, and a VM restored alone has its disk as saved', () => {
    const r = rig();
    // a writes its data page 0 to block 3 and reads it back into page 1: page 1 equals a cluster of a's overlay.
    for (const a of [{ vm: 0, kind: 'store', slot: 0, block: 7 }, { vm: 0, kind: 'write', slot: 0, block: 3 }, { vm: 0, kind: 'read', slot: 1, block: 3 },
      { vm: 1, kind: 'read', slot: 0, block: 5 }, { vm: 0, kind: 'read', slot: 2, block: 5 }] as Action[]) step(r.monitor, r.disks, a);
    const saved = monitorSnapshot(r.monitor, (vm) => r.builds.get(vm.name)!);
    // a's page 1 (a cluster of its overlay) and the page of block 5 that b read and a mapped from the page cache.
    assert.equal(saved.diskPages, 2);
    const bytes = encodeSnapshot(saved.value);
    const fresh = new Monitor({ config: SEAM_MACHINE, quantumRounds: 8 });
    const { vm, disks } = restoreVm(fresh, decodeMonitorSnapshot(bytes), 'a', 'a', { console: () => {} });
    try {
      const memory = vm.machine.bus.guestMemory();
      const straight = r.disks[0]!.vm.machine.bus.guestMemory();
      assert.deepEqual(memory.read(vm.pmap.base + DATA_AT, 3 * PAGE), straight.read(r.disks[0]!.vm.pmap.base + DATA_AT, 3 * PAGE), 'a\'s data pages');
      const block = new Uint8Array(BLOCK_PAGE);
      machineDisks(vm.machine)[0]!.readBlock(3, block);
      assert.deepEqual(block, straight.read(r.disks[0]!.vm.pmap.base + DATA_AT, PAGE), 'the block a wrote, from its saved clusters');
    } finally {
      close(r, { open: disks });
    }
  });

  it('refuses a snapshot whose clusters are truncated or corrupt in one line', () => {
    const r = rig();
    for (const a of [{ vm: 0, kind: 'write', slot: 0, block: 3 }, { vm: 0, kind: 'write', slot: 1, block: 9 }] as Action[]) step(r.monitor, r.disks, a);
    const value = monitorSnapshot(r.monitor, (vm) => r.builds.get(vm.name)!).value;
    close(r);
    type Saved = { host: { vms: { drives: { clusters: { clusters: Uint32Array; data: Uint8Array } }[] }[] } };
    const corruptions: Record<string, (s: Saved) => void> = {
      'data cut short': (s) => { const c = s.host.vms[0]!.drives[0]!.clusters; c.data = c.data.subarray(0, c.data.length - 100); },
      'a cluster past the disk': (s) => { s.host.vms[0]!.drives[0]!.clusters.clusters = Uint32Array.of(3, BLOCKS); },
      'a cluster twice': (s) => { s.host.vms[0]!.drives[0]!.clusters.clusters = Uint32Array.of(9, 9); },
      'no data': (s) => { (s.host.vms[0]!.drives[0]!.clusters as { data?: unknown }).data = [1, 2]; },
    };
    for (const [what, corrupt] of Object.entries(corruptions)) {
      const state = decodeSnapshot(encodeSnapshot(value)) as Saved;
      corrupt(state);
      assert.throws(() => decodeMonitorSnapshot(encodeSnapshot(state)), (e: Error) =>
        e instanceof SnapshotFileError && /snapshot\.host\.vms\[0\]\.drives\[0\]\.clusters/.test(e.message) && !e.message.includes('\n'), what);
    }
  });

  it('an overlay file is referenced: unchanged it restores and goes on; changed since the save, it is refused in one line', () => {
    const overlay = (name: string): string => join(directory, `${name}.overlay`);
    for (const name of ['a', 'b']) rmSync(overlay(name), { force: true });
    const r = rig((name) => ({ file: baseFile, readOnly: false, overlay: overlay(name) }));
    const steps: Action[] = [{ vm: 0, kind: 'write', slot: 0, block: 3 }, { vm: 1, kind: 'read', slot: 0, block: 3 }, { vm: 0, kind: 'read', slot: 1, block: 3 }];
    for (const a of steps) step(r.monitor, r.disks, a);
    const bytes = encodeSnapshot(monitorSnapshot(r.monitor, (vm) => r.builds.get(vm.name)!).value);
    const expected = { state: comparableMonitorState(saveMonitor(r.monitor)), disks: disksOf(r.monitor) };
    // Kept as the save left it, then written on by the running VM.
    copyFileSync(overlay('a'), join(directory, 'a.kept'));
    step(r.monitor, r.disks, { vm: 0, kind: 'write', slot: 1, block: 40 });
    close(r);
    assert.throws(() => restoreWhole(decodeMonitorSnapshot(bytes), {}, () => ({ console: () => {} })), (e: Error) =>
      e instanceof SnapshotFileError && /VM a: overlay '.*a\.overlay' changed since the snapshot was taken/.test(e.message) && !e.message.includes('\n'));
    copyFileSync(join(directory, 'a.kept'), overlay('a'));
    const restored = restoreWhole(decodeMonitorSnapshot(bytes), {}, () => ({ console: () => {} }));
    try {
      assert.ok(comparableMonitorState(saveMonitor(restored.monitor)).equals(expected.state), 'the restored machine');
      assert.ok(disksOf(restored.monitor).equals(expected.disks), 'its disks');
      restored.monitor.runRound();
    } finally {
      close({ open: restored.disks });
    }
  });
});
