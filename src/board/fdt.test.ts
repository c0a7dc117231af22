// Tests of the DTB writer: header and block layout, property encodings, phandles, and dtc's opinion.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Fdt, FDT_HEADER_SIZE, FdtNode, u64Cells } from './fdt.js';
import { cells, DTC_MISSING, dtc, nodeAt, readFdt, strings, type ReadNode } from './fdt-reader.test.js';

test('an empty tree has a version 17 header and 8-byte aligned blocks', () => {
  const dtb = new Fdt().toBytes();
  const tree = readFdt(dtb);
  assert.equal(tree.version, 17);
  assert.equal(tree.lastCompatibleVersion, 16);
  assert.equal(tree.offReservations, FDT_HEADER_SIZE);
  assert.equal(tree.offReservations % 8, 0);
  assert.equal(tree.offStructure % 8, 0);
  assert.deepEqual(tree.reservations, []);
  assert.equal(tree.root.name, '');
  assert.equal(tree.root.children.length, 0);
});

test('property encodings: cells, u64 as two cells, strings, string lists, bytes, empty', () => {
  const fdt = new Fdt();
  fdt.root
    .setU32('one', 0xdeadbeef)
    .setU32('many', 1, 2, 3)
    .setU64('wide', 0x1_2345_6789n, 2 ** 40)
    .setString('text', 'ns16550a')
    .setStrings('list', ['sifive,clint0', 'riscv,clint0'])
    .setBytes('raw', new Uint8Array([1, 2, 3, 4, 5]))
    .setEmpty('flag');
  const props = readFdt(fdt.toBytes()).root.props;
  assert.deepEqual(cells(props.get('one')), [0xdeadbeef]);
  assert.deepEqual(cells(props.get('many')), [1, 2, 3]);
  assert.deepEqual(cells(props.get('wide')), [0x1, 0x23456789, 0x100, 0]);
  assert.deepEqual(strings(props.get('text')), ['ns16550a']);
  assert.deepEqual(strings(props.get('list')), ['sifive,clint0', 'riscv,clint0']);
  assert.deepEqual([...props.get('raw')!], [1, 2, 3, 4, 5]);
  assert.equal(props.get('flag')!.length, 0);
  assert.deepEqual([...props.keys()], ['one', 'many', 'wide', 'text', 'list', 'raw', 'flag']);
});

test('u64Cells splits high and low words and rejects values outside 64 bits', () => {
  assert.deepEqual(u64Cells(0x8000_0000), [0, 0x8000_0000]);
  assert.deepEqual(u64Cells(0xffff_ffff_ffff_ffffn), [0xffffffff, 0xffffffff]);
  assert.throws(() => u64Cells(-1), RangeError);
  assert.throws(() => u64Cells(1n << 64n), RangeError);
});

test('each property name is stored once in the strings block', () => {
  const fdt = new Fdt();
  for (let i = 0; i < 5; i++) fdt.root.addChild(`n@${i}`).setU32('reg', i).setString('compatible', 'x');
  const dtb = fdt.toBytes();
  const tree = readFdt(dtb);
  const block = new TextDecoder().decode(dtb.subarray(tree.offStrings));
  assert.equal(block, 'reg\0compatible\0');
});

test('memory reservations are written in order and terminated', () => {
  const fdt = new Fdt();
  fdt.addReservation(0x8000_0000, 0x20_0000);
  fdt.addReservation(0x1_0000_0000n, 4096);
  const tree = readFdt(fdt.toBytes());
  assert.deepEqual(tree.reservations, [
    { address: 0x8000_0000n, size: 0x20_0000n },
    { address: 0x1_0000_0000n, size: 4096n },
  ]);
  assert.equal(tree.offStructure % 8, 0);
  assert.throws(() => fdt.addReservation(0, 0), /non-zero size/);
});

test('phandles start at 1, are unique, and are stable per node', () => {
  const fdt = new Fdt();
  const a = fdt.root.addChild('a');
  const b = fdt.root.addChild('b');
  assert.equal(fdt.phandle(a), 1);
  assert.equal(fdt.phandle(b), 2);
  assert.equal(fdt.phandle(a), 1);
  const tree = readFdt(fdt.toBytes());
  assert.deepEqual(cells(nodeAt(tree.root, '/a')!.props.get('phandle')), [1]);
  assert.deepEqual(cells(nodeAt(tree.root, '/b')!.props.get('phandle')), [2]);
});

test('boot_cpuid_phys comes from bootCpuId', () => {
  const fdt = new Fdt();
  fdt.bootCpuId = 3;
  assert.equal(readFdt(fdt.toBytes()).bootCpuId, 3);
});

