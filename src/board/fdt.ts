// A flattened device tree (DTB, version 17) writer: nodes, typed properties, and the binary layout.
// Devicetree Specification v0.3, chapter 5 ("Flattened Devicetree (DTB) Format").

/** §5.2: the header's magic number, 0xd00dfeed big-endian. */
export const FDT_MAGIC = 0xd00dfeed;
/** §5.2: we write version 17, readable by any reader of version 16 or later. */
export const FDT_VERSION = 17;
export const FDT_LAST_COMPATIBLE_VERSION = 16;
/** §5.4.1 structure block tokens. */
export const FDT_BEGIN_NODE = 0x1;
export const FDT_END_NODE = 0x2;
export const FDT_PROP = 0x3;
export const FDT_NOP = 0x4;
export const FDT_END = 0x9;
/** §5.2: ten 32-bit header fields. */
export const FDT_HEADER_SIZE = 40;
/** §5.3.2: a reservation entry is two 64-bit values (address, size). */
const RESERVATION_ENTRY_SIZE = 16;
/** §5.3.1 asks for 8-byte alignment of the reservation block; we align the structure block the same way. */
const BLOCK_ALIGNMENT = 8;
/** §5.4.1: tokens and property values are padded to 32-bit boundaries. */
const TOKEN_ALIGNMENT = 4;
/** §2.2.1 Table 2.1: a node name starts with a letter and has at most 31 characters before the unit address. */
const NODE_NAME = /^[a-zA-Z][0-9a-zA-Z,._+-]{0,30}$/;
/** §2.2.1: the unit address after '@' uses the same characters. */
const UNIT_ADDRESS = /^[0-9a-zA-Z,._+-]+$/;
/** §2.2.4.1 Table 2.2: characters allowed in a property name, at most 31 of them. */
const PROPERTY_NAME = /^[0-9a-zA-Z,._+?#-]{1,31}$/;
const U32_LIMIT = 2 ** 32;

/** Two big-endian cells holding a 64-bit value (§2.2.4.2, `<u64>` is two `<u32>`: high then low). */
export function u64Cells(value: number | bigint): [number, number] {
  const v = BigInt(value);
  if (v < 0n || v >= 1n << 64n) throw new RangeError(`${value} does not fit in 64 bits`);
  return [Number(v >> 32n), Number(v & 0xffffffffn)];
}

/** One node of the tree under construction. Properties keep the order in which they were first set. */
export class FdtNode {
  private readonly props = new Map<string, Uint8Array>();
  private readonly kids: FdtNode[] = [];

  constructor(readonly name: string) {
    checkNodeName(name);
  }

  get properties(): ReadonlyMap<string, Uint8Array> {
    return this.props;
  }

  get children(): readonly FdtNode[] {
    return this.kids;
  }

  /** Adds a child node; names must be unique among siblings (§2.2.1). */
  addChild(name: string): FdtNode {
    if (this.child(name) !== undefined) throw new Error(`node ${this.name || '/'} already has a child ${name}`);
    const node = new FdtNode(name);
    this.kids.push(node);
    return node;
  }

  child(name: string): FdtNode | undefined {
    return this.kids.find((k) => k.name === name);
  }

  /** Sets a property to raw bytes; replaces an earlier value of the same name. */
  setBytes(name: string, value: Uint8Array): this {
    checkPropertyName(name);
    this.props.set(name, value.slice());
    return this;
  }

  /** An empty property (§2.2.4.2 `<empty>`), used for booleans such as `interrupt-controller`. */
  setEmpty(name: string): this {
    return this.setBytes(name, new Uint8Array(0));
  }

  /** A `<prop-encoded-array>` of 32-bit cells, big-endian. */
  setCells(name: string, cells: readonly number[]): this {
    const bytes = new Uint8Array(cells.length * 4);
    const view = new DataView(bytes.buffer);
    cells.forEach((cell, i) => {
      if (!Number.isInteger(cell) || cell < 0 || cell >= U32_LIMIT) {
        throw new RangeError(`property ${name}: cell ${cell} is not a 32-bit unsigned integer`);
      }
      view.setUint32(i * 4, cell);
    });
    return this.setBytes(name, bytes);
  }

  /** One or more `<u32>` values. */
  setU32(name: string, ...values: number[]): this {
    return this.setCells(name, values);
  }

  /** One or more `<u64>` values, each as two cells. */
  setU64(name: string, ...values: (number | bigint)[]): this {
    return this.setCells(name, values.flatMap((v) => u64Cells(v)));
  }

  /** A `<string>`: the characters and a terminating NUL. */
  setString(name: string, value: string): this {
    return this.setStrings(name, [value]);
  }

  /** A `<stringlist>`: NUL-terminated strings one after another. */
  setStrings(name: string, values: readonly string[]): this {
    const parts = values.map((v) => {
      if (v.includes('\0')) throw new Error(`property ${name}: string contains a NUL`);
      return new TextEncoder().encode(`${v}\0`);
    });
    const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      bytes.set(p, at);
      at += p.length;
    }
    return this.setBytes(name, bytes);
  }
}

/** A whole tree plus its memory reservation block, ready to serialize. */
export class Fdt {
  readonly root = new FdtNode('');
  /** §5.2 `boot_cpuid_phys`: the hart that boots first. */
  bootCpuId = 0;
  private readonly reservations: { address: bigint; size: bigint }[] = [];
  private readonly phandles = new Map<FdtNode, number>();

