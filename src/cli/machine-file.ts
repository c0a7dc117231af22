// The machine file of `mirrorball up` (issue 5): a YAML description of the machine and the VMs it runs,
// with the same words as the command-line options. Every mistake is reported, one line each.

import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node, type Pair, type YAMLMap } from 'yaml';
import type { DriveSpec } from '../host/drives.js';
import type { MmuMode } from '../monitor/vm.js';
import { DEFAULT_POLICY, policyProblems, type NumaPolicyParameters, POLICY_SIGNALS, type PolicySignal } from '../monitor/numa-policy.js';
import type { Placement } from '../monitor/pmap.js';
import { cellNodes, CellsError, type CellsSpec } from '../monitor/cells.js';
import { DEFAULT_SCAN, type ScanParameters } from '../monitor/page-scanner.js';
import { BORROW_KEYS, borrowProblems, defaultBorrowParameters, type BorrowParameters } from '../monitor/memory-borrowing.js';
import { layoutMachine, MachineConfigError, type MachineLayout } from '../board/address-map.js';
import { parseFaultScript } from '../board/fault-script.js';
import { FaultError, faultProblems } from '../board/faults.js';
import type { ScheduledFault } from '../board/hardware.js';
import { linksFromDistances } from '../board/interconnect.js';
import { chooseTopology, type ChosenTopology } from './topology-options.js';
import { UsageError, parseCount, parseDrive, parseSize } from './options.js';
import { parseNet, type NetSpec } from './net-options.js';
import { threadsOption, threadsProblems } from './machine-file-threads.js';

/** `net: user,...` of a VM. */
export type UserNetSpec = Extract<NetSpec, { kind: 'user' }>;

export interface VmFileSpec {
  name: string;
  /** Virtual CPUs. */
  smp: number;
  memoryBytes: number;
  /** Absolute paths (relative ones are taken from the machine file's directory); undefined: the built guest. */
  kernel?: string;
  initrd?: string;
  append?: string;
  /** A bare S-mode program (absolute path) booted instead of Linux (`elf:`); then no kernel, initrd or append. */
  elf?: string;
  drives: DriveSpec[];
  consoleLog?: string;
  /** A virtio-rng with this seed, when given. */
  rng?: number;
  /** A virtio-net card on the monitor's subnet of VMs. */
  net: boolean;
  /** A virtio-net card on a user network of its own (`net: user,...`, as `run --net user`; docs/networking.md). */
  userNet?: UserNetSpec;
  /** False: none of its pages is shared with other VMs (`share: false`). */
  share: boolean;
  /** A virtio balloon whose free page reports and inflated pages the monitor takes back (`balloon: true`). */
  balloon: boolean;
  /** The cell it is confined to (`cell: N`, docs/cells.md); undefined: the monitor places it. */
  cell?: number;
  /**
   * A snapshot file (absolute) to make the VM again from, instead of booting it: the VM of this name in it
   * (docs/snapshots.md). The snapshot says what the VM is; `smp`, `memory` and the rest are then not given.
   */
  restore?: string;
}

export interface MachineFileSpec {
  /** `cells`: the machine's cells as lists of nodes (docs/cells.md); undefined: one cell of every node. */
  /** `threads`: the VMs on that many worker threads, each a part of the machine (docs/threads.md); 1 by default. */
  machine: ChosenTopology & { memoryBytes: number; timing: boolean; cells?: CellsSpec; threads: number };
  /** The monitor's own options: the mmu, where VMs' pages come from, and Disco's NUMA policy (undefined: off). */
  monitor: {
    mmu: MmuMode; placement: Placement; policy: NumaPolicyParameters | undefined; policySignal: PolicySignal;
    /** The page cache for copy-on-write disks' bases, boot images through it, and the content-sharing scanner (undefined: off). */
    diskCache: boolean; shareBootImages: boolean; scan: ScanParameters | undefined;
    /** Gang scheduling: each VM's runnable vCPUs run together or not at all; the idle balancer between cells. */
    gang: boolean;
    idleBalance: boolean;
    /** The periodic balancer's period in rounds (0: off). */
    balancePeriodRounds: number;
    /** Memory borrowing between cells, its thresholds in bytes (undefined: off; docs/cells.md "Borrowing"). */
    borrow: BorrowParameters | undefined;
    /** Monitor-level paging to a swap file (undefined: off; docs/monitor.md "Paging"): its path (resolved) and size. */
    swap: { file: string; bytes: number } | undefined;
  };
  vms: VmFileSpec[];
  /** Faults to inject at simulated times (`faults:`, a list of { time, fault } or a JSON file of one; docs/faults.md). */
  faults: ScheduledFault[];
}

