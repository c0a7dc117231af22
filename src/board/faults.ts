// Hardware faults as a property of the machine: what can fail, the state of what has, and the checks failed memory makes.

import {
  HW_MEMORY_FAILED, HW_OK, HW_PAGE_PARTIAL, HW_POISONED, HW_UNREACHABLE, SYNDROME_NAMES, type RegionFaults,
} from '../memory/hardware-faults.js';
import type { RamRegion } from '../memory/ram.js';
import type { MachineLayout } from './address-map.js';
import { FailureReport } from './failure-report.js';
import { linkName, linksFromDistances, Routes, type Link } from './interconnect.js';

/** Bytes in a cache line, the unit of poison (the timing model's line; ECC words are protected per line). */
export const POISON_LINE_BYTES = 64;
const PAGE_BYTES = 4096;
const LINES_PER_PAGE = PAGE_BYTES / POISON_LINE_BYTES;

/**
 * A fault that can be injected: a node fails (its CPUs stop, its memory answers nothing); one CPU stops; a
 * link between two routers fails; a node's router fails (the node is cut off, routes through it go round or
 * are gone); a memory page or line (of machine address `address`) is poisoned.
 */
export type Fault =
  | { readonly kind: 'node'; readonly node: number }
  | { readonly kind: 'cpu'; readonly cpu: number }
  | { readonly kind: 'link'; readonly a: number; readonly b: number }
  | { readonly kind: 'router'; readonly node: number }
  | { readonly kind: 'page'; readonly address: number }
  | { readonly kind: 'line'; readonly address: number };

/** A fault as the command line writes it: `node 2`, `cpu 3`, `link 0-1`, `router 2`, `page 0x80200000`. */
export function faultName(fault: Fault): string {
  switch (fault.kind) {
    case 'node':
    case 'router':
      return `${fault.kind} ${fault.node}`;
    case 'cpu':
      return `cpu ${fault.cpu}`;
    case 'link':
      return `link ${fault.a}-${fault.b}`;
    case 'page':
    case 'line':
      return `${fault.kind} 0x${fault.address.toString(16)}`;
  }
}

/** A fault that names nothing the machine has: a message for the user, one line. */
export class FaultError extends Error {}

/** Problems with `fault` on a machine of `layout` and `links`, one sentence each (none: it names something the machine has). */
export function faultProblems(layout: MachineLayout, links: readonly Link[], fault: Fault): string[] {
  const nodes = layout.nodes.length;
  const node = (n: number): string[] => (Number.isInteger(n) && n >= 0 && n < nodes ? [] : [`no node ${n}: the machine has nodes 0 to ${nodes - 1}`]);
  switch (fault.kind) {
    case 'node':
    case 'router':
      return node(fault.node);
    case 'cpu':
      return Number.isInteger(fault.cpu) && fault.cpu >= 0 && fault.cpu < layout.harts ? [] : [`no CPU ${fault.cpu}: the machine has CPUs 0 to ${layout.harts - 1}`];
    case 'link': {
      const bad = [...node(fault.a), ...node(fault.b)];
      if (bad.length > 0) return bad;
      const a = Math.min(fault.a, fault.b);
      const b = Math.max(fault.a, fault.b);
      if (links.some((l) => l.a === a && l.b === b)) return [];
      return [`no link ${fault.a}-${fault.b}: the links are ${links.map(linkName).join(', ') || 'none'}`];
    }
    case 'page':
    case 'line': {
      const base = layout.nodes[0]!.base;
      return Number.isSafeInteger(fault.address) && fault.address >= base && fault.address < layout.ramEnd
        ? [] : [`no memory at 0x${Math.max(0, fault.address).toString(16)}: RAM is 0x${base.toString(16)} to 0x${layout.ramEnd.toString(16)}`];
    }
  }
}

/** Anything that caches translations to machine memory (a hart's TLBs): emptied when the hardware changes. */
export interface TlbHolder {
  hardwareChanged(): void;
}

