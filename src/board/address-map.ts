// The board's one address-map table (QEMU `virt` compatible) and the NUMA topology it is laid out for.
// Both the bus wiring (machine.ts) and the device tree (device-tree.ts) are generated from this file.

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** An MMIO window of the board, with the PLIC source it raises (if any). */
export interface BoardRegion {
  readonly name: string;
  readonly base: number;
  readonly size: number;
  /** PLIC interrupt source number (1-based; 0 is "no interrupt" in the PLIC spec §1.2). */
  readonly irq?: number;
}

/** Harts the board supports: `cpu@N` ids 0..31 and two PLIC contexts each. */
export const MAX_HARTS = 32;

/** PLIC spec v1.0.0 §3: contexts start at 0x200000, one 0x1000 page of threshold/claim each. */
export const PLIC_CONTEXT_BASE = 0x200000;
export const PLIC_CONTEXT_STRIDE = 0x1000;
/** Each hart has an M-mode and an S-mode external-interrupt context (context 2h and 2h+1), as on QEMU virt. */
export const PLIC_CONTEXTS_PER_HART = 2;
/** Bytes of PLIC register space that `contexts` contexts use. */
export function plicSpan(contexts: number): number {
  return PLIC_CONTEXT_BASE + PLIC_CONTEXT_STRIDE * contexts;
}
/**
 * QEMU virt reserves 0x600000 (room for 1024 contexts); our maximum of 32 harts needs only
 * plicSpan(64) = 0x240000, so the QEMU window is kept and the rest reads as zero.
 */
export const PLIC_WINDOW_SIZE = 0x600000;
/**
 * Interrupt sources 1..31: each source's pending and enable bit then lives in the first 32-bit word of
 * its array (PLIC spec §4, §5), and the board uses 1..10.
 */
export const PLIC_SOURCES = 31;

export const VIRTIO_SLOTS = 8;
const VIRTIO_BASE = 0x10001000;
const VIRTIO_STRIDE = 0x1000;
const VIRTIO_FIRST_IRQ = 1;

/** The fixed MMIO windows; their bases and sizes are QEMU virt's (hw/riscv/virt.c memory map). */
export const TEST_DEVICE: BoardRegion = { name: 'test', base: 0x100000, size: 0x1000 };
/** Mirrorball's control device (devices/control.ts): a page where QEMU virt has nothing. */
export const CONTROL_DEVICE: BoardRegion = { name: 'control', base: 0x110000, size: 0x1000 };
export const CLINT: BoardRegion = { name: 'clint', base: 0x2000000, size: 0x10000 };
export const PLIC: BoardRegion = { name: 'plic', base: 0xc000000, size: PLIC_WINDOW_SIZE };
export const UART0: BoardRegion = { name: 'uart0', base: 0x10000000, size: 0x100, irq: 10 };

/** virtio-mmio transport `slot` (0..7): one page each from 0x10001000, interrupt sources 1..8. */
export function virtioSlot(slot: number): BoardRegion {
  if (!Number.isInteger(slot) || slot < 0 || slot >= VIRTIO_SLOTS) throw new RangeError(`no virtio-mmio slot ${slot}`);
  return { name: `virtio${slot}`, base: VIRTIO_BASE + VIRTIO_STRIDE * slot, size: VIRTIO_STRIDE, irq: VIRTIO_FIRST_IRQ + slot };
}

/** Every MMIO window of the board, in address order. */
export function boardRegions(): BoardRegion[] {
  const virtio = Array.from({ length: VIRTIO_SLOTS }, (_, i) => virtioSlot(i));
  return [TEST_DEVICE, CONTROL_DEVICE, CLINT, PLIC, UART0, ...virtio];
}

/** RAM starts here (QEMU virt); node memories follow one another from this address. */
export const RAM_BASE = 0x80000000;

/** Guest-visible clocks (device tree `timebase-frequency` and the UART's `clock-frequency`), as on QEMU virt. */
export const TIMEBASE_FREQUENCY = 10_000_000;
export const UART_CLOCK_FREQUENCY = 0x384000;

/** Values written to the test device (SiFive test finisher) to power off and to reboot. */
export const FINISHER_PASS = 0x5555;
export const FINISHER_RESET = 0x7777;

/** Topology limits. 16 MiB leaves room for a small kernel; 4 GiB is the largest RAM buffer per node. */
export const MIN_NODE_MEMORY = 16 * MiB;
export const MAX_NODE_MEMORY = 4 * GiB;
export const PAGE_SIZE = 4 * KiB;
/** Linux's LOCAL_DISTANCE and REMOTE_DISTANCE; distances are one byte (drivers/base/arch_numa.c). */
export const LOCAL_DISTANCE = 10;
export const DEFAULT_REMOTE_DISTANCE = 20;
const MAX_DISTANCE = 255;

/** One NUMA node as the user describes it: its memory and the hart ids that sit on it. */
export interface NodeConfig {
  memoryBytes: number;
  harts: number[];
}

/** The machine's topology. Harts are numbered 0..harts-1; each belongs to exactly one node. */
export interface MachineConfig {
  harts: number;
  nodes: NodeConfig[];
  /** SLIT-style distances: 10 on the diagonal, symmetric, 11..255 elsewhere. Default: 20 between nodes. */
  distances?: number[][];
}

/** A validated node with its place in the physical address space. */
export interface NodeLayout {
  readonly id: number;
  readonly base: number;
  readonly size: number;
  readonly harts: readonly number[];
}