/** Every mistake in a machine file, each already a whole line such as `vms.yaml:7:13: vms[1].smp: …`. */
export class MachineFileError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
  }
}

const MACHINE_KEYS = ['memory', 'smp', 'nodes', 'topology', 'distances', 'timing', 'cells', 'threads'] as const;
const MONITOR_KEYS = ['mmu', 'placement', 'policy', 'policySignal', 'diskCache', 'shareBootImages', 'scan', 'gang', 'idleBalance', 'balancePeriodRounds', 'borrow', 'swap'] as const;
const SWAP_KEYS = ['file', 'size'] as const;
const SCAN_KEYS = ['pagesPerSecond', 'idlePagesPerSecond', 'mergeOnFirstMatch', 'cpu'] as const;
const PLACEMENTS: readonly Placement[] = ['home', 'round-robin'];
const POLICY_KEYS = Object.keys(DEFAULT_POLICY) as (keyof NumaPolicyParameters)[];
const MMU_MODES: readonly MmuMode[] = ['software', 'nested'];
const VM_KEYS = ['name', 'smp', 'memory', 'kernel', 'initrd', 'append', 'elf', 'drive', 'console-log', 'rng', 'net', 'share', 'balloon', 'restore', 'cell'] as const;
/** What a VM made again from a snapshot takes besides `restore`: the rest is in the snapshot. */
const RESTORE_KEYS = ['name', 'restore', 'console-log'];
const DEFAULT_MACHINE_MEMORY = '1G';
const DEFAULT_VM_MEMORY = '128M';
const MAX_VCPUS = 32;
const MAX_VMS = 64;
const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;
const MiB = 2 ** 20;

/**
 * Parses and checks the text of machine file `fileName` (used in messages and to resolve relative paths).
 * Throws MachineFileError listing every problem found. `threads` (up --threads) replaces `machine.threads`.
 */
