// Tests of the modelled TLB: ASID tags, global entries, permissions, one lookup over every way, large
// entries, and flushes that drop exactly what they must; a property checks it never answers for an entry
// that was not filled or has been flushed since.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ALLOWS_EXEC, ALLOWS_READ, ALLOWS_WRITE, LARGE_ENTRIES, TLB_WAYS, TlbModel } from './tlb-model.js';
import { TLB_SIZE } from './tlb.js';

const RW = ALLOWS_READ | ALLOWS_WRITE;
const MB2 = 2 * 1024 * 1024;

test('an entry answers in its address space, a global one in all; a different ASID misses', () => {
  const m = new TlbModel();
  m.fill(0, 0x100, 5, RW, 0x8000_0000);
  m.fill(1, 0x200, -1, RW, 0x8000_1000);
  assert.ok(m.hits(0x100, 5, ALLOWS_READ), 'an entry of ASID 5 missed in ASID 5');
  assert.ok(!m.hits(0x100, 6, ALLOWS_READ), 'an entry of ASID 5 answered in ASID 6');
  assert.ok(m.hits(0x200, 6, ALLOWS_READ) && m.hits(0x200, 9, ALLOWS_WRITE), 'a global entry missed');
  assert.ok(!m.hits(0x101, 5, ALLOWS_READ), 'another page hit');
});

test('an entry filled by one kind of access serves another its permissions allow, from any way', () => {
  const m = new TlbModel();
  m.fill(0, 0x10, 1, ALLOWS_READ, 0x8000_0000); // a read: the page was clean, so a store must walk to set D
  assert.ok(m.hits(0x10, 1, ALLOWS_READ));
  assert.ok(!m.hits(0x10, 1, ALLOWS_WRITE), 'a store to a page whose entry lacks D must miss');
  assert.ok(!m.hits(0x10, 1, ALLOWS_EXEC));
  m.fill(4, 0x10, 1, RW, 0x8000_0000); // the store's walk (way: S view, write)
  assert.ok(m.hits(0x10, 1, ALLOWS_WRITE) && m.hits(0x10, 1, ALLOWS_READ));
  m.fill(TLB_WAYS - 1, 0x11, 1, ALLOWS_EXEC | ALLOWS_READ, 0x8000_2000);
  assert.ok(m.hits(0x11, 1, ALLOWS_READ), 'a fetch\'s entry did not serve a load');
});

test('a large entry answers for the 512 pages of its 2 MiB frame and no other', () => {
  const m = new TlbModel();
  const vpn = 3 * 512 + 17;
  m.fillLarge(vpn, -1, RW, 0x8020_0000);
  for (const p of [3 * 512, 3 * 512 + 300, 3 * 512 + 511]) assert.ok(m.hits(p, 2, ALLOWS_WRITE), `page ${p} of the frame missed`);
  assert.ok(!m.hits(3 * 512 - 1, 2, ALLOWS_READ) && !m.hits(4 * 512, 2, ALLOWS_READ), 'a page outside the frame hit');
  assert.deepEqual(m.large.entries(), [{ frame: 3, asid: -1, base: 0x8020_0000 }]);
  // A negative (upper-half) virtual page number works the same.
  m.fillLarge(-512 * 5 + 3, 1, ALLOWS_EXEC, 0x8040_0000);
  assert.ok(m.hits(-512 * 5, 1, ALLOWS_EXEC) && m.hits(-512 * 4 - 1, 1, ALLOWS_EXEC) && !m.hits(-512 * 4, 1, ALLOWS_EXEC));
});

test('flushes: an ASID keeps global entries, a page drops its large entry too, a machine page drops what maps it', () => {
  const m = new TlbModel();
  m.fill(0, 0x10, 5, RW, 0x8000_0000);
  m.fill(1, 0x11, -1, RW, 0x8000_1000);
  m.fill(2, 0x12, 6, RW, 0x8000_2000);
  m.fillLarge(512 * 7, 5, RW, 0x8060_0000);
  m.flushAsid(5);
  assert.ok(!m.hits(0x10, 5, ALLOWS_READ) && !m.hits(512 * 7, 5, ALLOWS_READ), 'flushAsid(5) left an entry of ASID 5');
  assert.ok(m.hits(0x11, 5, ALLOWS_READ) && m.hits(0x12, 6, ALLOWS_READ), 'flushAsid(5) dropped a global entry or one of ASID 6');

  m.fillLarge(512 * 7, 5, RW, 0x8060_0000);
  m.flushPage(512 * 7 + 100);
  assert.ok(!m.hits(512 * 7 + 1, 5, ALLOWS_READ), 'a fence of a page inside a large entry left it');
  assert.ok(m.hits(0x11, 5, ALLOWS_READ));

  m.fillLarge(512 * 7, 5, RW, 0x8060_0000);
  m.flushPhysical(0x8060_0000 + 511 * 4096);
  assert.ok(!m.hits(512 * 7, 5, ALLOWS_READ), 'a shootdown of a page of the block left the large entry');
  m.fillLarge(512 * 7, 5, RW, 0x8060_0000);
  m.flushPhysical(0x8060_0000 + MB2);
  assert.ok(m.hits(512 * 7, 5, ALLOWS_READ), 'a shootdown of the page after the block dropped the large entry');
  m.flushPhysical(0x8000_1000);
  assert.ok(!m.hits(0x11, 5, ALLOWS_READ) && m.hits(0x12, 6, ALLOWS_READ), 'a shootdown dropped the wrong 4 KiB entry');
  m.flush();
  assert.ok(!m.hits(0x12, 6, ALLOWS_READ) && m.large.entries().length === 0, 'flush left entries');
});

