// What the snapshot loaders' fuzz tests share: the places in a decoded file, and damaged files refused whole.

import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SnapshotFileError } from '../../src/host/snapshot-file.js';

/** Every place in a decoded snapshot where a value sits, as a list of keys. */
export function paths(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  if (ArrayBuffer.isView(value) || typeof value !== 'object' || value === null) return [prefix];
  const entries = Array.isArray(value) ? value.map((v, i) => [i, v] as const) : Object.entries(value);
  return [prefix, ...entries.flatMap(([key, v]) => paths(v, [...prefix, key]))];
}

/** `decode` refuses `saved` cut short anywhere, or with any byte altered, with a SnapshotFileError. */
export function refusesDamagedFiles(saved: Uint8Array, decode: (bytes: Uint8Array) => unknown, numRuns: number): void {
  fc.assert(fc.property(fc.integer({ min: 0, max: saved.length - 1 }), fc.integer({ min: 1, max: 255 }), fc.boolean(), (at, xor, truncate) => {
    const bytes = truncate ? saved.slice(0, at) : saved.slice();
    if (!truncate) bytes[at]! ^= xor;
    assert.throws(() => decode(bytes), SnapshotFileError);
  }), { numRuns });
}
