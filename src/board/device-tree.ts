// Builds the machine's device tree from the address map and a laid-out topology (the shape of QEMU virt's).
// Bindings: Devicetree spec v0.3 §3 (root, /cpus, /memory, /chosen), Linux Documentation/devicetree/bindings
// (riscv/cpus, numa.txt, cpu/cpu-topology, sifive,plic-1.0.0, sifive,clint, power/reset/syscon-*).

import {
  boardRegions,
  CLINT,
  FINISHER_PASS,
  FINISHER_RESET,
  PLIC,
  PLIC_SOURCES,
  TEST_DEVICE,
  CONTROL_DEVICE,
  TIMEBASE_FREQUENCY,
  UART0,
  UART_CLOCK_FREQUENCY,
  virtioSlot,
  VIRTIO_SLOTS,
  type BoardRegion,
  type MachineLayout,
} from './address-map.js';
import { Fdt, type FdtNode } from './fdt.js';

/** RISC-V privileged spec §3.1.9 (mip/mie bits), as used in `interrupts-extended` to a cpu's intc. */
const IRQ_M_SOFT = 3;
const IRQ_M_TIMER = 7;
const IRQ_S_EXT = 9;
const IRQ_M_EXT = 11;
/** Root and /soc use 64-bit addresses and sizes; /cpus uses one cell of hart id and no size. */
const ADDRESS_CELLS = 2;
const SIZE_CELLS = 2;

export const DEFAULT_ISA = 'rv64imafdc_zicsr_zifencei';
export const DEFAULT_MMU = 'riscv,sv48';
/** Where Linux writes its console: the path of the UART node. */
export const STDOUT_PATH = `/soc/serial@${hex(UART0.base)}`;

export interface DeviceTreeOptions {
  /** The kernel command line (/chosen/bootargs). */
  bootargs?: string;
  /** Physical range [start, end) of the initial ramdisk. */
  initrd?: { start: number; end: number };
  /** Bytes for /chosen/rng-seed, which Linux mixes into its entropy pool at boot. */
  rngSeed?: Uint8Array;
  /** Memory that the OS must never map (firmware), listed under /reserved-memory with `no-map`. */
  reservedMemory?: readonly { name: string; base: number; size: number }[];
  /** riscv,isa of every cpu (default DEFAULT_ISA); say what the CPU really implements. */
  isa?: string;
  /** mmu-type of every cpu (default DEFAULT_MMU). */
  mmuType?: string;
  /** The hart that boots first (header boot_cpuid_phys). */
  bootHart?: number;
}

/** The complete tree, for callers that want to add to it before calling toBytes(). */
export function buildDeviceTree(layout: MachineLayout, options: DeviceTreeOptions = {}): Fdt {
  const fdt = new Fdt();
  fdt.bootCpuId = options.bootHart ?? 0;
  const root = fdt.root;
  root.setU32('#address-cells', ADDRESS_CELLS).setU32('#size-cells', SIZE_CELLS);
  root.setStrings('compatible', ['mirrorball,virt', 'riscv-virtio']);
  root.setString('model', 'Mirrorball RISC-V virt');

  const intcs = addCpus(fdt, layout, options);
  addMemory(root, layout);
  if (layout.nodes.length > 1) addDistanceMap(root, layout);
  if (options.reservedMemory !== undefined && options.reservedMemory.length > 0) {
    addReservedMemory(root, options.reservedMemory);
  }
  addSoc(fdt, intcs);
  addChosen(root, options);
  root.addChild('aliases').setString('serial0', STDOUT_PATH);
  return fdt;
}

/** The DTB bytes of buildDeviceTree. */
export function deviceTreeBlob(layout: MachineLayout, options: DeviceTreeOptions = {}): Uint8Array {
  return buildDeviceTree(layout, options).toBytes();
}

