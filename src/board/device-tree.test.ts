// Tests of the generated device tree: dtc accepts it without warnings, and its structure read back is right.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { layoutMachine, type MachineLayout } from './address-map.js';
import { buildDeviceTree, deviceTreeBlob, STDOUT_PATH } from './device-tree.js';
import { allNodes, cells, DTC_MISSING, dtc, nodeAt, readFdt, strings, type ReadNode } from './fdt-reader.test.js';

const MiB = 1024 * 1024;

/** `harts` harts in contiguous runs over `nodes` nodes; nodes past the last hart hold only memory. */
function machine(harts: number, nodes: number): MachineLayout {
  const perNode = Math.ceil(harts / nodes);
  return layoutMachine({
    harts,
    nodes: Array.from({ length: nodes }, (_, n) => ({
      memoryBytes: (32 + 16 * n) * MiB,
      harts: Array.from({ length: harts }, (_, h) => h).filter((h) => Math.floor(h / perNode) === n),
    })),
  });
}

const SHAPES: [number, number][] = [1, 4, 8].flatMap((h) => [1, 2, 4].map((n): [number, number] => [h, n]));
const OPTIONS = {
  bootargs: 'console=ttyS0 earlycon',
  initrd: { start: 0x8400_0000, end: 0x8410_0000 },
  rngSeed: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]),
  reservedMemory: [{ name: 'firmware', base: 0x8000_0000, size: 0x20_0000 }],
};

for (const [harts, nodes] of SHAPES) {
  test(`dtc decompiles the tree of ${harts} harts on ${nodes} nodes without warnings`, { skip: DTC_MISSING }, () => {
    const { out, warnings } = dtc(deviceTreeBlob(machine(harts, nodes), OPTIONS), 'dtb', 'dts');
    assert.equal(warnings, '');
    assert.match(out.toString(), /compatible = "ns16550a";/);
  });
}

function prop(node: ReadNode | undefined, name: string): Uint8Array | undefined {
  assert.ok(node !== undefined, `node holding ${name} exists`);
  return node.props.get(name);
}

/** Phandle → node, over the whole tree. */
function phandles(root: ReadNode): Map<number, { path: string; node: ReadNode }> {
  const map = new Map<number, { path: string; node: ReadNode }>();
  for (const entry of allNodes(root)) {
    const p = entry.node.props.get('phandle');
    if (p === undefined) continue;
    const [handle] = cells(p);
    assert.ok(!map.has(handle!), `phandle ${handle} is unique`);
    map.set(handle!, entry);
  }
  return map;
}