export function parseMachineFile(text: string, fileName: string, overrides: { threads?: number } = {}): MachineFileSpec {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const where = (node: Node | null | undefined): string => {
    const offset = node?.range?.[0];
    if (offset === undefined) return fileName;
    const { line, col } = lines.linePos(offset);
    return `${fileName}:${line}:${col}`;
  };
  if (doc.errors.length > 0) {
    throw new MachineFileError(doc.errors.map((e) => {
      const { line, col } = lines.linePos(e.pos[0]);
      return `${fileName}:${line}:${col}: ${firstLine(e.message)}`;
    }));
  }
  const problems: string[] = [];
  const problem = (node: Node | null | undefined, path: string, message: string): void => {
    problems.push(`${where(node)}: ${path === '' ? '' : `${path}: `}${message}`);
  };
  const root = doc.contents;
  if (!isMap(root)) {
    throw new MachineFileError([`${where(root)}: the machine file must be a mapping with 'machine' and 'vms' (see docs/machine-file.md)`]);
  }
  checkKeys(root, ['machine', 'monitor', 'vms', 'faults'], '', problem);
  const baseDir = dirname(resolve(fileName));

  // The machine.
  const machineNode = root.get('machine', true) as Node | undefined;
  let machineMap: YAMLMap | undefined;
  if (machineNode !== undefined && !isMap(machineNode)) problem(machineNode, 'machine', 'must be a mapping of machine options');
  else if (machineNode !== undefined) {
    machineMap = machineNode;
    checkKeys(machineMap, MACHINE_KEYS, 'machine', problem);
  }
  const machineValue = (key: string): { text: string; node: Node } | undefined => scalarOption(machineMap, key, `machine.${key}`, problem);
  const memory = machineValue('memory');
  const machineMemory = attempt(memory?.node, 'machine', problem, () => parseSize(memory?.text ?? DEFAULT_MACHINE_MEMORY, 'machine.memory'));
  const timing = machineValue('timing');
  let timingOn = false;
  if (timing !== undefined) {
    if (timing.text === 'true' || timing.text === 'false') timingOn = timing.text === 'true';
    else problem(timing.node, 'machine.timing', `must be true or false, not '${timing.text}'`);
  }
  let topology: ChosenTopology | undefined;
  if (machineMemory !== undefined) {
    const flags = {
      topology: machineValue('topology')?.text,
      nodes: machineValue('nodes')?.text,
      smp: machineValue('smp')?.text,
      distances: machineValue('distances')?.text,
    };
    topology = attempt(machineNode ?? root, 'machine', problem, () => chooseTopology(flags, machineMemory));
  }
  const cells = cellsOption(machineMap, topology, problem);
  const fileThreads = threadsOption(machineMap, problem).threads;
  const threads = overrides.threads ?? fileThreads;

  // The monitor.
  const monitorNode = root.get('monitor', true) as Node | undefined;
  let mmu: MmuMode = 'software';
  let placement: Placement = 'home';
  let policy: NumaPolicyParameters | undefined;
  let policySignal: PolicySignal = 'cache-misses';
  let diskCache = true;
  let shareBootImages = false;
  let scan: ScanParameters | undefined;
  let gang = false;
  let idleBalance = false;
  let balancePeriodRounds = 0;
  let borrow: BorrowParameters | undefined;
  let swap: { file: string; bytes: number } | undefined;
  if (monitorNode !== undefined && !isMap(monitorNode)) problem(monitorNode, 'monitor', `must be a mapping of monitor options (${MONITOR_KEYS.join(', ')})`);
  else if (monitorNode !== undefined) {
    checkKeys(monitorNode, MONITOR_KEYS, 'monitor', problem);
    const value = scalarOption(monitorNode, 'mmu', 'monitor.mmu', problem);
    if (value !== undefined) {
      if ((MMU_MODES as readonly string[]).includes(value.text)) mmu = value.text as MmuMode;
      else problem(value.node, 'monitor.mmu', `must be ${MMU_MODES.join(' or ')}, not '${value.text}'`);
    }
    const where = scalarOption(monitorNode, 'placement', 'monitor.placement', problem);
    if (where !== undefined) {
      if ((PLACEMENTS as readonly string[]).includes(where.text)) placement = where.text as Placement;
      else problem(where.node, 'monitor.placement', `must be ${PLACEMENTS.join(' or ')}, not '${where.text}'`);
    }
    policy = policyOption(monitorNode, problem);
    const signal = scalarOption(monitorNode, 'policySignal', 'monitor.policySignal', problem);
    if (signal !== undefined) {
      if ((POLICY_SIGNALS as readonly string[]).includes(signal.text)) policySignal = signal.text as PolicySignal;
      else problem(signal.node, 'monitor.policySignal', `must be ${POLICY_SIGNALS.join(' or ')}, not '${signal.text}'`);
    }
    const cache = booleanOption(monitorNode, 'diskCache', 'monitor.diskCache', problem);
    // With several cells the page cache, the whole machine's, is off by default, and refused (cells.ts multiCellProblems).
    diskCache = cache ?? (threads === 1 && (cells === undefined || cells.length === 1));
    if (cache === true && threads > 1) problem(monitorNode.get('diskCache', true) as Node, 'monitor.diskCache', `not with ${threads} threads yet: the page cache is the whole machine's, and each thread has its own memory (docs/threads.md)`);
    if (cache === true && cells !== undefined && cells.length > 1) {
      problem(monitorNode.get('diskCache', true) as Node, 'monitor.diskCache', `the page cache is shared by the whole machine: with ${cells.length} cells it needs issue 22's cross-cell sharing`);
    }
    shareBootImages = booleanOption(monitorNode, 'shareBootImages', 'monitor.shareBootImages', problem) ?? shareBootImages;
    scan = scanOption(monitorNode, problem);
    gang = booleanOption(monitorNode, 'gang', 'monitor.gang', problem) ?? gang;
    idleBalance = booleanOption(monitorNode, 'idleBalance', 'monitor.idleBalance', problem) ?? idleBalance;
    const period = scalarOption(monitorNode, 'balancePeriodRounds', 'monitor.balancePeriodRounds', problem);
    if (period !== undefined) {
      const n = Number(period.text);
      if (/^\d+$/.test(period.text) && Number.isSafeInteger(n)) balancePeriodRounds = n;
      else problem(period.node, 'monitor.balancePeriodRounds', `must be a whole number of rounds (0: off), not '${period.text}'`);
    }
    borrow = borrowOption(monitorNode, machineMemory, cells?.length ?? 1, problem);
    swap = swapOption(monitorNode, baseDir, problem);
    if (swap !== undefined && cells !== undefined && cells.length > 1) problem(monitorNode.get('swap', true) as Node, 'monitor.swap', `paging needs one cell, not ${cells.length}`);
    if (cells !== undefined && cells.length > 1) {
      if (shareBootImages) problem(monitorNode.get('shareBootImages', true) as Node, 'monitor.shareBootImages', `boot images go through the page cache, the whole machine's: with ${cells.length} cells it needs issue 22's cross-cell sharing`);
      if (scan !== undefined) problem(monitorNode.get('scan', true) as Node, 'monitor.scan', `the content scanner merges pages of every VM of the machine: with ${cells.length} cells it needs issue 22's cross-cell sharing`);
    }
  } else if ((cells !== undefined && cells.length > 1) || threads > 1) diskCache = false;

  // The VMs.
  const vmsNode = root.get('vms', true) as Node | undefined;
  const vms: VmFileSpec[] = [];
  if (vmsNode === undefined) problem(root, '', "no 'vms': list the virtual machines to start (at least one)");
  else if (!isSeq(vmsNode) || vmsNode.items.length === 0) problem(vmsNode, 'vms', 'must be a list of virtual machines (at least one)');
  else if (vmsNode.items.length > MAX_VMS) problem(vmsNode, 'vms', `at most ${MAX_VMS} virtual machines, not ${vmsNode.items.length}`);
  else {
    const seen = new Map<string, number>();
    vmsNode.items.forEach((item, index) => {
      const path = `vms[${index}]`;
      if (!isMap(item)) {
        problem(item as Node, path, 'must be a mapping of VM options (name, smp, memory, …)');
        return;
      }
      checkKeys(item, VM_KEYS, path, problem);
      const value = (key: string): { text: string; node: Node } | undefined => scalarOption(item, key, `${path}.${key}`, problem);
      const name = value('name');
      if (name === undefined) problem(item, path, "needs a 'name'");
      else if (!NAME.test(name.text)) problem(name.node, `${path}.name`, `'${name.text}' is not a VM name (letters, digits, '-' and '_', at most 32, not starting with '-' or '_')`);
      else if (seen.has(name.text)) problem(name.node, `${path}.name`, `'${name.text}' is already the name of vms[${seen.get(name.text)}]`);
      else seen.set(name.text, index);
      const smp = value('smp');
      const vcpus = smp === undefined ? 1 : attempt(smp.node, path, problem, () => parseCount(smp.text, `${path}.smp`, 1, MAX_VCPUS));
      const mem = value('memory');
      const memoryBytes = attempt(mem?.node ?? item, path, problem, () => parseSize(mem?.text ?? DEFAULT_VM_MEMORY, `${path}.memory`));
      const path_ = (key: string): string | undefined => {
        const v = value(key);
        if (v === undefined) return undefined;
        if (v.text === '') {
          problem(v.node, `${path}.${key}`, 'is empty');
          return undefined;
        }
        return resolve(baseDir, v.text);
      };
      const drives: DriveSpec[] = [];
      const driveNode = item.get('drive', true) as Node | undefined;
      const driveItems = driveNode === undefined ? [] : isSeq(driveNode) ? driveNode.items as Node[] : [driveNode];
      driveItems.forEach((d, k) => {
        const at = isSeq(driveNode) ? `${path}.drive[${k}]` : `${path}.drive`;
        if (!isScalar(d) || typeof d.value !== 'string') {
          problem(d, at, 'must be a drive like file=disk.img,readonly=on');
          return;
        }
        const drive = attempt(d, path, problem, () => parseDrive(d.value as string));
        if (drive === undefined) return;
        drives.push({ ...drive, file: resolve(baseDir, drive.file), ...(drive.overlay === undefined ? {} : { overlay: resolve(baseDir, drive.overlay) }) });
      });
      const restore = path_('restore');
      if (restore !== undefined) {
        for (const pair of item.items as Pair<Node, Node>[]) {
          const key = isScalar(pair.key) ? String(pair.key.value) : '';
          if ((VM_KEYS as readonly string[]).includes(key) && !RESTORE_KEYS.includes(key)) problem(pair.key, `${path}.${key}`, 'not with restore: the snapshot says what the VM is');
        }
      }
      const elf = path_('elf');
      if (elf !== undefined) {
        for (const key of ['kernel', 'initrd', 'append']) {
          const other = item.get(key, true) as Node | undefined;
          if (other !== undefined) problem(other, `${path}.${key}`, `not with elf: the VM boots that program instead of Linux`);
        }
      }
      const rng = value('rng');
      const seed = rng === undefined ? undefined : attempt(rng.node, path, problem, () => parseCount(rng.text, `${path}.rng`, 0, 2 ** 32 - 1));
      const net = value('net');
      let userNet: UserNetSpec | undefined;
      if (net !== undefined && (net.text === 'user' || net.text.startsWith('user,'))) {
        const parsed = attempt(net.node, path, problem, () => parseNet(net.text));
        if (parsed?.kind === 'user') userNet = parsed;
      } else if (net !== undefined && net.text !== 'true' && net.text !== 'false') {
        problem(net.node, `${path}.net`, `must be true (the VMs' subnet), false, or user[,hostfwd=tcp::HOSTPORT-:GUESTPORT...], not '${net.text}'`);
      }
      const share = booleanOption(item, 'share', `${path}.share`, problem) ?? true;
      const balloon = booleanOption(item, 'balloon', `${path}.balloon`, problem) ?? false;
      const cellValue = value('cell');
      const cellCount = cells?.length ?? 1;
      const cell = cellValue === undefined ? undefined : attempt(cellValue.node, path, problem, () => parseCount(cellValue.text, `${path}.cell`, 0, cellCount - 1));
      if (name === undefined || vcpus === undefined || memoryBytes === undefined) return;
      vms.push({
        name: name.text,
        smp: vcpus,
        memoryBytes,
        kernel: path_('kernel'),
        initrd: path_('initrd'),
        append: value('append')?.text,
        ...(elf === undefined ? {} : { elf }),
        drives,
        consoleLog: path_('console-log'),
        rng: seed,
        net: net?.text === 'true',
        ...(userNet === undefined ? {} : { userNet }),
        share,
        balloon,
        ...(cell === undefined ? {} : { cell }),
        ...(restore === undefined ? {} : { restore }),
      });
    });
  }

  // The VMs take machine pages as they touch them, so together they may need more than the machine has
  // (overcommit); one alone may not, but with paging as far as the swap file reaches.
  if (problems.length === 0 && machineMemory !== undefined) {
    vms.forEach((vm, index) => {
      if (vm.restore === undefined && vm.memoryBytes > machineMemory + (swap?.bytes ?? 0)) {
        problem(vmsNode, `vms[${index}].memory`, `${mib(vm.memoryBytes)} MiB is more than machine.memory (${mib(machineMemory)} MiB)${swap === undefined ? '' : ` and monitor.swap.size (${mib(swap.bytes)} MiB)`}`);
      }
    });
  }
  if (policy !== undefined && policySignal === 'cache-misses' && !timingOn && monitorNode !== undefined && isMap(monitorNode)) {
    problem(monitorNode.get('policy', true) as Node, 'monitor.policy', 'needs machine.timing: true (the policy reads the miss counters of timing mode), or policySignal: tlb-misses');
  }
  const faults = faultsOption(root.get('faults', true) as Node | undefined, topology, baseDir, problem);
  if (problems.length === 0) {
    threadsProblems(root, { config: topology?.config, timing: timingOn, cells, monitor: { policy, scan, shareBootImages, swap, borrow }, faults, vms }, threads,
      overrides.threads === undefined ? `machine.threads: ${threads}` : `--threads ${threads}`, problem);
  }
  if (problems.length > 0 || topology === undefined) throw new MachineFileError(problems);
  return { machine: { ...topology, memoryBytes: machineMemory!, timing: timingOn, ...(cells === undefined ? {} : { cells }), threads }, monitor: { mmu, placement, policy, policySignal, diskCache, shareBootImages, scan, gang, idleBalance, balancePeriodRounds, borrow, swap }, vms, faults };
}