/** /cpus with one cpu@N per hart and a cpu-map cluster per node; returns each hart's intc phandle. */
function addCpus(fdt: Fdt, layout: MachineLayout, options: DeviceTreeOptions): number[] {
  const cpus = fdt.root.addChild('cpus');
  cpus.setU32('#address-cells', 1).setU32('#size-cells', 0).setU32('timebase-frequency', TIMEBASE_FREQUENCY);
  const numa = layout.nodes.length > 1;
  const isaString = options.isa ?? DEFAULT_ISA;
  const isa = parseIsa(isaString);
  const cpuNodes: FdtNode[] = [];
  const intcs: number[] = [];
  for (let hart = 0; hart < layout.harts; hart++) {
    const cpu = cpus.addChild(`cpu@${hex(hart)}`);
    cpu.setString('device_type', 'cpu').setU32('reg', hart).setString('status', 'okay');
    cpu.setString('compatible', 'riscv');
    cpu.setString('riscv,isa', isaString);
    // Newer kernels (6.6+) prefer the split form; older ones read riscv,isa.
    cpu.setString('riscv,isa-base', isa.base);
    cpu.setStrings('riscv,isa-extensions', isa.extensions);
    cpu.setString('mmu-type', options.mmuType ?? DEFAULT_MMU);
    if (numa) cpu.setU32('numa-node-id', layout.hartNode[hart]!);
    fdt.phandle(cpu);
    const intc = cpu.addChild('interrupt-controller');
    intc.setU32('#interrupt-cells', 1).setEmpty('interrupt-controller').setString('compatible', 'riscv,cpu-intc');
    // An interrupt provider states #address-cells (0: it is no interrupt-map parent); dtc warns otherwise.
    intc.setU32('#address-cells', 0);
    intcs.push(fdt.phandle(intc));
    cpuNodes.push(cpu);
  }
  // cpu-topology binding: Linux reads cluster0, cluster1, ... and stops at the first gap, so clusters
  // are numbered over the nodes that have harts (a memory-only node has no cluster).
  const map = cpus.addChild('cpu-map');
  layout.nodes
    .filter((node) => node.harts.length > 0)
    .forEach((node, cluster) => {
      const c = map.addChild(`cluster${cluster}`);
      node.harts.forEach((hart, core) => c.addChild(`core${core}`).setU32('cpu', fdt.phandle(cpuNodes[hart]!)));
    });
  return intcs;
}

/** One /memory@... per node (Devicetree spec §3.4), tagged with its node when there are several. */
function addMemory(root: FdtNode, layout: MachineLayout): void {
  for (const node of layout.nodes) {
    const memory = root.addChild(`memory@${hex(node.base)}`);
    memory.setString('device_type', 'memory').setU64('reg', node.base, node.size);
    if (layout.nodes.length > 1) memory.setU32('numa-node-id', node.id);
  }
}

/** numa.txt: distance-matrix is a list of <from to distance> triples. */
function addDistanceMap(root: FdtNode, layout: MachineLayout): void {
  const triples = layout.distances.flatMap((row, i) => row.flatMap((d, j) => [i, j, d]));
  root.addChild('distance-map').setString('compatible', 'numa-distance-map-v1').setU32('distance-matrix', ...triples);
}

function addReservedMemory(root: FdtNode, regions: NonNullable<DeviceTreeOptions['reservedMemory']>): void {
  const reserved = root.addChild('reserved-memory');
  reserved.setU32('#address-cells', ADDRESS_CELLS).setU32('#size-cells', SIZE_CELLS).setEmpty('ranges');
  for (const r of regions) {
    reserved.addChild(`${r.name}@${hex(r.base)}`).setU64('reg', r.base, r.size).setEmpty('no-map');
  }
}

