// The exact BigInt path against the host's own correctly rounded binary64 arithmetic (round to nearest even).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { RM_RNE } from '../fp-state.js';
import { BINARY64, exactAdd, exactDiv, exactMul, exactSqrt, isqrt, unpack } from './exact.js';
import { f64BigBits, f64FromBigBits } from './float-bits.js';

const finite = fc.double({ noNaN: true, noDefaultInfinity: true });
const exact = (x: number) => unpack(f64BigBits(x), BINARY64);
const same = (got: bigint, want: number) => assert.equal(got, f64BigBits(want), `${f64FromBigBits(got)} vs ${want}`);

test('exact add, multiply and divide round like the host in RNE', () => {
  fc.assert(fc.property(finite, finite, (a, b) => {
    const sum = a + b;
    if (Number.isFinite(sum) && sum !== 0) same(exactAdd(exact(a), exact(b), BINARY64, RM_RNE), sum);
    const product = a * b;
    if (Number.isFinite(product)) same(exactMul(exact(a), exact(b), BINARY64, RM_RNE), product);
    const quotient = a / b;
    if (b !== 0 && Number.isFinite(quotient)) same(exactDiv(exact(a), exact(b), BINARY64, RM_RNE), quotient);
  }), { numRuns: 3000 });
});

test('exact square root rounds like the host', () => {
  fc.assert(fc.property(fc.double({ min: Number.MIN_VALUE, noNaN: true, noDefaultInfinity: true }), (a) => {
    same(exactSqrt(exact(a), BINARY64, RM_RNE), Math.sqrt(a));
  }), { numRuns: 2000 });
});

test('isqrt is the integer floor of the square root', () => {
  fc.assert(fc.property(fc.bigInt(0n, 1n << 300n), (n) => {
    const r = isqrt(n);
    assert.ok(r * r <= n && (r + 1n) * (r + 1n) > n);
  }));
});