type Problem = (node: Node | null | undefined, path: string, message: string) => void;

/**
 * `machine.cells`: a number of cells that divides the nodes (split in id order), or a list of lists of nodes
 * that holds every node once (`[[0, 1], [2, 3]]`). Returns the cells as lists of nodes; undefined when absent.
 */
function cellsOption(machine: YAMLMap | undefined, topology: ChosenTopology | undefined, problem: Problem): number[][] | undefined {
  const node = machine?.get('cells', true) as Node | undefined;
  if (node === undefined) return undefined;
  let spec: CellsSpec | undefined;
  if (isScalar(node) && typeof node.value === 'number') spec = node.value;
  else if (isSeq(node) && node.items.every((c) => isSeq(c) && c.items.every((n) => isScalar(n) && typeof n.value === 'number'))) {
    spec = node.items.map((c) => (c as YAMLSeqOf).items.map((n) => (n as { value: number }).value));
  } else {
    problem(node, 'machine.cells', 'must be a number of cells (cells: 2) or a list of lists of nodes (cells: [[0, 1], [2, 3]])');
    return undefined;
  }
  if (topology === undefined) return undefined;
  try {
    return cellNodes(spec, topology.config.nodes.length);
  } catch (error) {
    if (!(error instanceof CellsError)) throw error;
    problem(node, '', `machine.${error.message}`);
    return undefined;
  }
}

