// The snapshot loader against hostile input (fast-check): a damaged file is one SnapshotFileError, and a
// well-formed file whose content is wrong anywhere is one StateError from restoreMachine, never a crash.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { RAM_BASE, type MachineConfig } from '../../src/board/address-map.js';
import { Machine } from '../../src/board/machine.js';
import { Simulation } from '../../src/board/simulation.js';
import { restoreMachine, saveMachine } from '../../src/board/snapshot.js';
import { enableTiming } from '../../src/board/timing-mode.js';
import { topologyPreset } from '../../src/board/topology.js';
import { VIRTIO_BLK_T_IN, VirtioBlk } from '../../src/devices/virtio/blk.js';
import { VirtioConsole } from '../../src/devices/virtio/console.js';
import { MemoryBlockBackend } from '../../src/devices/virtio/memory-block.js';
import { LinkedNics, VirtioNet } from '../../src/devices/virtio/net.js';
import { SeededEntropy, VirtioRng } from '../../src/devices/virtio/rng.js';
import { StateError } from '../../src/memory/state.js';
import { decodeSnapshot, encodeSnapshot, SnapshotFileError } from '../../src/host/snapshot-file.js';
import { paths, refusesDamagedFiles } from '../helpers/snapshot-fuzz.js';
import { blkRequest, startBlk } from '../helpers/blk-driver.js';

const MiB = 2 ** 20;
const CONFIG: MachineConfig = { harts: 2, nodes: [{ memoryBytes: 16 * MiB, harts: [0, 1] }] };
const LATENCIES = topologyPreset('uma', 16 * MiB).latencies;
/** The disk: eight blocks of bytes that are not zero, one of which a read puts in a page saved by reference. */
const DISK = Uint8Array.from({ length: 8 * 4096 }, (_, i) => (i % 253) + 1);
const DISK_PAGE = RAM_BASE + 8 * MiB;

/** A small machine with every kind of saved part: SBI, timing model, statistics, four virtio devices. */
function build(): { machine: Machine; simulation: Simulation } {
  const machine = new Machine({ config: CONFIG, builtinSbi: true });
  const model = enableTiming(machine, LATENCIES, { sizeBytes: 16 * 1024 });
  const simulation = new Simulation(machine, model);
  machine.attachVirtio(new VirtioBlk(new MemoryBlockBackend(DISK.slice())));
  machine.attachVirtio(new VirtioRng(new SeededEntropy(1)));
  machine.attachVirtio(new VirtioConsole());
  machine.attachVirtio(new VirtioNet(new LinkedNics().a, { mac: '52:54:00:12:34:56' }));
  return { machine, simulation };
}

/** The saved machine after a few rounds of a loop that stores, as the file's bytes. */
const saved: Uint8Array = (() => {
  const { machine, simulation } = build();
  // addi t0, t0, 1; sd t0, 256(zero)... simply: a store loop over the first page.
  const loop = Uint32Array.of(0x00128293, 0x00533023, 0xff9ff06f);
  machine.bus.guestMemory().write(RAM_BASE, new Uint8Array(loop.buffer));
  machine.resetAll(RAM_BASE, true, 0);
  for (let i = 0; i < 3; i++) machine.runRound();
  // The disk's driver reads block 3 into a page: saved as (disk 0, block 3), and in the device's record.
  const transport = machine.virtioTransports()[0]!;
  blkRequest(transport, machine.bus.guestMemory(), startBlk(transport, machine.bus.guestMemory(), RAM_BASE + 4 * MiB), VIRTIO_BLK_T_IN, 3 * 8, DISK_PAGE, 4096);
  const snapshot = saveMachine(machine, CONFIG, simulation);
  assert.deepEqual(Array.from(snapshot.memory[0]!.blocks), [(DISK_PAGE - RAM_BASE) / 4096, 0, 3]);
  return Uint8Array.from(encodeSnapshot(snapshot));
})();

