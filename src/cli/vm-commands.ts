// `mirrorball ps`, `stop`, `start`, `stats` and `down`: a running `mirrorball up`'s VMs, through its control socket.

import type { Command } from 'commander';
import type { MemoryReport, VmListing } from '../control/monitor-commands.js';
import type { VmAccount } from '../monitor/accounting.js';
import type { CellLoanStats } from '../monitor/memory-borrowing.js';
import { OUT_OF_MEMORY } from '../monitor/vm.js';
import { HARDWARE_FAULT } from '../monitor/fault-recovery.js';
import { controlOptions, withControl, type ControlFlags } from './vm-client.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const PAGE = 4 * KiB;

export function registerVmCommands(program: Command): void {
  controlOptions(program
    .command('ps')
    .summary('list the VMs of a running `mirrorball up`')
    .description('List the VMs of a running `mirrorball up`: name, state, vCPUs, memory, memory in use (private, shared and by how many ' +
      'holders), reserved, home node, and with several cells the cells it depends on; then the machine\'s memory: in use, what sharing saved by source, and how it adds up'))
    .action(async (flags: ControlFlags) => {
      const [vms, memory, machine] = await withControl(flags, async (c) => [(await c.execute('query-vms')) as VmListing[], (await c.execute('query-memory')) as MemoryReport,
        (await c.execute('query-monitor')) as { cells?: unknown[] }] as const);
      process.stdout.write(psTable(vms, machine.cells?.length ?? 1) + memoryLines(memory));
    });

  controlOptions(program
    .command('stop')
    .argument('<vm>', 'the VM to stop')
    .summary('stop one VM of a running `mirrorball up`; the others go on')
    .description('Stop one VM of a running `mirrorball up` at once (as pulling its plug); the other VMs go on'))
    .action(async (name: string, flags: ControlFlags) => {
      // The reply says how it ended: the monitor may be gone right after (when it was the last VM).
      const vm = await withControl(flags, async (c) => (await c.execute('vm-stop', { vm: name })) as { state: string; reason: string });
      process.stdout.write(`vm ${name}: ${describeEnd(vm)}\n`);
    });

  controlOptions(program
    .command('start')
    .argument('<vm>', 'the VM to start again')
    .summary('boot again a VM of a running `mirrorball up` that has ended')
    .description('Boot again, from its entry in the machine file and with its name, a VM of a running `mirrorball up` that has ended ' +
      '(stopped, powered off or crashed); its console log goes on, its console socket comes back (docs/up.md)'))
    .action(async (name: string, flags: ControlFlags) => {
      const vm = await withControl(flags, async (c) => (await c.execute('vm-start', { vm: name })) as { vcpus: number; memoryBytes: number; homeNode: number });
      process.stdout.write(`vm ${name}: running, ${vm.vcpus} vCPU${vm.vcpus === 1 ? '' : 's'}, ${formatSize(vm.memoryBytes)} on node ${vm.homeNode}\n`);
    });

  controlOptions(program
    .command('balloon')
    .argument('<vm>', 'the VM (it needs `balloon: true` in the machine file)')
    .argument('[pages]', 'the balloon\'s new size in 4 KiB pages (0 empties it); absent: show it')
    .summary('set or show the balloon of one VM of a running `mirrorball up`')
    .description('Ask one VM\'s guest to make its virtio balloon PAGES pages big (as QEMU\'s `balloon`, but in pages held by the balloon, ' +
      'not the guest\'s size): the guest gives those pages, and the monitor takes their machine pages back. Without PAGES, show the balloon ' +
      'and what it and the guest\'s free page reports gave back'))
    .action(async (name: string, pages: string | undefined, flags: ControlFlags) => {
      if (pages !== undefined && !/^\d+$/.test(pages)) {
        process.stderr.write(`mirrorball: balloon: '${pages}' is not a number of pages\n`);
        process.exitCode = 2;
        return;
      }
      const b = await withControl(flags, async (c) => (pages === undefined ? c.execute('query-balloon', { vm: name }) : c.execute('balloon', { vm: name, pages: Number(pages) }))) as
        { target: number; actual: number; reporting: boolean; account: { reportedPages: number; inflatedPages: number; unmapped: number; freed: number } };
      const a = b.account;
      process.stdout.write(`vm ${name}: balloon ${b.actual} of ${b.target} pages (${((b.target * PAGE) / MiB).toFixed(1)} MiB asked); free page reporting ${b.reporting ? 'on' : 'off'}; ` +
        `${a.reportedPages} pages reported and ${a.inflatedPages} inflated, ${a.unmapped} unmapped, ${a.freed} machine pages freed\n`);
    });

  controlOptions(program
    .command('down')
    .summary('stop every VM and end a running `mirrorball up`')
    .description('End a running `mirrorball up` (in the foreground or --detach): every VM still running is stopped, as `quit` on its control socket does'))
    .action(async (flags: ControlFlags) => {
      await withControl(flags, async (c) => {
        await c.execute('quit');
        await c.closed; // the monitor closes its connections once it has stopped
      });
      process.stdout.write('mirrorball: the monitor has quit\n');
    });

  controlOptions(program
    .command('stats')
    .argument('<vm>', 'the VM')
    .summary('where one VM\'s time went: guest, monitor, idle; TLB; pages')
    .description('Show where one VM\'s time went under the monitor: guest user and kernel cycles, monitor work, idle and ready ' +
      'time, instructions, TLB misses, second-level TLB hits, world switches, monitor calls, pages in use (per vCPU and in total)')
    .option('--json', 'print the account as JSON (as the control socket\'s query-vm-stats returns it)'))
    .action(async (name: string, flags: ControlFlags & { json?: boolean }) => {
      const [account, machine] = await withControl(flags, async (c) => [(await c.execute('query-vm-stats', { vm: name })) as VmAccount,
        (await c.execute('query-monitor')) as { cells?: CellLoans[] }] as const);
      process.stdout.write(flags.json === true ? `${JSON.stringify(account, null, 2)}\n` : statsTable(account, machine.cells?.length ?? 1, machine.cells));
    });
}

