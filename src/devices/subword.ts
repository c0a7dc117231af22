// Byte and halfword access to 32-bit device registers, for devices whose registers are words.

import type { AccessSize } from '../memory/device.js';

const BITS_PER_BYTE = 8;

/** The `size` bytes at byte `offset` (any alignment within the word) of the 32-bit register `word`. */
export function readSubword(word: number, offset: number, size: AccessSize): number {
  if (size === 4) return word >>> 0;
  const shift = (offset & 3) * BITS_PER_BYTE;
  return (word >>> shift) & ((1 << (size * BITS_PER_BYTE)) - 1);
}

/** `word` with the `size` bytes at byte `offset` replaced by `value`. */
export function mergeSubword(word: number, offset: number, size: AccessSize, value: number): number {
  if (size === 4) return value >>> 0;
  const shift = (offset & 3) * BITS_PER_BYTE;
  const mask = ((1 << (size * BITS_PER_BYTE)) - 1) << shift;
  return ((word & ~mask) | ((value << shift) & mask)) >>> 0;
}
