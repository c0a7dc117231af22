// Property tests of the split virtqueue: random, hostile descriptor tables never crash or hang the device.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { GuestMemory } from '../../memory/guest-memory.js';
import type { VirtioContext, VirtioDevice } from './device.js';
import { MAX_INDIRECT_DESCRIPTORS } from './queue.js';
import { DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE, F_INDIRECT_DESC, STATUS_DEVICE_NEEDS_RESET, feature } from './spec.js';
import { RAM_BASE, RAM_SIZE, virtioFixture } from './test-support.js';

const INDIRECT_AREA = RAM_BASE + 0x10_0000;
const DATA_AREA = RAM_BASE + 0x20_0000;
const INDIRECT_ENTRIES = 8;
const U32 = 2 ** 32;

/** A device that records chains and optionally scribbles over every writable byte. */
class RecordingDevice implements VirtioDevice {
  readonly deviceId = 99;
  readonly features = 0n;
  readonly queueMaxSizes = [16];
  readonly configSize = 0;
  readonly used: Array<{ head: number; length: number }> = [];
  context: VirtioContext | undefined;
  constructor(private readonly scribble: boolean) {}
  readConfig(): number { return 0; }
  writeConfig(): void {}
  activate(context: VirtioContext): void { this.context = context; }
  reset(): void { this.context = undefined; }
  notify(index: number): void {
    const { memory } = this.context!;
    const queue = this.context!.queue(index)!;
    for (const chain of queue.drain()) {
      if (this.scribble) for (const s of chain.writable) if (s.length > 0) memory.write(s.address, new Uint8Array(s.length).fill(0xff));
      queue.push(chain.head, chain.writableLength);
      this.used.push({ head: chain.head, length: chain.writableLength });
    }
    this.context!.usedBuffers(index);
  }
}

interface Desc { lo: number; hi: number; length: number; flags: number; next: number }

const descriptor = (size: number) => fc.record({
  lo: fc.oneof(
    { weight: 8, arbitrary: fc.integer({ min: 0, max: 63 }).map((k) => DATA_AREA + 0x100 * k) },
    { weight: 1, arbitrary: fc.constant(INDIRECT_AREA) },
    { weight: 1, arbitrary: fc.constant(RAM_BASE + RAM_SIZE - 8) },
    // Anywhere else, but not into RAM where the rings live (the reference does not model their contents).
    { weight: 1, arbitrary: fc.nat({ max: U32 - 1 }).filter((a) => a < RAM_BASE || a >= RAM_BASE + RAM_SIZE) },
  ),
  hi: fc.oneof({ weight: 5, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.nat({ max: U32 - 1 }) }),
  length: fc.oneof(
    { weight: 8, arbitrary: fc.nat({ max: 64 }) },
    { weight: 1, arbitrary: fc.constantFrom(16 * INDIRECT_ENTRIES, 16 * (MAX_INDIRECT_DESCRIPTORS + 1), RAM_SIZE, 0x8000_0000, U32 - 1) },
  ),
  flags: fc.oneof({ weight: 6, arbitrary: fc.nat({ max: DESC_F_NEXT | DESC_F_WRITE }) }, { weight: 1, arbitrary: fc.nat({ max: 7 }) }),
  next: fc.nat({ max: size + 2 }),
});

const scenario = fc.constantFrom(1, 2, 4, 8, 16).chain((size) => fc.record({
  size: fc.constant(size),
  table: fc.array(descriptor(size), { minLength: size, maxLength: size }),
  indirect: fc.array(descriptor(INDIRECT_ENTRIES), { minLength: INDIRECT_ENTRIES, maxLength: INDIRECT_ENTRIES }),
  heads: fc.array(fc.nat({ max: size + 1 }), { minLength: size, maxLength: size }),
  availIdx: fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 1, max: size }) }, { weight: 1, arbitrary: fc.nat({ max: 0xffff }) }),
  indirectFeature: fc.boolean(),
}));

