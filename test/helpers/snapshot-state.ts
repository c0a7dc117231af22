// A machine's saved state as bytes to compare, leaving out what only the translator decides.

import type { MachineSnapshot } from '../../src/board/snapshot.js';
import { encodeSnapshot } from '../../src/host/snapshot-file.js';

/**
 * `snapshot` as bytes, but for what only the translator decides: whether a TLB entry is on the fast path or
 * hidden from it (both are the same entry to the machine), the hart's stop flag, and whether its counters were
 * synced for the instruction under way. Two runs with the same bytes are the same machine.
 */
export function comparableState(snapshot: MachineSnapshot): Buffer {
  for (const hart of snapshot.harts as unknown as Record<string, unknown>[]) {
    delete hart.stop;
    delete hart.countersSynced;
    for (const set of hart.tlbs as { tag: Float64Array; hidden: Float64Array }[][]) {
      for (const tlb of set) {
        tlb.tag = tlb.tag.map((tag, i) => (tag === 2 ** 60 ? tlb.hidden[i]! : tag));
        tlb.hidden = new Float64Array(0);
      }
    }
  }
  return Buffer.from(encodeSnapshot(snapshot));
}
