// The M extension's 64-bit helpers on int32 pairs against BigInt semantics (ISA §7.1–7.2), path by path.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { mulDiv64 } from './alu.js';

const MIN64 = -(1n << 63n);
const u64 = (v: bigint): bigint => BigInt.asUintN(64, v);

function expected(f3: number, a: bigint, b: bigint): bigint {
  switch (f3) {
    case 1: return (a * b) >> 64n;
    case 2: return (a * u64(b)) >> 64n;
    case 3: return (u64(a) * u64(b)) >> 64n;
    case 4: return b === 0n ? -1n : a === MIN64 && b === -1n ? a : a / b;
    case 5: return b === 0n ? -1n : u64(a) / u64(b);
    case 6: return b === 0n ? a : a === MIN64 && b === -1n ? 0n : a % b;
    default: return b === 0n ? a : u64(a) % u64(b);
  }
}

function run(f3: number, a: bigint, b: bigint): bigint {
  const x = new Int32Array(64);
  const words = (v: bigint): [number, number] => [Number(BigInt.asIntN(32, v)), Number(BigInt.asIntN(32, v >> 32n))];
  const [al, ah] = words(a);
  const [bl, bh] = words(b);
  mulDiv64(x, 10, f3, al, ah, bl, bh);
  return (BigInt(x[11]) << 32n) | BigInt(x[10] >>> 0);
}

// Each division path: both under 2^32, a divisor under 2^32 with a large dividend, a divisor of 2^32 or more;
// the sign combinations and the edges (zero, -1, MIN64) from the constants.
const EDGES = [0n, 1n, -1n, 2n, 10n, MIN64, -MIN64 - 1n, 0xffffffffn, 0x100000000n, -0x100000000n, 0x7fffffffn, -0x80000000n];
const any64 = fc.bigInt({ min: MIN64, max: -MIN64 - 1n });
const word = fc.oneof(
  any64,
  fc.constantFrom(...EDGES),
  fc.bigInt({ min: 0n, max: 0xffffffffn }),
  fc.bigInt({ min: -0xffffffffn, max: 0xffffffffn }),
  fc.bigInt({ min: 1n, max: 0xffffn }),
);

for (const [name, f3] of [['mulh', 1], ['mulhsu', 2], ['mulhu', 3], ['div', 4], ['divu', 5], ['rem', 6], ['remu', 7]] as const) {
  test(`${name} on pairs equals the BigInt definition`, () => {
    fc.assert(fc.property(word, word, (a, b) => {
      assert.equal(run(f3, a, b), BigInt.asIntN(64, expected(f3, a, b)), `${name} ${a} ${b}`);
    }), { numRuns: 20000 });
  });
}
