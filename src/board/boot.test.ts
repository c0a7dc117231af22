// Tests of bootSbiPayload: a bare S-mode ELF under the built-in SBI (what `run --elf F --sbi` and a VM's
// `elf:` boot). Hand-built ELFs for where things go and every refusal; the thin-OS example run to its end.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { PRIV_S } from '../isa/opcodes.js';
import { makeElf } from '../../test/helpers/elf-file.js';
import { buildThinOs, thinOsChecksum, thinOsHarts, thinOsSkip } from '../../test/helpers/thin-os.js';
import { BootError, bootSbiPayload } from './boot.js';
import { Machine } from './machine.js';
import { HSM_STARTED, HSM_STOPPED } from './sbi.js';

const MiB = 2 ** 20;
const RAM = 0x8000_0000;
const PAYLOAD = RAM + 2 * MiB;
/** The FDT magic 0xd00dfeed, stored big-endian, read as a little-endian word. */
const FDT_MAGIC_READ_LITTLE_ENDIAN = 0xedfe0dd0;

function machine(harts = 2, memoryMiB = 32, console?: (bytes: Uint8Array) => void): Machine {
  return new Machine({ config: { harts, nodes: [{ memoryBytes: memoryMiB * MiB, harts: Array.from({ length: harts }, (_, i) => i) }] }, builtinSbi: true, console });
}

const code = Uint8Array.of(0x73, 0x00, 0x50, 0x10, 0x6f, 0xf0, 0xdf, 0xff); // wfi; j .-4

describe('bootSbiPayload', () => {
  it('loads the segments, puts the device tree at the top of node 0 and starts hart 0 in S-mode with a0 = 0, a1 = the tree', () => {
    const m = machine(2, 32);
    const data = PAYLOAD + 0x1000;
    const plan = bootSbiPayload(m, makeElf([{ address: PAYLOAD, data: code }, { address: data, data: Uint8Array.of(1, 2, 3), memorySize: 0x2000 }], PAYLOAD));
    const memory = m.bus.guestMemory();
    assert.equal(memory.readU32(PAYLOAD), 0x10500073);
    assert.deepEqual([...memory.read(data, 5)], [1, 2, 3, 0, 0], 'the rest of a segment zero-filled');
    assert.equal(plan.dtb.base, RAM + 30 * MiB, 'the highest 2 MiB-aligned place that holds it');
    assert.equal(memory.readU32(plan.dtb.base), FDT_MAGIC_READ_LITTLE_ENDIAN, 'a flattened device tree');
    const [h0, h1] = m.harts;
    assert.equal(h0!.pc, PAYLOAD);
    assert.equal(h0!.priv, PRIV_S);
    assert.equal(h0!.reg(10), 0);
    assert.equal(h0!.reg(11), plan.dtb.base);
    assert.equal(h0!.parked, false);
    assert.equal(h1!.parked, true, 'the other harts wait for HSM hart_start');
    assert.equal(m.sbi!.hsmState[0], HSM_STARTED);
    assert.equal(m.sbi!.hsmState[1], HSM_STOPPED);
  });

  const refusals: [string, () => Uint8Array, RegExp][] = [
    ['not an ELF', () => new TextEncoder().encode('#!/bin/sh\necho hi\n'), /^not an ELF file/],
    ['a segment outside RAM', () => makeElf([{ address: 0x1000, data: code }]), /^segment 0 \(0x1000, 8 bytes\) is outside RAM/],
    ['a segment past the end of RAM', () => makeElf([{ address: RAM + 31 * MiB, data: code, memorySize: 2 * MiB }]), /^segment 0 .* is outside RAM/],
    ['a segment over the device tree', () => makeElf([{ address: RAM + 29 * MiB, data: code, memorySize: 2 * MiB }]), /^segment 0 .* overlaps the device tree's 2 MiB at 0x81e00000/],
    ['an entry outside every segment', () => makeElf([{ address: PAYLOAD, data: code }], PAYLOAD + 0x1000), /^entry point 0x80201000 is not in a loaded segment/],
  ];
  for (const [what, elf, message] of refusals) {
    it(`refuses ${what} in one line, writing nothing`, () => {
      const m = machine();
      assert.throws(() => bootSbiPayload(m, elf()), (error: unknown) => {
        assert.ok(error instanceof BootError, String(error));
        assert.match(error.message, message);
        assert.ok(!error.message.includes('\n'));
        return true;
      });
      assert.equal(m.bus.guestMemory().readU32(PAYLOAD), 0, 'nothing loaded');
      assert.ok(m.harts.every((h) => h.parked || h.pc !== PAYLOAD), 'no hart started');
    });
  }
});

describe('the thin-OS example on the bare machine', { skip: thinOsSkip() }, () => {
  it('brings up every hart through HSM and prints the same checksum on 1 and 3 harts, then powers off with 0', () => {
    const elf = readFileSync(buildThinOs());
    const outputs = [1, 3].map((harts) => {
      let output = '';
      const m = machine(harts, 32, (bytes) => { output += Buffer.from(bytes).toString('latin1'); });
      bootSbiPayload(m, elf);
      for (let round = 0; m.exit === undefined && round < 100_000; round++) m.runRound();
      assert.deepEqual(m.exit, { kind: 'poweroff', code: 0 }, output);
      assert.equal(thinOsHarts(output), harts, output);
      for (let k = 0; k < harts; k++) assert.match(output, new RegExp(`thin-os: hart ${k} computed \\d+ rows`));
      return output;
    });
    const [one, three] = outputs.map(thinOsChecksum);
    assert.ok(one !== undefined, outputs[0]);
    assert.equal(three, one);
  });
});