type YAMLSeqOf = { items: Node[] };

/**
 * `faults`: a campaign script, a list of `{ time: 20ms, fault: node 1 }`, or the name of a JSON file holding
 * one (relative to the machine file). Each fault is checked against the machine's nodes, CPUs, links and RAM.
 */
function faultsOption(node: Node | undefined, topology: ChosenTopology | undefined, baseDir: string, problem: Problem): ScheduledFault[] {
  if (node === undefined) return [];
  let script: unknown = node.toJSON();
  if (typeof script === 'string') {
    const file = resolve(baseDir, script);
    try {
      script = JSON.parse(readFileSync(file, 'utf8'));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      problem(node, 'faults', `cannot read the fault script '${script as string}': ${code ?? (error instanceof Error ? error.message : String(error))}`);
      return [];
    }
  }
  let check: Parameters<typeof parseFaultScript>[1];
  let layout: MachineLayout | undefined;
  try {
    layout = topology === undefined ? undefined : layoutMachine(topology.config);
  } catch (error) {
    // A machine that cannot be laid out is not this option's to report: its faults are checked for form only.
    if (!(error instanceof MachineConfigError)) throw error;
  }
  if (layout !== undefined) {
    const links = linksFromDistances(layout.distances);
    check = (fault) => faultProblems(layout, links, fault);
  }
  try {
    return parseFaultScript(script, check);
  } catch (error) {
    if (!(error instanceof FaultError)) throw error;
    for (const line of error.message.split('\n')) problem(node, 'faults', line);
    return [];
  }
}

