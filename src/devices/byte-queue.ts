// A first-in first-out queue of bytes from the host, waiting for room in the guest.

export class ByteQueue {
  private chunks: Uint8Array[] = [];
  /** Bytes of chunks[0] already taken. */
  private offset = 0;
  private count = 0;

  /** Bytes waiting. */
  get length(): number {
    return this.count;
  }

  /** Appends a copy of `bytes`. */
  push(bytes: Uint8Array | readonly number[]): void {
    if (bytes.length === 0) return;
    this.chunks.push(Uint8Array.from(bytes));
    this.count += bytes.length;
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