function writeTable(memory: GuestMemory, at: number, table: readonly Desc[]): void {
  table.forEach((d, i) => {
    memory.writeU32(at + 16 * i, d.lo);
    memory.writeU32(at + 16 * i + 4, d.hi);
    memory.writeU32(at + 16 * i + 8, d.length);
    memory.writeU16(at + 16 * i + 12, d.flags);
    memory.writeU16(at + 16 * i + 14, d.next);
  });
}

/** An independent reading of §2.6.5: the writable length of a well-formed chain, or undefined. */
function reference(s: { table: Desc[]; indirect: Desc[]; indirectFeature: boolean }, head: number): number | undefined {
  const inRam = (d: Desc) => d.length === 0 || (d.hi === 0 && d.lo >= RAM_BASE && d.lo + d.length <= RAM_BASE + RAM_SIZE);
  const zero: Desc = { lo: 0, hi: 0, length: 0, flags: 0, next: 0 };
  let table = s.table;
  let index = head;
  let budget = table.length;
  let nested = false;
  let sawWritable = false;
  let readable = 0;
  let writable = 0;
  for (;;) {
    if (index >= table.length || budget-- === 0) return undefined;
    const d = table[index];
    if (d.flags & DESC_F_INDIRECT) {
      if (!s.indirectFeature || nested || d.flags & DESC_F_NEXT || d.length === 0 || d.length % 16 !== 0) return undefined;
      if (d.length / 16 > MAX_INDIRECT_DESCRIPTORS || !inRam(d)) return undefined;
      // Memory holds the random indirect entries at INDIRECT_AREA and zeros everywhere else it can point.
      const entries = d.length / 16;
      const start = d.lo === INDIRECT_AREA ? s.indirect.slice(0, entries) : [];
      table = [...start, ...Array.from({ length: entries - start.length }, () => zero)];
      index = 0;
      budget = table.length;
      nested = true;
      continue;
    }
    if (!inRam(d)) return undefined;
    if (d.flags & DESC_F_WRITE) {
      sawWritable = true;
      writable += d.length;
    } else {
      if (sawWritable) return undefined;
      readable += d.length;
    }
    if (readable >= U32 || writable >= U32) return undefined;
    if (!(d.flags & DESC_F_NEXT)) return writable;
    index = d.next;
  }
}

type Scenario = typeof scenario extends fc.Arbitrary<infer T> ? T : never;

function run(s: Scenario, scribble: boolean) {
  const device = new RecordingDevice(scribble);
  const { driver, memory, transport } = virtioFixture(device);
  assert.ok(driver.negotiate((offered) => (s.indirectFeature ? offered : offered & ~feature(F_INDIRECT_DESC))));
  const queue = driver.setupQueue(0, s.size);
  driver.driverOk();
  writeTable(memory, queue.desc, s.table);
  writeTable(memory, INDIRECT_AREA, s.indirect);
  s.heads.forEach((h, i) => memory.writeU16(queue.avail + 4 + 2 * i, h));
  memory.writeU16(queue.avail + 2, s.availIdx);
  queue.kick();
  return { device, transport };
}

describe('Virtqueue under hostile descriptor tables', () => {
  it('serves exactly the well-formed chains before the first bad one, then needs reset', { timeout: 120_000 }, () => {
    fc.assert(fc.property(scenario, (s) => {
      const expected: Array<{ head: number; length: number }> = [];
      let broken = s.availIdx > s.size;
      for (let i = 0; !broken && i < s.availIdx; i++) {
        const length = reference(s, s.heads[i]);
        if (length === undefined) broken = true;
        else expected.push({ head: s.heads[i], length });
      }
      const { device, transport } = run(s, false);
      assert.deepEqual(device.used, expected);
      assert.equal((transport.status & STATUS_DEVICE_NEEDS_RESET) !== 0, broken);
    }), { numRuns: 1000 });
  });

  it('returns after bounded work even when the device scribbles over the rings', { timeout: 120_000 }, () => {
    fc.assert(fc.property(scenario, (s) => {
      const { device } = run(s, true);
      assert.ok(device.used.length <= s.size, 'at most one ring of chains per notify');
    }), { numRuns: 300 });
  });
});