/** Reports every key of `map` that is not in `known`, naming the known ones. */
function checkKeys(map: YAMLMap, known: readonly string[], path: string, problem: Problem): void {
  for (const pair of map.items as Pair<Node, Node>[]) {
    const key = isScalar(pair.key) ? String(pair.key.value) : undefined;
    if (key === undefined || !known.includes(key)) {
      problem(pair.key, path, `unknown key '${key ?? '?'}' (known: ${known.join(', ')})`);
    }
  }
}

/**
 * `monitor.policy`: `true` (the defaults), `false` or absent (off), or a mapping of parameters, each
 * replacing its default (numa-policy.ts DEFAULT_POLICY).
 */
function policyOption(monitorNode: YAMLMap, problem: Problem): NumaPolicyParameters | undefined {
  const node = monitorNode.get('policy', true) as Node | undefined;
  if (node === undefined) return undefined;
  if (isScalar(node) && (node.value === true || node.value === false)) return node.value ? { ...DEFAULT_POLICY } : undefined;
  if (!isMap(node)) {
    problem(node, 'monitor.policy', `must be true, false or a mapping of parameters (${POLICY_KEYS.join(', ')})`);
    return undefined;
  }
  checkKeys(node, POLICY_KEYS, 'monitor.policy', problem);
  const policy = { ...DEFAULT_POLICY };
  for (const key of POLICY_KEYS) {
    const value = scalarOption(node, key, `monitor.policy.${key}`, problem);
    if (value === undefined) continue;
    const n = Number(value.text);
    if (value.text.trim() === '' || !Number.isFinite(n)) problem(value.node, `monitor.policy.${key}`, `must be a number, not '${value.text}'`);
    else policy[key] = n;
  }
  for (const message of policyProblems(policy)) problem(node, 'monitor.policy', message);
  return policy;
}

