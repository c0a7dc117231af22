// Test helper: a minimal ELF64 RISC-V executable (header and PT_LOAD program headers, no sections) built by hand.

export interface ElfSegmentSpec {
  address: number;
  data: Uint8Array;
  /** Bytes in memory (the rest of data.length zero-filled); default data.length. */
  memorySize?: number;
}

const EHDR = 64;
const PHDR = 56;

export function makeElf(segments: readonly ElfSegmentSpec[], entry = segments[0]?.address ?? 0): Uint8Array {
  let at = EHDR + PHDR * segments.length;
  const offsets = segments.map((s) => {
    const offset = at;
    at += s.data.length;
    return offset;
  });
  const bytes = new Uint8Array(at);
  const v = new DataView(bytes.buffer);
  bytes.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]); // ELFCLASS64, little-endian, EV_CURRENT
  v.setUint16(16, 2, true); // ET_EXEC
  v.setUint16(18, 243, true); // EM_RISCV
  v.setUint32(20, 1, true);
  v.setBigUint64(24, BigInt(entry), true);
  v.setBigUint64(32, BigInt(EHDR), true);
  v.setUint16(52, EHDR, true);
  v.setUint16(54, PHDR, true);
  v.setUint16(56, segments.length, true);
  segments.forEach((s, i) => {
    const ph = EHDR + PHDR * i;
    v.setUint32(ph, 1, true); // PT_LOAD
    v.setUint32(ph + 4, 7, true); // RWX
    v.setBigUint64(ph + 8, BigInt(offsets[i]!), true);
    v.setBigUint64(ph + 16, BigInt(s.address), true);
    v.setBigUint64(ph + 24, BigInt(s.address), true);
    v.setBigUint64(ph + 32, BigInt(s.data.length), true);
    v.setBigUint64(ph + 40, BigInt(s.memorySize ?? s.data.length), true);
    bytes.set(s.data, offsets[i]!);
  });
  return bytes;
}