function addSoc(fdt: Fdt, intcs: readonly number[]): void {
  const soc = fdt.root.addChild('soc');
  soc.setU32('#address-cells', ADDRESS_CELLS).setU32('#size-cells', SIZE_CELLS);
  soc.setString('compatible', 'simple-bus').setEmpty('ranges');

  const test = soc.addChild(`test@${hex(TEST_DEVICE.base)}`);
  test.setStrings('compatible', ['sifive,test1', 'sifive,test0', 'syscon']);
  setReg(test, TEST_DEVICE);
  // syscon-poweroff / syscon-reboot: write `value` at `offset` of the regmap. They have no reg, so they
  // sit at the root rather than on the simple-bus (whose children must have one).
  const regmap = fdt.phandle(test);
  const poweroff = fdt.root.addChild('poweroff');
  poweroff.setString('compatible', 'syscon-poweroff').setU32('regmap', regmap);
  poweroff.setU32('offset', 0).setU32('value', FINISHER_PASS);
  const reboot = fdt.root.addChild('reboot');
  reboot.setString('compatible', 'syscon-reboot').setU32('regmap', regmap);
  reboot.setU32('offset', 0).setU32('value', FINISHER_RESET);

  // Mirrorball's control device (devices/control.ts): no driver binds to it; the guest's mbctl maps it
  // through /dev/mem, so it is in the tree to say where it is, and so that the kernel leaves it alone.
  const control = soc.addChild(`control@${hex(CONTROL_DEVICE.base)}`);
  control.setString('compatible', 'mirrorball,control');
  setReg(control, CONTROL_DEVICE);

  const clint = soc.addChild(`clint@${hex(CLINT.base)}`);
  clint.setStrings('compatible', ['sifive,clint0', 'riscv,clint0']);
  setReg(clint, CLINT);
  clint.setU32('interrupts-extended', ...intcs.flatMap((intc) => [intc, IRQ_M_SOFT, intc, IRQ_M_TIMER]));

  // Contexts 2h and 2h+1 are hart h's M-mode and S-mode external interrupts, in that order.
  const plic = soc.addChild(`plic@${hex(PLIC.base)}`);
  plic.setStrings('compatible', ['sifive,plic-1.0.0', 'riscv,plic0']);
  setReg(plic, PLIC);
  plic.setU32('#address-cells', 0).setU32('#interrupt-cells', 1).setEmpty('interrupt-controller');
  plic.setU32('riscv,ndev', PLIC_SOURCES);
  plic.setU32('interrupts-extended', ...intcs.flatMap((intc) => [intc, IRQ_M_EXT, intc, IRQ_S_EXT]));
  const plicHandle = fdt.phandle(plic);

  const uart = soc.addChild(`serial@${hex(UART0.base)}`);
  uart.setString('compatible', 'ns16550a');
  setReg(uart, UART0);
  uart.setU32('clock-frequency', UART_CLOCK_FREQUENCY);
  setInterrupt(uart, UART0, plicHandle);

  // All eight transports, as QEMU does: Linux skips a transport whose DeviceID register reads 0.
  for (let slot = 0; slot < VIRTIO_SLOTS; slot++) {
    const region = virtioSlot(slot);
    const virtio = soc.addChild(`virtio_mmio@${hex(region.base)}`);
    virtio.setString('compatible', 'virtio,mmio');
    setReg(virtio, region);
    setInterrupt(virtio, region, plicHandle);
  }
  checkEveryRegionListed(soc);
}

function addChosen(root: FdtNode, options: DeviceTreeOptions): void {
  const chosen = root.addChild('chosen');
  chosen.setString('bootargs', options.bootargs ?? '');
  chosen.setString('stdout-path', STDOUT_PATH);
  if (options.initrd !== undefined) {
    const { start, end } = options.initrd;
    if (!(end > start)) throw new Error(`initrd range [0x${hex(start)}, 0x${hex(end)}) is empty`);
    // Linux reads these with the root's #address-cells-independent helper, so u64 is always safe.
    chosen.setU64('linux,initrd-start', start).setU64('linux,initrd-end', end);
  }
  if (options.rngSeed !== undefined) chosen.setBytes('rng-seed', options.rngSeed);
}

function setReg(node: FdtNode, region: BoardRegion): void {
  node.setU64('reg', region.base, region.size);
}

function setInterrupt(node: FdtNode, region: BoardRegion, plic: number): void {
  if (region.irq === undefined) throw new Error(`${region.name} has no interrupt source`);
  node.setU32('interrupts', region.irq).setU32('interrupt-parent', plic);
}

/** The tree and the address map must not drift apart: every board window appears on /soc. */
function checkEveryRegionListed(soc: FdtNode): void {
  const listed = new Set(soc.children.map((c) => c.name.slice(c.name.indexOf('@') + 1)));
  const missing = boardRegions().filter((r) => !listed.has(hex(r.base)));
  if (missing.length > 0) throw new Error(`device tree lacks ${missing.map((r) => r.name).join(', ')}`);
}

/** "rv64imafdc_zicsr_zifencei" → base "rv64i", extensions i m a f d c zicsr zifencei ("g" expanded). */
function parseIsa(isa: string): { base: string; extensions: string[] } {
  const match = /^rv(32|64)([a-z]+)((?:_[a-z0-9]+)*)$/.exec(isa);
  if (match === null) throw new Error(`riscv,isa "${isa}" is not of the form rv64imac_zicsr_...`);
  const [, xlen, letters, multi] = match as unknown as [string, string, string, string];
  const single = [...letters].flatMap((l) => (l === 'g' ? ['i', 'm', 'a', 'f', 'd', 'zicsr', 'zifencei'] : [l]));
  const named = multi.split('_').filter((s) => s !== '');
  return { base: `rv${xlen}i`, extensions: [...new Set([...single, ...named])] };
}

function hex(n: number): string {
  return n.toString(16);
}