test('setting a property again replaces its value', () => {
  const node = new FdtNode('x').setU32('a', 1).setU32('a', 2);
  assert.deepEqual(cells(node.properties.get('a')), [2]);
  assert.equal(node.properties.size, 1);
});

test('invalid names, duplicate children and out-of-range cells are refused', () => {
  assert.throws(() => new FdtNode('9lives'), /invalid device tree node name/);
  assert.throws(() => new FdtNode('a'.repeat(32)), /invalid device tree node name/);
  assert.throws(() => new FdtNode('bad name'), /invalid device tree node name/);
  assert.doesNotThrow(() => new FdtNode(`${'a'.repeat(31)}@10000000`));
  const node = new FdtNode('n');
  assert.throws(() => node.setU32('has space', 1), /invalid device tree property name/);
  assert.throws(() => node.setU32('a', 2 ** 32), RangeError);
  assert.throws(() => node.setU32('a', -1), RangeError);
  assert.throws(() => node.setU32('a', 1.5), RangeError);
  assert.throws(() => node.setString('a', 'x\0y'), /NUL/);
  node.addChild('c');
  assert.throws(() => node.addChild('c'), /already has a child/);
});

test('dtc decompiles a small tree without warnings', { skip: DTC_MISSING }, () => {
  const fdt = new Fdt();
  fdt.root.setU32('#address-cells', 2).setU32('#size-cells', 2).setString('model', 'test');
  const memory = fdt.root.addChild('memory@80000000');
  memory.setString('device_type', 'memory').setU64('reg', 0x8000_0000, 0x100_0000);
  fdt.addReservation(0x8000_0000, 0x1000);
  const { out, warnings } = dtc(fdt.toBytes(), 'dtb', 'dts');
  assert.equal(warnings, '');
  const dts = out.toString();
  assert.match(dts, /\/memreserve\/\s+0x0*80000000 0x0*1000;/);
  assert.match(dts, /reg = <0x00 0x80000000 0x00 0x1000000>;/);
});

test('the test reader agrees with dtc on a tree that dtc compiled', { skip: DTC_MISSING }, () => {
  const source = '/dts-v1/;\n/memreserve/ 0x1000 0x2000;\n/ { a = <1 2>; s = "x", "yz"; n@4 { b; reg = <4>; }; };\n';
  const tree = readFdt(dtc(source, 'dts', 'dtb').out);
  assert.deepEqual(tree.reservations, [{ address: 0x1000n, size: 0x2000n }]);
  assert.deepEqual(cells(tree.root.props.get('a')), [1, 2]);
  assert.deepEqual(strings(tree.root.props.get('s')), ['x', 'yz']);
  const n = nodeAt(tree.root, '/n@4')!;
  assert.equal(n.props.get('b')!.length, 0);
  assert.deepEqual(cells(n.props.get('reg')), [4]);
});

interface Shape {
  name: string;
  props: [string, Uint8Array][];
  children: Shape[];
}

const nameArb = fc.stringMatching(/^[a-z][a-z0-9,._+-]{0,15}$/);
/** Trees at most `depth` levels deep (a bounded recursion keeps generation finite). */
function shapeArb(depth: number): fc.Arbitrary<Shape> {
  return fc.record({
    name: nameArb,
    props: fc.uniqueArray(fc.tuple(nameArb, fc.uint8Array({ maxLength: 13 })), { selector: (p) => p[0], maxLength: 4 }),
    children:
      depth === 0 ? fc.constant([]) : fc.uniqueArray(shapeArb(depth - 1), { selector: (s) => s.name, maxLength: 3 }),
  });
}

function build(node: FdtNode, shape: Shape): void {
  for (const [name, value] of shape.props) node.setBytes(name, value);
  for (const child of shape.children) build(node.addChild(child.name), child);
}

function flatten(node: ReadNode): unknown {
  return { name: node.name, props: [...node.props].map(([k, v]) => [k, [...v]]), children: node.children.map(flatten) };
}

test('any tree reads back exactly as it was built', () => {
  fc.assert(
    fc.property(shapeArb(3), (shape) => {
      const fdt = new Fdt();
      build(fdt.root, { ...shape, name: '' });
      const back = readFdt(fdt.toBytes()).root;
      const want = (s: Shape, root = false): unknown => ({
        name: root ? '' : s.name,
        props: s.props.map(([k, v]) => [k, [...v]]),
        children: s.children.map((c) => want(c)),
      });
      assert.deepEqual(flatten(back), want(shape, true));
    }),
    { numRuns: 200 },
  );
});