  /** Adds an entry to the memory reservation block (§5.3): memory the client must not use. */
  addReservation(address: number | bigint, size: number | bigint): void {
    const [a, s] = [BigInt(address), BigInt(size)];
    u64Cells(a);
    u64Cells(s);
    if (s === 0n) throw new Error('a memory reservation must have a non-zero size');
    this.reservations.push({ address: a, size: s });
  }

  /** The phandle of `node` (§2.3.3), allocating the next free one and setting its `phandle` property. */
  phandle(node: FdtNode): number {
    let handle = this.phandles.get(node);
    if (handle === undefined) {
      // Phandles start at 1: 0 and 0xffffffff are not valid phandle values.
      handle = this.phandles.size + 1;
      this.phandles.set(node, handle);
      node.setU32('phandle', handle);
    }
    return handle;
  }

  /** The DTB: header, reservation block, structure block, strings block (§5.1 order). */
  toBytes(): Uint8Array {
    const strings = new StringTable();
    const structure = new ByteWriter();
    writeNode(this.root, structure, strings);
    structure.u32(FDT_END);

    const offReservations = align(FDT_HEADER_SIZE, BLOCK_ALIGNMENT);
    const reservationBytes = (this.reservations.length + 1) * RESERVATION_ENTRY_SIZE;
    const offStructure = align(offReservations + reservationBytes, BLOCK_ALIGNMENT);
    const structureBytes = structure.bytes();
    const stringBytes = strings.bytes();
    const offStrings = offStructure + structureBytes.length;
    const total = offStrings + stringBytes.length;

    const out = new Uint8Array(total);
    const view = new DataView(out.buffer);
    const header = [
      FDT_MAGIC,
      total,
      offStructure,
      offStrings,
      offReservations,
      FDT_VERSION,
      FDT_LAST_COMPATIBLE_VERSION,
      this.bootCpuId,
      stringBytes.length,
      structureBytes.length,
    ];
    header.forEach((field, i) => view.setUint32(i * 4, field));
    // The list ends with an all-zero entry, already present in the zero-filled buffer (§5.3.2).
    this.reservations.forEach((r, i) => {
      view.setBigUint64(offReservations + i * RESERVATION_ENTRY_SIZE, r.address);
      view.setBigUint64(offReservations + i * RESERVATION_ENTRY_SIZE + 8, r.size);
    });
    out.set(structureBytes, offStructure);
    out.set(stringBytes, offStrings);
    return out;
  }
}

function writeNode(node: FdtNode, out: ByteWriter, strings: StringTable): void {
  out.u32(FDT_BEGIN_NODE);
  out.text(node.name);
  for (const [name, value] of node.properties) {
    out.u32(FDT_PROP);
    out.u32(value.length);
    out.u32(strings.offsetOf(name));
    out.raw(value);
  }
  for (const child of node.children) writeNode(child, out, strings);
  out.u32(FDT_END_NODE);
}

/** §5.5: property names, NUL-terminated; each distinct name stored once. */
class StringTable {
  private readonly offsets = new Map<string, number>();
  private readonly chunks: Uint8Array[] = [];
  private size = 0;

  offsetOf(name: string): number {
    let offset = this.offsets.get(name);
    if (offset === undefined) {
      offset = this.size;
      const bytes = new TextEncoder().encode(`${name}\0`);
      this.chunks.push(bytes);
      this.size += bytes.length;
      this.offsets.set(name, offset);
    }
    return offset;
  }

  bytes(): Uint8Array {
    return concat(this.chunks, this.size);
  }
}

/** Big-endian output with 4-byte padding after names and values (§5.4.1). */
class ByteWriter {
  private readonly chunks: Uint8Array[] = [];
  private size = 0;

  u32(value: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, value);
    this.push(b);
  }

  /** A NUL-terminated name, padded. */
  text(value: string): void {
    this.raw(new TextEncoder().encode(`${value}\0`));
  }

  /** Bytes followed by zero padding to the next 32-bit boundary. */
  raw(value: Uint8Array): void {
    this.push(value);
    const pad = align(value.length, TOKEN_ALIGNMENT) - value.length;
    if (pad > 0) this.push(new Uint8Array(pad));
  }

  bytes(): Uint8Array {
    return concat(this.chunks, this.size);
  }

  private push(b: Uint8Array): void {
    this.chunks.push(b);
    this.size += b.length;
  }
}

function concat(chunks: readonly Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

function align(value: number, to: number): number {
  return Math.ceil(value / to) * to;
}

function checkNodeName(name: string): void {
  if (name === '') return; // the root node's name is empty (§5.4.1)
  const at = name.indexOf('@');
  const base = at < 0 ? name : name.slice(0, at);
  const unit = at < 0 ? undefined : name.slice(at + 1);
  const ok = NODE_NAME.test(base) && (unit === undefined || UNIT_ADDRESS.test(unit));
  if (!ok) throw new Error(`invalid device tree node name "${name}"`);
}

function checkPropertyName(name: string): void {
  if (!PROPERTY_NAME.test(name)) throw new Error(`invalid device tree property name "${name}"`);
}