const HOSTILE: unknown[] = [
  'delete', null, 0, -1, 1.5, 2 ** 53, -(2 ** 60), NaN, Infinity, -0, 'x', true, 7n, [], {}, [1, 2, 3],
  new Uint8Array(0), new Uint8Array(5), new Float64Array(1), new Int32Array(1000), new Uint32Array(7),
];

describe('the snapshot loader', () => {
  it('restores its own file, the page saved by reference read from the disk', () => {
    const { machine, simulation } = build();
    restoreMachine(machine, decodeSnapshot(saved), simulation);
    assert.ok(machine.instructions > 0);
    assert.deepEqual(machine.bus.guestMemory().read(DISK_PAGE, 4096), DISK.subarray(3 * 4096, 4 * 4096));
  });

  it('refuses a file of another machine snapshot version in one line that says so', () => {
    const state = decodeSnapshot(saved) as { version: number };
    state.version = 3;
    assert.throws(() => restoreMachine(build().machine, decodeSnapshot(encodeSnapshot(state))), (e: Error) => e instanceof StateError
      && /^machine snapshot version 3, this Mirrorball reads version 4: an older Mirrorball saved it; restore it with that one$/.test(e.message));
  });

  it('turns any element of the pages saved as disk blocks, or of the disk\'s record, into a StateError, or restores it and runs', () => {
    type State = { memory: { blocks: Uint32Array }[]; virtio: ({ device: { filled: Float64Array } } | null)[] };
    const element = fc.oneof(fc.nat(2 ** 32 - 1), fc.constantFrom(0, 1, 2, 3, 7, 8, 2047, 2048, 4096, 2 ** 31));
    fc.assert(fc.property(fc.boolean(), fc.nat(5), element, (inBlocks, index, value) => {
      const state = decodeSnapshot(saved) as State;
      if (inBlocks) {
        const blocks = state.memory[0]!.blocks.slice();
        blocks[index % blocks.length] = value;
        state.memory[0]!.blocks = blocks;
      } else {
        const filled = state.virtio[0]!.device.filled.slice();
        filled[index % filled.length] = index % 2 === 0 ? RAM_BASE + value * 4096 : value;
        state.virtio[0]!.device.filled = filled;
      }
      const { machine, simulation } = build();
      try {
        restoreMachine(machine, decodeSnapshot(encodeSnapshot(state)), simulation);
      } catch (error) {
        if (!(error instanceof StateError)) throw error;
        return;
      }
      for (let i = 0; i < 2; i++) machine.runRound();
      // What was accepted saves again.
      saveMachine(machine, CONFIG, simulation);
    }), { numRuns: Number(process.env.FUZZ_RUNS ?? 300) });
  });

  it('refuses every truncated or altered file with a SnapshotFileError', () => {
    refusesDamagedFiles(saved, decodeSnapshot, 200);
  });

  it('turns any wrong value anywhere in a well-formed file into a StateError, or restores it', () => {
    const decoded = decodeSnapshot(saved);
    const places = paths(decoded).filter((p) => p.length > 0);
    fc.assert(fc.property(fc.constantFrom(...places), fc.constantFrom(...HOSTILE), (path, hostile) => {
      // Through the file format again, as a crafted file would come: a valid checksum over wrong content.
      const state = decodeSnapshot(saved) as Record<string | number, unknown>;
      let parent = state;
      for (const key of path.slice(0, -1)) parent = parent[key] as Record<string | number, unknown>;
      const last = path[path.length - 1]!;
      if (hostile === 'delete') delete parent[last];
      else parent[last] = hostile;
      const { machine, simulation } = build();
      try {
        restoreMachine(machine, decodeSnapshot(encodeSnapshot(state)), simulation);
      } catch (error) {
        if (!(error instanceof StateError)) throw new Error(`${path.join('.')} = ${String(hostile)}: ${(error as Error).stack}`);
        return;
      }
      // What was accepted runs.
      try {
        for (let i = 0; i < 2; i++) machine.runRound();
      } catch (error) {
        throw new Error(`${path.join('.')} = ${String(hostile)} was restored, then: ${(error as Error).stack}`);
      }
    }), { numRuns: Number(process.env.FUZZ_RUNS ?? 300) });
  });
});
