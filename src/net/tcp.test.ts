// The TCP connection's send buffer against a plain array: any pieces pushed, any reads, any drops.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SendBuffer } from './tcp.js';

type Step = { kind: 'push'; size: number } | { kind: 'read'; start: number; length: number } | { kind: 'drop'; count: number };

describe('the send buffer', () => {
  it('reads back exactly what was pushed and not yet dropped, however the pieces were cut', () => {
    const step: fc.Arbitrary<Step> = fc.oneof(
      fc.record({ kind: fc.constant('push' as const), size: fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 3000, max: 20_000 })) }),
      fc.record({ kind: fc.constant('read' as const), start: fc.nat({ max: 50_000 }), length: fc.integer({ min: 0, max: 3000 }) }),
      fc.record({ kind: fc.constant('drop' as const), count: fc.nat({ max: 20_000 }) }),
    );
    fc.assert(fc.property(fc.array(step, { maxLength: 200 }), (steps) => {
      const buffer = new SendBuffer();
      let model: number[] = [];
      let next = 0;
      for (const s of steps) {
        if (s.kind === 'push') {
          const bytes = Uint8Array.from({ length: s.size }, () => next++ & 0xff);
          buffer.push(bytes);
          model.push(...bytes);
        } else if (s.kind === 'drop') {
          const count = Math.min(s.count, model.length);
          buffer.drop(count);
          model = model.slice(count);
        } else {
          const start = Math.min(s.start, model.length);
          assert.deepEqual([...buffer.read(start, s.length)], model.slice(start, start + s.length));
        }
        assert.equal(buffer.length, model.length);
      }
      assert.deepEqual([...buffer.read(0, model.length)], model);
    }), { numRuns: 300 });
  });
});