/**
 * The faults of one machine: which nodes, CPUs, links and routers have failed and which lines are poisoned,
 * the routes that are left, and the check each RAM region carries while a fault touches it. It is the
 * hardware: it changes only when a fault is applied (`apply`, by the injector at a simulated time), and what
 * it tells is told through the failure report and through bus errors on the accesses it refuses.
 */
export class MachineFaults {
  readonly report = new FailureReport();
  /** The interconnect's links, lower node first. */
  readonly links: readonly Link[];
  private readonly failedNodes = new Set<number>();
  private readonly failedCpus = new Set<number>();
  private readonly failedLinks = new Set<string>();
  private readonly failedRouters = new Set<number>();
  private routes: Routes;
  /** Per region: its poisoned lines (line index in the region), and per page the number of them. */
  private readonly poisonedLines: Set<number>[];
  private readonly poisonedPages: Map<number, number>[];
  private readonly checks: RegionCheck[];
  private readonly holders = new Set<TlbHolder>();
  private readonly rerouteListeners = new Set<(after: Routes, before: Routes) => void>();
  /** The simulated time (machine cycles) records are stamped with: the injector sets it as it applies faults. */
  now = 0;

  constructor(readonly layout: MachineLayout, readonly regions: readonly RamRegion[], links?: readonly Link[]) {
    this.links = links ?? linksFromDistances(layout.distances);
    this.routes = this.route();
    this.poisonedLines = regions.map(() => new Set());
    this.poisonedPages = regions.map(() => new Map());
    this.checks = regions.map((_, i) => new RegionCheck(this, i));
  }

  /** Registers `holder`'s TLBs, emptied at every fault; returns the function that lets it go. */
  attach(holder: TlbHolder): () => void {
    this.holders.add(holder);
    return () => this.holders.delete(holder);
  }

  /** True while CPU `cpu` executes: neither it nor its node has failed. */
  cpuRuns(cpu: number): boolean {
    return !this.failedCpus.has(cpu) && !this.failedNodes.has(this.layout.hartNode[cpu]!);
  }

  nodeFailed(node: number): boolean {
    return this.failedNodes.has(node);
  }

  linkFailed(a: number, b: number): boolean {
    return this.failedLinks.has(linkName({ a: Math.min(a, b), b: Math.max(a, b) }));
  }

  routerFailed(node: number): boolean {
    return this.failedRouters.has(node);
  }

  /** The routes that are left. */
  get interconnect(): Routes {
    return this.routes;
  }

  /** True when the line at machine `address` is poisoned. */
  poisoned(address: number): boolean {
    const region = this.regionIndex(address);
    return region >= 0 && this.poisonedLines[region]!.has(Math.floor((address - this.regions[region]!.base) / POISON_LINE_BYTES));
  }

  /** Problems with `fault` on this machine, one sentence each (none: it names something the machine has). */
  problems(fault: Fault): string[] {
    return faultProblems(this.layout, this.links, fault);
  }