/**
 * `monitor.borrow`: `true` (the defaults, scaled to the machine: memory-borrowing.ts), `false` or absent (off), or a
 * mapping of sizes (`lowFree`, `keep`, `chunk`, `lenderMinFree`), each replacing its default. Needs several cells.
 */
function borrowOption(monitorNode: YAMLMap, machineMemory: number | undefined, cells: number, problem: Problem): BorrowParameters | undefined {
  const node = monitorNode.get('borrow', true) as Node | undefined;
  if (node === undefined || (isScalar(node) && node.value === false)) return undefined;
  if (!(isScalar(node) && node.value === true) && !isMap(node)) {
    problem(node, 'monitor.borrow', `must be true, false or a mapping of sizes (${BORROW_KEYS.join(', ')})`);
    return undefined;
  }
  if (cells < 2) {
    problem(node, 'monitor.borrow', 'memory borrowing is between cells: it needs machine.cells of 2 or more');
    return undefined;
  }
  if (machineMemory === undefined) return undefined;
  const borrow = defaultBorrowParameters(machineMemory, cells);
  if (isMap(node)) {
    checkKeys(node, BORROW_KEYS, 'monitor.borrow', problem);
    for (const key of BORROW_KEYS) {
      const value = scalarOption(node, key, `monitor.borrow.${key}`, problem);
      if (value === undefined) continue;
      const bytes = attempt(value.node, 'monitor.borrow', problem, () => parseSize(value.text, `monitor.borrow.${key}`));
      if (bytes !== undefined) borrow[key] = bytes;
    }
  }
  // Each message names its key ("chunk must be …"): reported at that key when it was written.
  for (const message of borrowProblems(borrow)) {
    const key = message.slice(0, message.indexOf(' '));
    problem(isMap(node) ? (node.get(key, true) as Node | undefined) ?? node : node, `monitor.borrow.${key}`, message.slice(key.length + 1));
  }
  return borrow;
}

/**
 * `monitor.swap`: a mapping of `file` (a path, relative to the machine file; created 0600, truncated) and
 * `size` (a whole number of 4 KiB pages, `512M`); absent: no paging.
 */
function swapOption(monitorNode: YAMLMap, baseDir: string, problem: Problem): { file: string; bytes: number } | undefined {
  const node = monitorNode.get('swap', true) as Node | undefined;
  if (node === undefined) return undefined;
  if (!isMap(node)) {
    problem(node, 'monitor.swap', `must be a mapping of ${SWAP_KEYS.join(' and ')}`);
    return undefined;
  }
  checkKeys(node, SWAP_KEYS, 'monitor.swap', problem);
  const file = scalarOption(node, 'file', 'monitor.swap.file', problem);
  const size = scalarOption(node, 'size', 'monitor.swap.size', problem);
  if (file === undefined || size === undefined) {
    problem(node, 'monitor.swap', 'needs both a file and a size');
    return undefined;
  }
  const bytes = attempt(size.node, 'monitor.swap.size', problem, () => parseSize(size.text, 'monitor.swap.size'));
  if (bytes === undefined) return undefined;
  if (bytes <= 0 || bytes % 4096 !== 0) {
    problem(size.node, 'monitor.swap.size', `must be a whole number of 4 KiB pages, not '${size.text}'`);
    return undefined;
  }
  return { file: resolve(baseDir, file.text), bytes };
}