/** A validated MachineConfig with node memories laid out one after another from RAM_BASE. */
export interface MachineLayout {
  readonly harts: number;
  readonly nodes: readonly NodeLayout[];
  readonly distances: readonly (readonly number[])[];
  /** The node of each hart, indexed by hart id. */
  readonly hartNode: readonly number[];
  /** One past the last RAM address. */
  readonly ramEnd: number;
}

/** A configuration with mistakes; `problems` has one sentence per mistake. */
export class MachineConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid machine configuration:\n  - ${problems.join('\n  - ')}`);
  }
}

/** Checks a configuration and lays it out, or throws MachineConfigError listing every mistake. */
export function layoutMachine(config: MachineConfig): MachineLayout {
  const problems: string[] = [];
  const { harts, nodes } = config;
  const hartsOk = Number.isInteger(harts) && harts >= 1 && harts <= MAX_HARTS;
  if (!hartsOk) problems.push(`harts must be an integer from 1 to ${MAX_HARTS}, not ${harts}`);
  if (nodes.length === 0) problems.push('there must be at least one node');
  if (nodes.length > MAX_HARTS) problems.push(`at most ${MAX_HARTS} nodes, not ${nodes.length}`);

  const hartNode: number[] = [];
  nodes.forEach((node, id) => {
    const mem = node.memoryBytes;
    if (!Number.isInteger(mem) || mem < MIN_NODE_MEMORY) {
      problems.push(`node ${id} has ${describeBytes(mem)} of memory; each node needs at least ${describeBytes(MIN_NODE_MEMORY)}`);
    } else if (mem > MAX_NODE_MEMORY) {
      problems.push(`node ${id} has ${describeBytes(mem)} of memory; at most ${describeBytes(MAX_NODE_MEMORY)} per node`);
    } else if (mem % PAGE_SIZE !== 0) {
      problems.push(`node ${id} memory (${mem} bytes) must be a multiple of 4 KiB`);
    }
    for (const h of node.harts) {
      if (!Number.isInteger(h) || h < 0 || (hartsOk && h >= harts)) {
        problems.push(`node ${id} lists hart ${h}, but harts are numbered 0 to ${hartsOk ? harts - 1 : '?'}`);
      } else if (hartNode[h] !== undefined) {
        problems.push(`hart ${h} is listed in node ${hartNode[h]} and again in node ${id}`);
      } else {
        hartNode[h] = id;
      }
    }
  });
  if (hartsOk) {
    const missing = Array.from({ length: harts }, (_, h) => h).filter((h) => hartNode[h] === undefined);
    if (missing.length === 1) problems.push(`hart ${missing[0]} belongs to no node`);
    if (missing.length > 1) problems.push(`harts ${missing.join(', ')} belong to no node`);
  }

  const distances = config.distances ?? defaultDistances(nodes.length);
  checkDistances(distances, nodes.length, problems);
  if (problems.length > 0) throw new MachineConfigError(problems);

  let base = RAM_BASE;
  const laid = nodes.map((node, id): NodeLayout => {
    const layout = { id, base, size: node.memoryBytes, harts: [...node.harts].sort((a, b) => a - b) };
    base += node.memoryBytes;
    return layout;
  });
  return { harts, nodes: laid, distances: distances.map((row) => [...row]), hartNode, ramEnd: base };
}

/** 10 on the diagonal and 20 elsewhere: every remote node equally far. */
export function defaultDistances(nodes: number): number[][] {
  return Array.from({ length: nodes }, (_, i) =>
    Array.from({ length: nodes }, (_, j) => (i === j ? LOCAL_DISTANCE : DEFAULT_REMOTE_DISTANCE)),
  );
}

function checkDistances(d: readonly (readonly number[])[], nodes: number, problems: string[]): void {
  if (d.length !== nodes || d.some((row) => row.length !== nodes)) {
    problems.push(`distances must be a ${nodes}x${nodes} matrix (one row and column per node)`);
    return;
  }
  problems.push(...distanceValueProblems(d));
}

/**
 * The ACPI SLIT rules for the values of a square distance matrix: 10 on the diagonal, symmetric, integers
 * from 11 to 255 elsewhere. One message per bad value.
 */
export function distanceValueProblems(d: readonly (readonly number[])[]): string[] {
  const problems: string[] = [];
  for (let i = 0; i < d.length; i++) {
    for (let j = 0; j < d.length; j++) {
      const v = d[i]![j]!;
      if (i === j && v !== LOCAL_DISTANCE) {
        problems.push(`distance from node ${i} to itself must be ${LOCAL_DISTANCE}, not ${v}`);
      } else if (i !== j && (!Number.isInteger(v) || v <= LOCAL_DISTANCE || v > MAX_DISTANCE)) {
        problems.push(`distance from node ${i} to node ${j} must be an integer from 11 to ${MAX_DISTANCE}, not ${v}`);
      } else if (i < j && v !== d[j]![i]) {
        problems.push(`distances must be symmetric: node ${i} to ${j} is ${v} but node ${j} to ${i} is ${d[j]![i]}`);
      }
    }
  }
  return problems;
}

function describeBytes(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (n >= GiB && n % GiB === 0) return `${n / GiB} GiB`;
  if (n >= MiB && n % MiB === 0) return `${n / MiB} MiB`;
  return `${n} bytes`;
}