/** How a VM ended, as `up` prints it: `powered off (code 0)`, `stopped (vm-stop from the control socket)`. */
/**
 * The line `up` prints when a VM ends: `vm web: powered off (code 0)`, `vm web: stopped (vm-stop from the
 * control socket)`; a VM the machine had no memory for: `vm web stopped: machine memory exhausted (N MiB in use)`; one that
 * depended on failed hardware: `vm web stopped: hardware fault: node 2 failed: 310 of its pages were there`.
 */
export function endLine(vm: { name: string; state: string; reason: string }): string {
  if (vm.state === 'stopped' && (vm.reason.startsWith(OUT_OF_MEMORY) || vm.reason.startsWith(HARDWARE_FAULT))) return `vm ${vm.name} stopped: ${vm.reason}`;
  return `vm ${vm.name}: ${describeEnd(vm)}`;
}

export function describeEnd(vm: { state: string; reason: string }): string {
  if (vm.state === 'running') return 'running';
  if (vm.state === 'off') return vm.reason;
  return vm.reason === '' ? vm.state : `${vm.state} (${vm.reason})`;
}

/** 128M, 1.5G, 36.2M, 512K: what people read in a table. */
export function formatSize(bytes: number): string {
  const unit = (n: number, suffix: string): string => `${Number.isInteger(n) ? n : n.toFixed(1)}${suffix}`;
  if (bytes >= GiB) return unit(Math.round((bytes / GiB) * 10) / 10, 'G');
  if (bytes >= MiB) return unit(Math.round((bytes / MiB) * 10) / 10, 'M');
  if (bytes >= KiB) return unit(Math.round((bytes / KiB) * 10) / 10, 'K');
  return `${bytes}`;
}

/** 1234567 → 1,234,567. */
function grouped(n: number): string {
  return String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** Rows of cells, columns padded to their widest cell; the first `left` columns left-aligned, the others right. */
function table(rows: string[][], left: number): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i < left ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ').trimEnd()).join('\n') + '\n';
}

/** `ps`'s table; on a machine of several cells (`cells`), with the cells each VM depends on (`0`, or `0,1` for one that spans both). */
export function psTable(vms: readonly VmListing[], cells = 1): string {
  const withCells = cells > 1;
  // With paging, what of each VM is in the swap file.
  const withSwap = vms.some((vm) => vm.pagesSwapped !== undefined);
  const rows = [['NAME', 'STATE', 'VCPUS', 'MEMORY', 'IN-USE', 'PRIVATE', 'SHARED', 'SHARERS', 'RESERVED', ...(withSwap ? ['SWAPPED'] : []), 'NODE', ...(withCells ? ['CELLS'] : [])]];
  for (const vm of vms) {
    rows.push([vm.name, vm.state, String(vm.vcpus), formatSize(vm.memoryBytes), formatSize(vm.bytesInUse), formatSize(vm.pagesPrivate * PAGE),
      formatSize(vm.pagesShared * PAGE), sharers(vm.pagesSharedBy), formatSize(vm.pagesReserved * PAGE),
      ...(withSwap ? [formatSize((vm.pagesSwapped ?? 0) * PAGE)] : []), String(vm.homeNode),
      ...(withCells ? [vm.cells.join(',')] : [])]);
  }
  return table(rows, 2);
}

/** `{"2": 13, "3": 611}` → `2×13 3×611` (holders × pages), `-` when none. */
function sharers(by: Record<string, number> | undefined): string {
  const parts = Object.entries(by ?? {}).map(([holders, n]) => `${holders}×${n}`);
  return parts.length === 0 ? '-' : parts.join(' ');
}

