// Snapshots of booting Linux: the built guest on 2 harts, with a read-only root disk and a seeded rng,
// saved at N rounds and restored into a fresh machine, runs M more rounds exactly as N + M straight
// through: the same console, statistics and machine state, with a command typed on the way.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { MachineConfig } from '../../src/board/address-map.js';
import { bootLinux } from '../../src/board/boot.js';
import { restoreMachine, saveMachine } from '../../src/board/snapshot.js';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import { buildMachine, type BuiltMachine, type MachineSpec } from '../../src/host/machine-spec.js';
import { decodeSnapshot, encodeSnapshot } from '../../src/host/snapshot-file.js';
import { comparableState } from '../helpers/snapshot-state.js';
import { formatStatsText } from '../../src/timing/stats.js';

const guest = findBuiltGuest();
const skip = guest === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : false;
const MiB = 2 ** 20;
const CONFIG: MachineConfig = { harts: 2, nodes: [{ memoryBytes: 128 * MiB, harts: [0, 1] }] };

/** Where the shell waits for input (the boot reaches its prompt in under 20 000 rounds). */
const TYPE_AT = 20_000;
const COMMAND = 'echo snapshot-$((6*7)); cat /proc/sys/kernel/random/boot_id | wc -c\n';

interface Run {
  built: BuiltMachine;
  console: number[];
}

function build(): Run {
  const console: number[] = [];
  const spec: MachineSpec = {
    config: CONFIG,
    time: 'instructions',
    builtinSbi: true,
    timing: null,
    drives: [{ file: guest!.disk, readOnly: true }],
    rngSeed: 5,
  };
  const built = buildMachine(spec, { console: (bytes) => console.push(...bytes), log: () => {}, hostMilliseconds: () => 0, translate: true });
  return { built, console };
}

/** Runs rounds `from` .. `to` - 1 (numbered from the boot), typing the command at TYPE_AT. */
function runRounds(run: Run, from: number, to: number): void {
  for (let round = from; round < to; round++) {
    if (round === TYPE_AT) run.built.machine.uart.input(new TextEncoder().encode(COMMAND));
    run.built.machine.runRound();
  }
}

function statsText(run: Run): string {
  return formatStatsText(run.built.simulation.stats.snapshot());
}

/** The machine's state as bytes, but for what only the translator decides (test/helpers/snapshot-state.ts). */
function stateBytes(run: Run): Buffer {
  return comparableState(saveMachine(run.built.machine, CONFIG, run.built.simulation));
}

describe('booting Linux saved after N rounds and restored runs M more as N + M straight', { skip }, () => {
  const seed = Number(process.env.MIRRORBALL_SNAPSHOT_SEED ?? Date.now() % 2 ** 31);
  it(`console, statistics and state across the seam (seed ${seed})`, { timeout: 300_000 }, () => {
    // One N in the early boot, one anywhere, and one the round after the command was typed (most of it still
    // waits in the UART's host queue: a 16-byte FIFO takes a little each round) with M past its answer.
    const pairs = fc.sample(fc.tuple(fc.integer({ min: 0, max: 24_000 }), fc.integer({ min: 1, max: 4_000 })), { seed, numRuns: 3 });
    pairs[0]![0] %= 3_000;
    pairs[2] = [TYPE_AT + 1, 2_000 + pairs[2]![1]];
    const straight = build();
    bootLinux(straight.built.machine, { kernel: readFileSync(guest!.kernel), initrd: readFileSync(guest!.initramfs), append: 'console=ttyS0' });
    const saves = new Map<number, { bytes: Uint8Array; console: number }>();
    const checks = new Map<number, { console: string; stats: string; state: Buffer }>();
    const marks = [...new Set(pairs.flatMap(([n, m]) => [n, n + m]))].sort((a, b) => a - b);
    let round = 0;
    for (const mark of marks) {
      runRounds(straight, round, mark);
      round = mark;
      if (pairs.some(([n]) => n === mark)) {
        saves.set(mark, { bytes: encodeSnapshot(saveMachine(straight.built.machine, CONFIG, straight.built.simulation)), console: straight.console.length });
      }
      if (pairs.some(([n, m]) => n + m === mark)) {
        checks.set(mark, { console: Buffer.from(straight.console).toString('latin1'), stats: statsText(straight), state: stateBytes(straight) });
      }
    }
    const text = Buffer.from(straight.console).toString('latin1');
    assert.match(text, /snapshot-42\r?\n37\r?\n/, 'the typed command ran');
    for (const [n, m] of pairs) {
      const saved = saves.get(n)!;
      const restored = build();
      restoreMachine(restored.built.machine, decodeSnapshot(saved.bytes), restored.built.simulation);
      runRounds(restored, n, n + m);
      const expected = checks.get(n + m)!;
      const seen: string = Buffer.from(straight.console.slice(0, saved.console)).toString('latin1') + Buffer.from(restored.console).toString('latin1');
      assert.equal(seen, expected.console, `console after ${n} + ${m} rounds`);
      assert.equal(statsText(restored), expected.stats, `stats after ${n} + ${m} rounds`);
      assert.ok(stateBytes(restored).equals(expected.state), `machine state after ${n} + ${m} rounds`);
      for (const disk of restored.built.disks) disk.close();
    }
    for (const disk of straight.built.disks) disk.close();
  });
});
