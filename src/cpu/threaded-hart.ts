// A hart that shares machine memory with harts on other threads (docs/threads.md, "The memory model"):
// aligned doubleword loads and stores are one 8-byte access, and FENCE is a host barrier. Fast mode only
// (timing mode takes the one-thread path).

import { TLB_MASK } from './tlb.js';
import { ACCESS_READ, ACCESS_WRITE } from './mmu.js';
import { Hart } from './hart.js';
import type { HartEnvironment } from './hart-state.js';

export class ThreadedHart extends Hart {
  /** A word of this hart's own: FENCE is an atomic add on it, a full barrier for the host and for V8. */
  private readonly fenceWord = new Int32Array(new SharedArrayBuffer(64));
  /** A doubleword as a float64 and as its two words (little-endian, as the machine's RAM views are). */
  private readonly scratch64 = new Float64Array(1);
  private readonly scratch32 = new Int32Array(this.scratch64.buffer);

  constructor(id: number, env: HartEnvironment) {
    super(id, env);
    this.onFence = () => { Atomics.add(this.fenceWord, 0, 1); };
  }

  /**
   * An aligned doubleword in RAM is one 8-byte load, through the region's Float64Array: the int32 pair of
   * the one-thread path can be torn by a store on another thread, which RVWMO forbids (and Linux relies on
   * for page-table entries and 64-bit READ_ONCE). The float64 is only a carrier of the 64 bits, copied into
   * the scratch doubleword and read back as words, never computed on (docs/threads.md: why not
   * `Atomics.load` on the BigInt64Array, which made a BigInt per access). Everything else takes the
   * one-thread path.
   */
  override load64(va: number): number {
    if ((va & 7) === 0 && this.timing === undefined) {
      const vpn = Math.floor(va / 4096);
      const t = this.readTlb;
      const i = vpn & TLB_MASK;
      if (t.tag[i] === vpn) return this.split(t.mem[i].f64[(va + t.delta[i]) >>> 3]!);
      // A miss: translate (faults and all) as the slow path would, then read RAM in one access.
      this.locate(va, ACCESS_READ, 8);
      const region = this.locRegion;
      if (region !== undefined) return this.split(region.f64[this.locOffset >>> 3]!);
    }
    return super.load64(va);
  }

  override store64(va: number, lo: number, hi: number): void {
    if ((va & 7) === 0 && this.timing === undefined) {
      const vpn = Math.floor(va / 4096);
      const t = this.writeTlb;
      const i = vpn & TLB_MASK;
      let region = t.tag[i] === vpn ? t.mem[i] : undefined;
      let o = region === undefined ? 0 : va + t.delta[i];
      if (region === undefined) {
        // Through the hart's locate, which also sees a store into translated code.
        this.locate(va, ACCESS_WRITE, 8);
        region = this.locRegion;
        o = this.locOffset;
      }
      if (region !== undefined) {
        const reservations = this.env.reservations;
        if (reservations.count !== 0) reservations.storeBy(this.id, region.base + o, 8);
        this.scratch32[0] = lo;
        this.scratch32[1] = hi;
        region.f64[o >>> 3] = this.scratch64[0]!;
        return;
      }
    }
    super.store64(va, lo, hi);
  }

  /** The low word of the doubleword `bits`, its high word left in loadHi (as HartMemory.load64 does). */
  private split(bits: number): number {
    this.scratch64[0] = bits;
    this.loadHi = this.scratch32[1]!;
    return this.scratch32[0]!;
  }
}
