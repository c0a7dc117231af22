// A tiny DTB reader for the board tests (test code only: it holds no tests itself, fdt.test.ts checks it).
// Written from Devicetree Specification v0.3 chapter 5, independently of the writer in fdt.ts.

import { spawnSync } from 'node:child_process';

export interface ReadNode {
  name: string;
  props: Map<string, Uint8Array>;
  children: ReadNode[];
}

export interface ReadTree {
  version: number;
  lastCompatibleVersion: number;
  bootCpuId: number;
  totalSize: number;
  offStructure: number;
  offStrings: number;
  offReservations: number;
  reservations: { address: bigint; size: bigint }[];
  root: ReadNode;
}

const MAGIC = 0xd00dfeed;
const BEGIN_NODE = 1;
const END_NODE = 2;
const PROP = 3;
const NOP = 4;
const END = 9;

export function readFdt(dtb: Uint8Array): ReadTree {
  const view = new DataView(dtb.buffer, dtb.byteOffset, dtb.byteLength);
  const header = (i: number): number => view.getUint32(i * 4);
  if (header(0) !== MAGIC) throw new Error('bad FDT magic');
  const [totalSize, offStructure, offStrings, offReservations] = [header(1), header(2), header(3), header(4)];
  const [version, lastCompatibleVersion, bootCpuId, sizeStrings, sizeStructure] = [
    header(5),
    header(6),
    header(7),
    header(8),
    header(9),
  ];
  if (totalSize !== dtb.length) throw new Error(`totalsize ${totalSize} but ${dtb.length} bytes`);
  if (offStrings + sizeStrings > totalSize || offStructure + sizeStructure > totalSize) throw new Error('blocks overflow');

  const reservations: { address: bigint; size: bigint }[] = [];
  for (let at = offReservations; ; at += 16) {
    const address = view.getBigUint64(at);
    const size = view.getBigUint64(at + 8);
    if (address === 0n && size === 0n) break;
    reservations.push({ address, size });
  }

  const stringAt = (offset: number): string => {
    if (offset >= sizeStrings) throw new Error(`string offset ${offset} outside the strings block`);
    const start = offStrings + offset;
    const end = dtb.indexOf(0, start);
    if (end < 0 || end >= offStrings + sizeStrings) throw new Error('unterminated string');
    return new TextDecoder().decode(dtb.subarray(start, end));
  };

  let at = offStructure;
  const limit = offStructure + sizeStructure;
  const token = (): number => {
    if (at + 4 > limit) throw new Error('structure block ends without FDT_END');
    const t = view.getUint32(at);
    at += 4;
    return t;
  };
  const pad = (): void => {
    at = Math.ceil(at / 4) * 4;
  };

  const stack: ReadNode[] = [];
  let root: ReadNode | undefined;
  for (;;) {
    const t = token();
    if (t === NOP) continue;
    if (t === BEGIN_NODE) {
      const end = dtb.indexOf(0, at);
      const node: ReadNode = { name: new TextDecoder().decode(dtb.subarray(at, end)), props: new Map(), children: [] };
      at = end + 1;
      pad();
      if (stack.length === 0) {
        if (root !== undefined) throw new Error('two root nodes');
        root = node;
      } else {
        stack[stack.length - 1]!.children.push(node);
      }
      stack.push(node);
    } else if (t === PROP) {
      const length = token();
      const name = stringAt(token());
      const node = stack[stack.length - 1];
      if (node === undefined) throw new Error('property outside a node');
      if (node.props.has(name)) throw new Error(`duplicate property ${name}`);
      node.props.set(name, dtb.slice(at, at + length));
      at += length;
      pad();
    } else if (t === END_NODE) {
      if (stack.pop() === undefined) throw new Error('unbalanced FDT_END_NODE');
    } else if (t === END) {
      if (stack.length !== 0 || root === undefined) throw new Error('FDT_END inside a node');
      if (at !== limit) throw new Error('bytes after FDT_END');
      break;
    } else {
      throw new Error(`unknown token ${t}`);
    }
  }
  return {
    version,
    lastCompatibleVersion,
    bootCpuId,
    totalSize,
    offStructure,
    offStrings,
    offReservations,
    reservations,
    root: root!,
  };
}

/** The node at an absolute path such as "/soc/serial@10000000"; undefined when absent. */
export function nodeAt(root: ReadNode, path: string): ReadNode | undefined {
  let node: ReadNode | undefined = root;
  for (const part of path.split('/').filter((p) => p !== '')) {
    node = node?.children.find((c) => c.name === part);
  }
  return node;
}

export function cells(value: Uint8Array | undefined): number[] {
  if (value === undefined) throw new Error('missing property');
  if (value.length % 4 !== 0) throw new Error(`property of ${value.length} bytes is not cells`);
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  return Array.from({ length: value.length / 4 }, (_, i) => view.getUint32(i * 4));
}

export function strings(value: Uint8Array | undefined): string[] {
  if (value === undefined) throw new Error('missing property');
  if (value.length === 0 || value[value.length - 1] !== 0) throw new Error('not a NUL-terminated string list');
  return new TextDecoder().decode(value.subarray(0, value.length - 1)).split('\0');
}

/** Every node with its absolute path, depth first. */
export function allNodes(root: ReadNode): { path: string; node: ReadNode }[] {
  const out: { path: string; node: ReadNode }[] = [];
  const walk = (node: ReadNode, path: string): void => {
    out.push({ path, node });
    for (const c of node.children) walk(c, path === '/' ? `/${c.name}` : `${path}/${c.name}`);
  };
  walk(root, '/');
  return out;
}

/** Whether the device tree compiler is installed; tests that need it skip with this message otherwise. */
export const DTC_MISSING = dtcMissing();

function dtcMissing(): string | false {
  const probe = spawnSync('dtc', ['--version'], { encoding: 'utf8' });
  return probe.error === undefined && probe.status === 0 ? false : 'dtc (device tree compiler) is not installed';
}

/** Runs dtc on `input`; returns its output and what it printed on stderr (warnings). */
export function dtc(input: Uint8Array | string, from: 'dtb' | 'dts', to: 'dtb' | 'dts'): { out: Buffer; warnings: string } {
  const result = spawnSync('dtc', ['-I', from, '-O', to, '-'], { input });
  if (result.status !== 0) throw new Error(`dtc failed: ${result.stderr.toString()}`);
  return { out: result.stdout, warnings: result.stderr.toString() };
}