for (const [harts, nodes] of SHAPES) {
  test(`structure of the tree of ${harts} harts on ${nodes} nodes`, () => {
    const layout = machine(harts, nodes);
    const root = readFdt(deviceTreeBlob(layout, OPTIONS)).root;
    const handles = phandles(root);
    const numa = nodes > 1;

    // cpus: one per hart, each with an intc, and the node id when there are several nodes.
    assert.deepEqual(cells(prop(nodeAt(root, '/cpus'), 'timebase-frequency')), [10_000_000]);
    const intcOf: number[] = [];
    for (let h = 0; h < harts; h++) {
      const cpu = nodeAt(root, `/cpus/cpu@${h.toString(16)}`);
      assert.deepEqual(cells(prop(cpu, 'reg')), [h]);
      assert.deepEqual(strings(prop(cpu, 'riscv,isa')), ['rv64imafdc_zicsr_zifencei']);
      assert.deepEqual(strings(prop(cpu, 'mmu-type')), ['riscv,sv48']);
      assert.deepEqual(strings(prop(cpu, 'status')), ['okay']);
      assert.equal(prop(cpu, 'numa-node-id') === undefined, !numa);
      if (numa) assert.deepEqual(cells(prop(cpu, 'numa-node-id')), [layout.hartNode[h]]);
      const intc = nodeAt(root, `/cpus/cpu@${h.toString(16)}/interrupt-controller`);
      assert.deepEqual(strings(prop(intc, 'compatible')), ['riscv,cpu-intc']);
      assert.deepEqual(cells(prop(intc, '#interrupt-cells')), [1]);
      intcOf.push(cells(prop(intc, 'phandle'))[0]!);
    }
    assert.equal(nodeAt(root, `/cpus/cpu@${harts.toString(16)}`), undefined);

    // cpu-map: clusters numbered without gaps, each core pointing at a cpu of that node, every hart once.
    const clusters = nodeAt(root, '/cpus/cpu-map')!.children;
    const seen: number[] = [];
    clusters.forEach((cluster, c) => {
      assert.equal(cluster.name, `cluster${c}`);
      const clusterNodes = new Set<number>();
      cluster.children.forEach((core, k) => {
        assert.equal(core.name, `core${k}`);
        const cpu = handles.get(cells(core.props.get('cpu'))[0]!)!;
        const hart = cells(cpu.node.props.get('reg'))[0]!;
        seen.push(hart);
        clusterNodes.add(layout.hartNode[hart]!);
      });
      assert.equal(clusterNodes.size, 1, 'a cluster holds the harts of one node');
    });
    assert.deepEqual(
      seen.sort((a, b) => a - b),
      Array.from({ length: harts }, (_, h) => h),
    );

    // memory: one node each, contiguous, tagged when NUMA.
    for (const n of layout.nodes) {
      const memory = nodeAt(root, `/memory@${n.base.toString(16)}`);
      assert.deepEqual(cells(prop(memory, 'reg')), [0, n.base, 0, n.size]);
      assert.equal(prop(memory, 'numa-node-id') === undefined, !numa);
    }
    const distanceMap = nodeAt(root, '/distance-map');
    assert.equal(distanceMap === undefined, !numa);
    if (numa) {
      const triples = cells(prop(distanceMap, 'distance-matrix'));
      assert.equal(triples.length, nodes * nodes * 3);
      for (let t = 0; t < triples.length; t += 3) {
        assert.equal(triples[t + 2], layout.distances[triples[t]!]![triples[t + 1]!]);
      }
    }

    // CLINT and PLIC reach every hart's intc with the right causes, in hart order.
    const clint = nodeAt(root, '/soc/clint@2000000');
    assert.deepEqual(cells(prop(clint, 'interrupts-extended')), intcOf.flatMap((i) => [i, 3, i, 7]));
    const plic = nodeAt(root, '/soc/plic@c000000');
    assert.deepEqual(cells(prop(plic, 'interrupts-extended')), intcOf.flatMap((i) => [i, 11, i, 9]));
    assert.deepEqual(cells(prop(plic, 'reg')), [0, 0xc000000, 0, 0x600000]);
    const plicHandle = cells(prop(plic, 'phandle'))[0]!;

    // Every interrupt user points at the PLIC with its source number.
    const uart = nodeAt(root, '/soc/serial@10000000');
    assert.deepEqual(cells(prop(uart, 'interrupts')), [10]);
    assert.deepEqual(cells(prop(uart, 'interrupt-parent')), [plicHandle]);
    assert.deepEqual(cells(prop(uart, 'clock-frequency')), [0x384000]);
    for (let slot = 0; slot < 8; slot++) {
      const virtio = nodeAt(root, `/soc/virtio_mmio@${(0x10001000 + slot * 0x1000).toString(16)}`);
      assert.deepEqual(strings(prop(virtio, 'compatible')), ['virtio,mmio']);
      assert.deepEqual(cells(prop(virtio, 'interrupts')), [slot + 1]);
      assert.deepEqual(cells(prop(virtio, 'interrupt-parent')), [plicHandle]);
    }

    // Power-off and reboot write to the test device.
    const test = cells(prop(nodeAt(root, '/soc/test@100000'), 'phandle'))[0];
    assert.deepEqual(cells(prop(nodeAt(root, '/poweroff'), 'regmap')), [test]);
    assert.deepEqual(cells(prop(nodeAt(root, '/poweroff'), 'value')), [0x5555]);
    assert.deepEqual(cells(prop(nodeAt(root, '/reboot'), 'value')), [0x7777]);

    const chosen = nodeAt(root, '/chosen');
    assert.deepEqual(strings(prop(chosen, 'bootargs')), ['console=ttyS0 earlycon']);
    assert.deepEqual(strings(prop(chosen, 'stdout-path')), [STDOUT_PATH]);
    assert.ok(nodeAt(root, STDOUT_PATH) !== undefined, 'stdout-path names a node');
    assert.deepEqual(cells(prop(chosen, 'linux,initrd-start')), [0, 0x8400_0000]);
    assert.deepEqual(cells(prop(chosen, 'linux,initrd-end')), [0, 0x8410_0000]);
    assert.deepEqual([...prop(chosen, 'rng-seed')!], [1, 2, 3, 4, 5, 6, 7, 8]);

    // Every phandle reference in interrupts-extended resolves.
    for (const { node } of allNodes(root)) {
      const ext = node.props.get('interrupts-extended');
      if (ext === undefined) continue;
      const c = cells(ext);
      for (let i = 0; i < c.length; i += 2) assert.ok(handles.has(c[i]!));
    }
  });
}

test('without boot options /chosen has empty bootargs and no initrd or seed', () => {
  const root = readFdt(deviceTreeBlob(machine(1, 1))).root;
  const chosen = nodeAt(root, '/chosen')!;
  assert.deepEqual(strings(chosen.props.get('bootargs')), ['']);
  assert.deepEqual([...chosen.props.keys()], ['bootargs', 'stdout-path']);
  assert.equal(nodeAt(root, '/reserved-memory'), undefined);
});

test('the ISA string and the split isa-base / isa-extensions agree, "g" expanded', () => {
  const root = readFdt(deviceTreeBlob(machine(1, 1), { isa: 'rv64gc_zba' })).root;
  const cpu = nodeAt(root, '/cpus/cpu@0');
  assert.deepEqual(strings(prop(cpu, 'riscv,isa')), ['rv64gc_zba']);
  assert.deepEqual(strings(prop(cpu, 'riscv,isa-base')), ['rv64i']);
  assert.deepEqual(strings(prop(cpu, 'riscv,isa-extensions')), ['i', 'm', 'a', 'f', 'd', 'zicsr', 'zifencei', 'c', 'zba']);
  assert.throws(() => deviceTreeBlob(machine(1, 1), { isa: 'x86_64' }), /riscv,isa "x86_64"/);
});

test('an empty initrd range is refused', () => {
  assert.throws(() => deviceTreeBlob(machine(1, 1), { initrd: { start: 0x8400_0000, end: 0x8400_0000 } }), /is empty/);
});

test('the tree can be extended before serializing, and bootHart sets boot_cpuid_phys', () => {
  const fdt = buildDeviceTree(machine(4, 1), { bootHart: 2 });
  fdt.root.child('chosen')!.setString('extra', 'yes');
  const tree = readFdt(fdt.toBytes());
  assert.equal(tree.bootCpuId, 2);
  assert.deepEqual(strings(nodeAt(tree.root, '/chosen')!.props.get('extra')), ['yes']);
});

test('a 32-hart machine gives 64 PLIC contexts', () => {
  const root = readFdt(deviceTreeBlob(machine(32, 4))).root;
  assert.equal(cells(nodeAt(root, '/soc/plic@c000000')!.props.get('interrupts-extended')).length, 32 * 2 * 2);
});
