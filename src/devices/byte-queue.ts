// A first-in first-out queue of bytes from the host, waiting for room in the guest.

/**
 * Host input a device keeps for its guest at most. The host's sources (console sockets, stdin) stop
 * reading long before this (src/host/input-gate.ts); what a source without that backpressure sends beyond
 * it is dropped and counted, so a client typing faster than the guest reads cannot grow the host's memory.
 */
export const MAX_QUEUED_INPUT = 1 << 20;

export class ByteQueue {
  private chunks: Uint8Array[] = [];
  /** Bytes of chunks[0] already taken. */
  private offset = 0;
  private count = 0;
  /** Bytes refused because the queue was full. */
  dropped = 0;

  constructor(private readonly limit = MAX_QUEUED_INPUT) {}

  /** Bytes waiting. */
  get length(): number {
    return this.count;
  }

  /** Appends a copy of as much of `bytes` as fits under the limit; returns how many bytes it took. */
  push(bytes: Uint8Array | readonly number[]): number {
    const fits = Math.max(0, Math.min(bytes.length, this.limit - this.count));
    this.dropped += bytes.length - fits;
    if (fits <= 0) return 0;
    this.chunks.push(Uint8Array.from(fits === bytes.length ? bytes : bytes.slice(0, fits)));
    this.count += fits;
    return fits;
  }

  /** A copy of every byte waiting, the queue unchanged (snapshots). */
  contents(): Uint8Array {
    const out = new Uint8Array(this.count);
    let filled = 0;
    for (const [k, chunk] of this.chunks.entries()) {
      const part = k === 0 ? chunk.subarray(this.offset) : chunk;
      out.set(part, filled);
      filled += part.length;
    }
    return out;
  }

  /** Empties the queue. */
  clear(): void {
    this.chunks = [];
    this.offset = 0;
    this.count = 0;
  }

  /** Removes and returns up to `max` bytes from the front. */
  take(max: number): Uint8Array {
    const out = new Uint8Array(Math.max(0, Math.min(max, this.count)));
    let filled = 0;
    while (filled < out.length) {
      const chunk = this.chunks[0];
      const n = Math.min(chunk.length - this.offset, out.length - filled);
      out.set(chunk.subarray(this.offset, this.offset + n), filled);
      filled += n;
      this.offset += n;
      if (this.offset === chunk.length) {
        this.chunks.shift();
        this.offset = 0;
      }
    }
    this.count -= out.length;
    return out;
  }
}