  /**
   * Makes `fault` true of the machine now: every TLB is emptied, each region a fault touches gets its check,
   * and the report records what changed (nothing for a fault already in effect, or for poison: that is found
   * by whoever reads it). Throws FaultError if it names nothing the machine has.
   */
  apply(fault: Fault): void {
    const problems = this.problems(fault);
    if (problems.length > 0) throw new FaultError(problems.join('; '));
    const time = this.now;
    switch (fault.kind) {
      case 'node': {
        if (this.failedNodes.has(fault.node)) return;
        this.failedNodes.add(fault.node);
        this.report.add({ kind: 'node-failed', time, node: fault.node, cpus: this.layout.nodes[fault.node]!.harts });
        break;
      }
      case 'cpu': {
        if (!this.cpuRuns(fault.cpu)) return;
        this.failedCpus.add(fault.cpu);
        this.report.add({ kind: 'cpu-stopped', time, cpu: fault.cpu, node: this.layout.hartNode[fault.cpu]! });
        return;
      }
      case 'link': {
        const name = linkName({ a: Math.min(fault.a, fault.b), b: Math.max(fault.a, fault.b) });
        if (this.failedLinks.has(name)) return;
        this.failedLinks.add(name);
        this.report.add({ kind: 'link-failed', time, link: name });
        this.reroute(time);
        break;
      }
      case 'router': {
        if (this.failedRouters.has(fault.node)) return;
        this.failedRouters.add(fault.node);
        this.report.add({ kind: 'router-failed', time, node: fault.node });
        this.reroute(time);
        break;
      }
      case 'page':
      case 'line': {
        const region = this.regionIndex(fault.address);
        const base = this.regions[region]!.base;
        const bytes = fault.kind === 'page' ? PAGE_BYTES : POISON_LINE_BYTES;
        const first = Math.floor((fault.address - base) / bytes) * (bytes / POISON_LINE_BYTES);
        for (let line = first; line < first + bytes / POISON_LINE_BYTES; line++) this.poison(region, line);
        break;
      }
    }
    this.install();
  }

  /**
   * A service action: every failed node, CPU, link and router is replaced and works again. A node replaced
   * has new memory, all zeros and without poison; poison on the other nodes stays (it is in their memory,
   * which was not replaced). The report records each part back (`node-repaired`, `cpu-repaired`,
   * `link-repaired`, `router-repaired`), and the interconnect's groups when they joined. Every TLB is emptied.
   * Returns how many parts came back.
   */
  repair(): number {
    const time = this.now;
    let parts = 0;
    for (const node of [...this.failedNodes].sort((a, b) => a - b)) {
      this.failedNodes.delete(node);
      this.regions.forEach((region, i) => {
        if (region.node !== node) return;
        region.u8.fill(0);
        this.poisonedLines[i]!.clear();
        this.poisonedPages[i]!.clear();
      });
      this.report.add({ kind: 'node-repaired', time, node, cpus: this.layout.nodes[node]!.harts });
      parts++;
    }
    for (const cpu of [...this.failedCpus].sort((a, b) => a - b)) {
      this.failedCpus.delete(cpu);
      this.report.add({ kind: 'cpu-repaired', time, cpu, node: this.layout.hartNode[cpu]! });
      parts++;
    }
    const rerouted = this.failedLinks.size + this.failedRouters.size > 0;
    for (const link of [...this.failedLinks].sort()) {
      this.failedLinks.delete(link);
      this.report.add({ kind: 'link-repaired', time, link });
      parts++;
    }
    for (const node of [...this.failedRouters].sort((a, b) => a - b)) {
      this.failedRouters.delete(node);
      this.report.add({ kind: 'router-repaired', time, node });
      parts++;
    }
    if (rerouted) this.reroute(time);
    if (parts > 0) this.install();
    return parts;
  }

  /**
   * Rewrites the page at machine `address` whole (zeros), which clears its poison, as a full-line write does on
   * hardware that tracks poison per line. The monitor retires poisoned pages instead; this is the owner's
   * way to reuse one (tests, the campaign's replacement of lost memory).
   */
  scrub(address: number): void {
    const region = this.regionIndex(address);
    if (region < 0) throw new FaultError(`no memory at 0x${address.toString(16)}`);
    const r = this.regions[region]!;
    const page = Math.floor((address - r.base) / PAGE_BYTES);
    r.u8.fill(0, page * PAGE_BYTES, (page + 1) * PAGE_BYTES);
    for (let line = page * LINES_PER_PAGE; line < (page + 1) * LINES_PER_PAGE; line++) this.poisonedLines[region]!.delete(line);
    this.poisonedPages[region]!.delete(page);
    this.install();
  }