/** The machine's memory below `ps`'s table: in use, how it adds up, and what sharing saved by source. */
export function memoryLines(r: MemoryReport): string {
  const m = r.machine;
  const size = (pages: number): string => formatSize(pages * PAGE);
  const saved = Object.entries(m.savedBy).filter(([, n]) => n > 0).map(([source, n]) => `${source} ${size(n)}`).join(', ');
  return `\nmachine: ${size(m.inUse)} in use by VMs = ${size(m.mapped)} of guest pages − ${size(m.saved)} saved by sharing` +
    `${saved === '' ? '' : ` (${saved})`} + ${size(m.cacheOnly)} held by the page cache alone\n` +
    `         ${size(m.privatePages)} private, ${size(m.sharedPages)} shared; ${size(m.reserved)} reserved, ${size(m.monitor)} the monitor's, ` +
    `${size(m.replicas)} replicas, ${m.lent > 0 ? `${size(m.lent)} lent to other cells, ` : ''}${size(m.free)} free, of ${size(m.total)}\n`;
}

const ROWS: [Exclude<keyof VmAccount['total'], 'monitorByKind'>, string][] = [
  ['guestUserCycles', 'guest user cycles'],
  ['guestKernelCycles', 'guest kernel cycles'],
  ['monitorCycles', 'monitor cycles'],
  ['idleCycles', 'idle cycles'],
  ['readyCycles', 'ready cycles'],
  ['instructions', 'instructions'],
  ['tlbMisses', 'TLB misses'],
  ['secondLevelHits', 'L2 TLB hits'],
  ['worldSwitches', 'world switches'],
  ['cpuMoves', 'moves in a node'],
  ['nodeMoves', 'moves to a node'],
  ['cellMigrations', 'moves to a cell'],
  ['cpuMoveCycles', 'cycles of moves in a node'],
  ['nodeMoveCycles', 'cycles of moves to a node'],
  ['cellMoveCycles', 'cycles of moves to a cell'],
];

/** A cell as `query-monitor` gives it, with its loans when the monitor borrows memory between cells. */
export interface CellLoans {
  id: number;
  borrowing?: CellLoanStats | null;
}

/** One cell's loans as a line of `stats`: `cell 0: borrowed 3 chunks (768 pages, 40 in use), lent none; asked 3, given 3, refused 0, given back 0`. */
export function loanLine(cell: number, l: CellLoanStats): string {
  const chunks = (n: number, pages: number, inUse: number): string => (n === 0 ? 'none' : `${n} chunk${n === 1 ? '' : 's'} (${grouped(pages)} pages, ${grouped(inUse)} in use)`);
  return `cell ${cell}: borrowed ${chunks(l.borrowedChunks, l.borrowedPages, l.borrowedInUse)}, lent ${chunks(l.lentChunks, l.lentPages, l.lentInUse)}; ` +
    `asked ${l.requests}, given ${l.granted}, refused ${l.refused}, given back ${l.returned}`;
}

/**
 * `stats`'s text; on a machine of several cells (`cells`), the head line names the VM's, and with borrowing
 * (`loans`, `query-monitor`'s cells) a line per cell it depends on says what that cell borrowed and lent.
 */
export function statsTable(a: VmAccount, cells = 1, loans: readonly CellLoans[] = []): string {
  const calls = Object.entries(a.monitorCalls).map(([name, n]) => `${name} ${grouped(n)}`).join(', ');
  const exits = Object.entries(a.exitCauses).map(([name, n]) => `${name} ${grouped(n)}`).join(', ');
  const head = [
    `vm ${a.name}: ${describeEnd(a)}, ${a.vcpus} vCPU${a.vcpus === 1 ? '' : 's'}, ${formatSize(a.memoryBytes)} on node ${a.homeNode}` +
      `${cells > 1 ? `, ${a.cells.length === 1 ? `in cell ${a.cells[0]}` : `spanning cells ${a.cells.join(', ')}`}` : ''}`,
    `pages in use: ${grouped(a.pagesInUse)} (${formatSize(a.bytesInUse)}): ${grouped(a.pagesPrivate)} private, ${grouped(a.pagesShared)} shared` +
      `${a.pagesShared > 0 ? ` (holders × pages: ${sharers(a.pagesSharedBy)})` : ''}; ${grouped(a.pagesReserved)} reserved`,
    ...loans.filter((c) => a.cells.includes(c.id) && c.borrowing != null).map((c) => loanLine(c.id, c.borrowing!)),
    `monitor calls: ${calls === '' ? 'none' : calls}`,
    `exits: ${exits === '' ? 'none' : exits}`,
    '',
  ];
  const rows = [['', 'total', ...a.perVcpu.map((v) => `cpu${v.index}`)]];
  for (const [key, label] of ROWS) rows.push([label, grouped(a.total[key]), ...a.perVcpu.map((v) => grouped(v[key]))]);
  rows.push(['last physical CPU', '', ...a.perVcpu.map((v) => (v.lastCpu < 0 ? '-' : String(v.lastCpu)))]);
  return `${head.join('\n')}\n${table(rows, 1)}`;
}
