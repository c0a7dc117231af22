// `machine.threads` of the machine file (and `up --threads N`): the VMs on N worker threads, each running a
// part of the machine (docs/threads.md, "The monitor on threads"). What threads cannot do yet is refused
// here, one line each, before anything starts.

import { isMap, isSeq, type Node, type YAMLMap } from 'yaml';
import type { MachineConfig } from '../board/address-map.js';
import { PartitionError, placeVms, splitMachine } from '../monitor/thread-partitions.js';
import { UsageError, parseCount } from './options.js';

/** The most worker threads `up` runs. */
export const MAX_UP_THREADS = 64;

type Problem = (node: Node | null | undefined, path: string, message: string) => void;

/** `--threads N` of `up`; throws UsageError. */
export function parseUpThreads(text: string): number {
  return parseCount(text, '--threads', 1, MAX_UP_THREADS);
}

/** `machine.threads` (default 1). */
export function threadsOption(machine: YAMLMap | undefined, problem: Problem): { threads: number; node: Node | undefined } {
  const node = machine?.get('threads', true) as Node | undefined;
  if (node === undefined) return { threads: 1, node };
  const text = String((node as { value?: unknown }).value ?? '');
  try {
    return { threads: parseCount(text, 'machine.threads', 1, MAX_UP_THREADS), node };
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    problem(node, '', error.message);
    return { threads: 1, node };
  }
}

/** What the threads check reads of the parsed file. */
export interface ThreadedFile {
  config: MachineConfig | undefined;
  timing: boolean;
  cells: number[][] | undefined;
  monitor: { policy: unknown; scan: unknown; shareBootImages: boolean; swap: unknown; borrow: unknown };
  faults: readonly unknown[];
  vms: readonly { name: string; memoryBytes: number; net: boolean; userNet?: unknown; restore?: string }[];
}

/**
 * Every option of `file` that `threads` > 1 cannot run yet, each a problem at its own place in the file;
 * `how` names where the thread count came from (`machine.threads: 2` or `--threads 2`). The machine must also
 * split into that many parts, and each VM fit in one.
 */
export function threadsProblems(root: YAMLMap, file: ThreadedFile, threads: number, how: string, problem: Problem): void {
  if (threads === 1) return;
  const machine = root.get('machine', true) as YAMLMap | undefined;
  const monitor = root.get('monitor', true) as YAMLMap | undefined;
  const at = (map: YAMLMap | undefined, key: string): Node | undefined => (isMap(map) ? (map.get(key, true) as Node | undefined) : undefined);
  const refuse = (node: Node | undefined, path: string, why: string): void => problem(node ?? root, path, `not with ${how} yet: ${why} (docs/threads.md)`);
  if (file.timing) refuse(at(machine, 'timing'), 'machine.timing', 'timing mode runs on one thread');
  if (file.cells !== undefined && file.cells.length > 1) refuse(at(machine, 'cells'), 'machine.cells', 'cells are scheduled and recovered by one monitor');
  if (file.monitor.policy !== undefined) refuse(at(monitor, 'policy'), 'monitor.policy', 'the NUMA policy moves pages between nodes that threads hold apart');
  if (file.monitor.scan !== undefined) refuse(at(monitor, 'scan'), 'monitor.scan', 'the content scanner merges pages of every VM, and each thread has its own memory');
  if (file.monitor.shareBootImages) refuse(at(monitor, 'shareBootImages'), 'monitor.shareBootImages', 'boot images go through the page cache, which threads do not have');
  if (file.monitor.swap !== undefined) refuse(at(monitor, 'swap'), 'monitor.swap', 'the pager and its swap file are one machine\'s');
  if (file.monitor.borrow !== undefined) refuse(at(monitor, 'borrow'), 'monitor.borrow', 'borrowing is between cells');
  if (file.faults.length > 0) refuse(root.get('faults', true) as Node | undefined, 'faults', 'fault recovery reads one monitor\'s machine');
  const vmsNode = root.get('vms', true) as Node | undefined;
  const vmNode = (index: number): YAMLMap | undefined => (isSeq(vmsNode) ? (vmsNode.items[index] as YAMLMap | undefined) : undefined);
  file.vms.forEach((vm, index) => {
    if (vm.net || vm.userNet !== undefined) refuse(at(vmNode(index), 'net'), `vms[${index}].net`, 'the VMs\' subnet and user networks live on the main thread');
    if (vm.restore !== undefined) refuse(at(vmNode(index), 'restore'), `vms[${index}].restore`, 'snapshots are one monitor\'s');
  });
  if (file.config === undefined) return;
  const threadsNode = at(machine, 'threads') ?? machine ?? root;
  try {
    placeVms(splitMachine(file.config, threads), file.vms.filter((vm) => vm.restore === undefined));
  } catch (error) {
    if (!(error instanceof PartitionError)) throw error;
    problem(threadsNode, '', `${how}: ${error.message}`);
  }
}