type Step =
  | { kind: 'fill'; way: number; vpn: number; asid: number; allows: number; page: number }
  | { kind: 'large'; vpn: number; asid: number; allows: number; block: number }
  | { kind: 'flush' }
  | { kind: 'asid'; asid: number }
  | { kind: 'page'; vpn: number }
  | { kind: 'physical'; page: number };

test('property: a hit always has a live fill behind it, and the last fill of a page always hits', () => {
  // Few pages that collide in the sets, few ASIDs (-1 global), few machine pages and blocks.
  const vpn = fc.constantFrom(1, 2, 1 + TLB_SIZE, 2 + 2 * TLB_SIZE, 600, 600 + LARGE_ENTRIES * 512, -3);
  const asid = fc.integer({ min: -1, max: 2 });
  const allows = fc.integer({ min: 1, max: 7 });
  const step: fc.Arbitrary<Step> = fc.oneof(
    { weight: 6, arbitrary: fc.record({ kind: fc.constant('fill' as const), way: fc.nat(TLB_WAYS - 1), vpn, asid, allows, page: fc.nat(3) }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('large' as const), vpn, asid, allows, block: fc.nat(2) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('flush' as const) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('asid' as const), asid: fc.nat(2) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('page' as const), vpn }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('physical' as const), page: fc.nat(4 * 512) }) },
  );
  const pageAddress = (p: number): number => 0x8000_0000 + p * 4096;
  const blockAddress = (b: number): number => 0x8000_0000 + b * MB2;
  fc.assert(
    fc.property(fc.array(step, { maxLength: 80 }), fc.array(fc.tuple(vpn, asid, allows), { minLength: 1, maxLength: 10 }), (steps, probes) => {
      const m = new TlbModel();
      // Every fill not flushed since: a hit must match one of them.
      let live: { vpn?: number; frame?: number; asid: number; allows: number; lo: number; hi: number }[] = [];
      for (const s of steps) {
        switch (s.kind) {
          case 'fill':
            m.fill(s.way, s.vpn, s.asid, s.allows, pageAddress(s.page));
            live.push({ vpn: s.vpn, asid: s.asid, allows: s.allows, lo: pageAddress(s.page), hi: pageAddress(s.page) + 4096 });
            assert.ok(m.hits(s.vpn, s.asid === -1 ? 7 : s.asid, s.allows), 'a fresh fill missed');
            break;
          case 'large':
            m.fillLarge(s.vpn, s.asid, s.allows, blockAddress(s.block));
            live.push({ frame: Math.floor(s.vpn / 512), asid: s.asid, allows: s.allows, lo: blockAddress(s.block), hi: blockAddress(s.block) + MB2 });
            assert.ok(m.hits(s.vpn, s.asid === -1 ? 7 : s.asid, s.allows), 'a fresh large fill missed');
            break;
          case 'flush': m.flush(); live = []; break;
          case 'asid': m.flushAsid(s.asid); live = live.filter((e) => e.asid !== s.asid); break;
          case 'page': m.flushPage(s.vpn); live = live.filter((e) => e.vpn !== s.vpn && e.frame !== Math.floor(s.vpn / 512)); break;
          case 'physical': {
            const a = pageAddress(s.page);
            m.flushPhysical(a);
            live = live.filter((e) => a < e.lo || a >= e.hi);
            break;
          }
        }
        for (const [v, a, need] of probes) {
          if (!m.hits(v, a, need)) continue;
          const behind = live.some((e) => (e.vpn === v || e.frame === Math.floor(v / 512)) && (e.asid === a || e.asid === -1) && (e.allows & need) !== 0);
          assert.ok(behind, `page ${v} ASID ${a} (needs ${need}) hit with no live fill behind it`);
        }
      }
    }),
    { numRuns: 300 },
  );
});
