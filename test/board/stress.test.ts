// The stress program (docs/threads.md): concurrent AMOs, LR/SC locks and counters and message passing on
// every hart, checking their invariants. At one thread it must pass and be reproducible; it must also catch
// a broken SC. MIRRORBALL_LONG=1 runs the long version.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { test, type TestContext } from 'node:test';
import { bootElf } from '../../src/board/boot.js';
import { Machine, type ExitReason } from '../../src/board/machine.js';
import { buildStress } from '../../src/bench/programs.js';
import { requireToolchain } from '../helpers/asm.js';

const LONG = process.env.MIRRORBALL_LONG === '1';
const HARTS = 4;
/** Per hart: 2 000 rounds of 12 shared-memory operations (about 0.5 s); the long tier 100 000. */
const ITERATIONS = LONG ? 100_000 : 2_000;
const LIMIT = LONG ? 2e9 : 1e8;
/** The mean cycles per hart and round in the runs that switch harts often. */
const SHORT_SLICE = 37;

interface Outcome {
  exit: ExitReason | undefined;
  instructions: number;
  /** SHA-256 of every byte of RAM at the end. */
  memory: string;
}

function program(t: TestContext): Uint8Array | undefined {
  if (!requireToolchain(t)) return undefined;
  return readFileSync(buildStress(HARTS, ITERATIONS));
}

/**
 * Runs the program on a fresh machine of HARTS harts, in the machine's rounds or, with `shuffle`, in short
 * rounds where each hart runs a pseudo-random 1 to 2 × SHORT_SLICE - 1 cycles (seeded by `shuffle`): harts
 * then switch at every point of the program, inside LR/SC windows too, in no fixed phase. `sabotage` may
 * break the machine first.
 */
function runStress(elf: Uint8Array, options: { shuffle?: number; sabotage?: (m: Machine) => void } = {}): Outcome {
  const machine = new Machine({ config: { harts: HARTS, nodes: [{ memoryBytes: 16 << 20, harts: [0, 1, 2, 3] }] }, builtinSbi: false });
  bootElf(machine, elf);
  options.sabotage?.(machine);
  let seed = options.shuffle;
  while (machine.exit === undefined && machine.instructions < LIMIT) {
    if (seed === undefined) {
      machine.runRound();
      continue;
    }
    const end = machine.cycles + SHORT_SLICE;
    for (const h of machine.harts) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      machine.instructions += machine.runHart(h, end - SHORT_SLICE + 1 + ((seed >>> 8) % (2 * SHORT_SLICE - 1)));
    }
    machine.closeRound(end);
  }
  const hash = createHash('sha256');
  for (const region of machine.bus.machineRam) hash.update(region.u8);
  return { exit: machine.exit, instructions: machine.instructions, memory: hash.digest('hex') };
}

test(`the stress program passes on ${HARTS} harts, and two runs are the same to the instruction and the byte`, (t) => {
  const elf = program(t);
  if (elf === undefined) return;
  const first = runStress(elf);
  assert.deepEqual(first.exit, { kind: 'htif', code: 0 }, `exit ${JSON.stringify(first.exit)} after ${first.instructions} instructions`);
  // Every hart did its share: 12 shared-memory operations a round at the very least.
  assert.ok(first.instructions > HARTS * ITERATIONS * 12, `only ${first.instructions} instructions`);
  const second = runStress(elf);
  assert.deepEqual(second, first);
});

test(`the stress program passes with harts switched every 1 to ${2 * SHORT_SLICE - 1} cycles`, (t) => {
  const elf = program(t);
  if (elf === undefined) return;
  for (const shuffle of [1, 2, 3]) {
    const outcome = runStress(elf, { shuffle });
    assert.deepEqual(outcome.exit, { kind: 'htif', code: 0 }, `seed ${shuffle}: exit ${JSON.stringify(outcome.exit)} after ${outcome.instructions} instructions`);
  }
});

test('the stress program catches an SC that succeeds after another hart wrote its line', (t) => {
  const elf = program(t);
  if (elf === undefined) return;
  const broken = runStress(elf, { shuffle: 1, sabotage: (m) => {
    // A reservation that is never lost: an SC succeeds whenever its hart executed an LR before.
    const reserved = new Set<number>();
    m.reservations.reserve = (hart) => { reserved.add(hart); };
    m.reservations.take = (hart) => reserved.has(hart);
  } });
  assert.equal(broken.exit?.kind, 'htif');
  assert.notEqual((broken.exit as { code: number }).code, 0, 'the program did not notice');
});