  /** Region `index`'s lines wholly inside `length` bytes at `offset` were written whole: their poison is gone. */
  rewritten(index: number, offset: number, length: number): void {
    const lines = this.poisonedLines[index]!;
    if (lines.size === 0) return;
    const pages = this.poisonedPages[index]!;
    let cleared = 0;
    for (let line = Math.ceil(offset / POISON_LINE_BYTES); (line + 1) * POISON_LINE_BYTES <= offset + length; line++) {
      if (!lines.delete(line)) continue;
      cleared++;
      const page = Math.floor(line / LINES_PER_PAGE);
      const left = pages.get(page)! - 1;
      if (left === 0) pages.delete(page);
      else pages.set(page, left);
    }
    if (cleared > 0) this.install();
  }

  /** The check of region `index` (RegionCheck) for an access by CPU `cpu` (< 0: a device). */
  check(index: number, cpu: number, offset: number, length: number): number {
    const node = this.regions[index]!.node;
    if (this.failedNodes.has(node)) return HW_MEMORY_FAILED;
    if (cpu >= 0 && !this.routes.reaches(this.layout.hartNode[cpu]!, node)) return HW_UNREACHABLE;
    const pages = this.poisonedPages[index]!;
    if (pages.size === 0 || !pages.has(Math.floor(offset / PAGE_BYTES))) return HW_OK;
    const lines = this.poisonedLines[index]!;
    const last = Math.floor((offset + Math.max(1, length) - 1) / POISON_LINE_BYTES);
    for (let line = Math.floor(offset / POISON_LINE_BYTES); line <= last; line++) if (lines.has(line)) return HW_POISONED;
    return HW_PAGE_PARTIAL;
  }

  /** A bus error the hardware saw: logged in the report. */
  busError(cpu: number, address: number, syndrome: number): void {
    this.report.add({ kind: 'bus-error', time: this.now, cpu, address, syndrome: SYNDROME_NAMES[syndrome]!, count: 1 });
  }

  private poison(region: number, line: number): void {
    const lines = this.poisonedLines[region]!;
    if (lines.has(line)) return;
    lines.add(line);
    const page = Math.floor(line / LINES_PER_PAGE);
    const pages = this.poisonedPages[region]!;
    pages.set(page, (pages.get(page) ?? 0) + 1);
  }

  /** Told of every change of routes (`after`, `before`): timing mode charges a rerouted miss by its new route. */
  onReroute(listener: (after: Routes, before: Routes) => void): () => void {
    this.rerouteListeners.add(listener);
    return () => this.rerouteListeners.delete(listener);
  }

  private route(): Routes {
    return new Routes(this.layout.nodes.length, this.links, this.failedLinks, this.failedRouters, this.layout.distances);
  }

  /** The routes after a link or router went; a record of the new groups when the interconnect split further. */
  private reroute(time: number): void {
    const before = this.routes;
    this.routes = this.route();
    if (this.routes.groups.length !== before.groups.length) this.report.add({ kind: 'partition', time, groups: this.routes.groups.map((g) => [...g]) });
    for (const listener of this.rerouteListeners) listener(this.routes, before);
  }

  /** Empties every TLB, then gives each region its check if some fault touches it (and none otherwise). */
  private install(): void {
    for (const holder of this.holders) holder.hardwareChanged();
    this.regions.forEach((region, i) => {
      const touched = this.failedNodes.has(region.node) || this.poisonedPages[i]!.size > 0
        || this.layout.nodes.some((n) => !this.routes.reaches(n.id, region.node));
      region.faults = touched ? this.checks[i]! : null;
    });
  }

  private regionIndex(address: number): number {
    return this.regions.findIndex((r) => address >= r.base && address < r.end);
  }
}

/** The check one region carries while a fault touches it. */
class RegionCheck implements RegionFaults {
  constructor(private readonly faults: MachineFaults, private readonly index: number) {}

  check(cpu: number, offset: number, length: number): number {
    return this.faults.check(this.index, cpu, offset, length);
  }

  busError(cpu: number, address: number, syndrome: number): void {
    this.faults.busError(cpu, address, syndrome);
  }

  rewritten(offset: number, length: number): void {
    this.faults.rewritten(this.index, offset, length);
  }
}
