// The virtio entropy device (virtio 1.1 §5.4): fills the guest's buffers from an EntropySource.

import { StateError, StateReader } from '../../memory/state.js';
import type { VirtioContext, VirtioDevice } from './device.js';
import { scatter } from './queue.js';
import { DEVICE_ID_ENTROPY } from './spec.js';

/** Where random bytes come from. */
export interface EntropySource {
  fill(into: Uint8Array): void;
  /** The generator's state as plain data (snapshots); absent for a source outside the machine, which cannot be saved. */
  saveState?(): unknown;
  restoreState?(state: unknown): void;
}

const REQUESTQ = 0;
const QUEUE_SIZE = 64;
/** At most this many bytes per request (§5.4.6.1 lets the device write fewer than asked). */
const MAX_PER_REQUEST = 4096;

/**
 * A deterministic generator (xoshiro128**, seeded through splitmix32), because runs must reproduce
 * bit for bit (DESIGN.md, "Time and determinism"). It is not for cryptography, and neither is a guest
 * whose seed is known.
 */
export class SeededEntropy implements EntropySource {
  private readonly state = new Uint32Array(4);

  constructor(seed = 0) {
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      // splitmix32 spreads any seed, including 0, over a non-zero state.
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      this.state[i] = (z ^ (z >>> 16)) >>> 0;
    }
  }

  saveState(): { xoshiro128: Uint32Array } {
    return { xoshiro128: this.state.slice() };
  }

  restoreState(state: unknown): void {
    const saved = new StateReader(state, 'rng.source').typed('xoshiro128', Uint32Array, 4);
    if (saved.every((word) => word === 0)) throw new StateError('rng.source.xoshiro128: all zero, which xoshiro never reaches');
    this.state.set(saved);
  }

  /** The next 32 random bits. */
  next(): number {
    const s = this.state;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  fill(into: Uint8Array): void {
    for (let i = 0; i < into.length; i += 4) {
      let word = this.next();
      for (let j = i; j < Math.min(i + 4, into.length); j++, word >>>= 8) into[j] = word & 0xff;
    }
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

export class VirtioRng implements VirtioDevice {
  readonly deviceId = DEVICE_ID_ENTROPY;
  readonly features = 0n;
  readonly queueMaxSizes = [QUEUE_SIZE];
  readonly configSize = 0;
  private context: VirtioContext | undefined;

  constructor(private readonly source: EntropySource = new SeededEntropy()) {}

  saveState(): { source: unknown } {
    if (this.source.saveState === undefined) throw new Error('this virtio-rng draws from a source outside the machine, which a snapshot cannot hold');
    return { source: this.source.saveState() };
  }

  restoreState(state: unknown): void {
    const r = new StateReader(state, 'rng');
    if (this.source.restoreState === undefined) throw new StateError('rng: this virtio-rng\'s source cannot be restored');
    this.source.restoreState(r.value('source'));
  }

  readConfig(): number {
    return 0;
  }

  writeConfig(): void {}

  activate(context: VirtioContext): void {
    this.context = context;
  }

  reset(): void {
    this.context = undefined;
  }

  notify(index: number): void {
    const context = this.context;
    const queue = context?.queue(index);
    if (context === undefined || queue === undefined || index !== REQUESTQ) return;
    for (const chain of queue.drain()) {
      const bytes = new Uint8Array(Math.min(chain.writableLength, MAX_PER_REQUEST));
      this.source.fill(bytes);
      queue.push(chain.head, scatter(context.memory, chain.writable, 0, bytes));
    }
    context.usedBuffers(index);
  }
}