/** The value of `key` as text, when it is a scalar (numbers and booleans as written); a problem otherwise. */
/** `key` of `map` as true or false, undefined when absent (or wrong: then a problem). */
function booleanOption(map: YAMLMap, key: string, path: string, problem: Problem): boolean | undefined {
  const v = scalarOption(map, key, path, problem);
  if (v === undefined) return undefined;
  if (v.text === 'true' || v.text === 'false') return v.text === 'true';
  problem(v.node, path, `must be true or false, not '${v.text}'`);
  return undefined;
}

/**
 * `monitor.scan`: `true` (the defaults), `false` or absent (off), or a mapping of `pagesPerSecond`,
 * `idlePagesPerSecond` (0: off), `mergeOnFirstMatch` and `cpu`.
 */
function scanOption(monitorNode: YAMLMap, problem: Problem): ScanParameters | undefined {
  const node = monitorNode.get('scan', true) as Node | undefined;
  if (node === undefined) return undefined;
  if (isScalar(node) && (node.value === true || node.value === false)) return node.value ? { pagesPerSecond: DEFAULT_SCAN.pagesPerSecond, cpu: DEFAULT_SCAN.cpu } : undefined;
  if (!isMap(node)) {
    problem(node, 'monitor.scan', `must be true, false or a mapping of ${SCAN_KEYS.join(', ')}`);
    return undefined;
  }
  checkKeys(node, SCAN_KEYS, 'monitor.scan', problem);
  const scan: ScanParameters = { pagesPerSecond: DEFAULT_SCAN.pagesPerSecond, cpu: DEFAULT_SCAN.cpu };
  const firstMatch = booleanOption(node, 'mergeOnFirstMatch', 'monitor.scan.mergeOnFirstMatch', problem);
  if (firstMatch !== undefined) scan.mergeOnFirstMatch = firstMatch;
  for (const key of ['pagesPerSecond', 'idlePagesPerSecond', 'cpu'] as const) {
    const v = scalarOption(node, key, `monitor.scan.${key}`, problem);
    if (v === undefined) continue;
    const n = Number(v.text);
    if (v.text.trim() === '' || !Number.isFinite(n) || n < 0 || (key === 'cpu' && !Number.isInteger(n)) || (key === 'pagesPerSecond' && n === 0)) {
      problem(v.node, `monitor.scan.${key}`, key === 'cpu' ? `must be a CPU number, not '${v.text}'`
        : key === 'idlePagesPerSecond' ? `must be 0 (off) or a positive number of pages, not '${v.text}'` : `must be a positive number of pages, not '${v.text}'`);
    } else scan[key] = n;
  }
  return scan;
}

function scalarOption(map: YAMLMap | undefined, key: string, path: string, problem: Problem): { text: string; node: Node } | undefined {
  const node = map?.get(key, true) as Node | undefined;
  if (node === undefined) return undefined;
  if (!isScalar(node) || node.value === null || typeof node.value === 'object') {
    problem(node, path, 'must be a single value');
    return undefined;
  }
  return { text: String(node.value), node };
}

/**
 * Runs a command-line parser and turns its UsageError into a problem at `node`. The parsers name options as
 * typed on the command line (`--smp`, `-m`, `--drive`); `prefix` says where they are in the file instead.
 */
function attempt<T>(node: Node | null | undefined, prefix: string, problem: Problem, parse: () => T): T | undefined {
  try {
    return parse();
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    const message = error.message
      .replace(/(^|[\s(])--([a-z][a-z-]*)/g, (_, before: string, option: string) => `${before}${prefix}.${option}`)
      .replace(/(^|[\s(])-m\b/g, (_, before: string) => `${before}${prefix}.memory`);
    problem(node, '', message);
    return undefined;
  }
}

function firstLine(text: string): string {
  return text.split('\n')[0]!.trim();
}

function mib(bytes: number): string {
  return (bytes / MiB).toFixed(bytes % MiB === 0 ? 0 : 1);
}
