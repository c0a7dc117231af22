// Faults as people write them (`node 2`, `link 0-1`, `page 0x80200000`), campaign scripts of {time, fault}, and random campaigns from a seed.

import { CPU_CYCLES_PER_SECOND } from './topology.js';
import type { MachineLayout } from './address-map.js';
import { FaultError, faultName, type Fault } from './faults.js';
import type { ScheduledFault } from './hardware.js';
import type { Link } from './interconnect.js';

const FORMS = 'node N, cpu N, link A-B, router N, page ADDR or line ADDR';

/** Text from the user in a message: quoted, with line breaks and other control characters escaped (a message is one line). */
function quoted(text: string | number): string {
  return `'${JSON.stringify(String(text)).slice(1, -1).replace(/\\"/g, '"')}'`;
}

/** Parses one fault as the command line writes it. Throws FaultError with one line. */
export function parseFault(text: string): Fault {
  const words = text.trim().split(/\s+/);
  const [kind, arg, extra] = words;
  if (kind === undefined || kind === '' || arg === undefined || extra !== undefined) throw new FaultError(`${quoted(text.trim())} is not a fault: write ${FORMS}`);
  const index = (what: string): number => {
    if (!/^\d+$/.test(arg)) throw new FaultError(`${kind} needs a ${what} number, not ${quoted(arg)}`);
    return Number(arg);
  };
  switch (kind) {
    case 'node':
    case 'router':
      return { kind, node: index('node') };
    case 'cpu':
      return { kind, cpu: index('CPU') };
    case 'link': {
      const m = /^(\d+)-(\d+)$/.exec(arg);
      if (m === null) throw new FaultError(`link needs two nodes as A-B, not ${quoted(arg)}`);
      return { kind, a: Number(m[1]), b: Number(m[2]) };
    }
    case 'page':
    case 'line':
      return { kind, address: parseAddress(arg) };
    default:
      throw new FaultError(`no fault kind ${quoted(kind)}: write ${FORMS}`);
  }
}

/** A machine address: hexadecimal with 0x, or decimal. */
export function parseAddress(text: string): number {
  const value = /^0x[0-9a-f]+$/i.test(text) ? Number.parseInt(text.slice(2), 16) : /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value)) throw new FaultError(`${quoted(text)} is not an address: write it in hexadecimal (0x80200000) or decimal`);
  return value;
}

const UNITS: Record<string, number> = { ns: 1e-9, us: 1e-6, µs: 1e-6, ms: 1e-3, s: 1 };

/** A simulated time as written in scripts (`20ms`, `150us`, `1.5s`, `0`) in machine cycles. Throws FaultError. */
export function parseSimulatedTime(text: string | number): number {
  if (text === 0 || text === '0') return 0;
  const m = typeof text === 'string' ? /^(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s)$/.exec(text.trim()) : null;
  if (m === null) throw new FaultError(`${quoted(text)} is not a simulated time: write a number with a unit, as 20ms, 150us or 1.5s`);
  return Math.round(Number(m[1]) * UNITS[m[2]!]! * CPU_CYCLES_PER_SECOND);
}

/**
 * A campaign script: a list of `{ "time": "20ms", "fault": "node 1" }` records (in a machine file's
 * `faults:` or a JSON file). Every mistake is one line naming its record; `check` (the machine's fault
 * state's `problems`) names faults the machine does not have.
 */
export function parseFaultScript(value: unknown, check: (fault: Fault) => string[] = () => []): ScheduledFault[] {
  if (!Array.isArray(value)) throw new FaultError('a fault script is a list of { time, fault } records');
  const problems: string[] = [];
  const out: ScheduledFault[] = [];
  value.forEach((record: unknown, i) => {
    const where = `fault ${i + 1}`;
    if (typeof record !== 'object' || record === null || Array.isArray(record)) {
      problems.push(`${where}: a record is { time, fault }`);
      return;
    }
    const r = record as Record<string, unknown>;
    const unknown = Object.keys(r).filter((k) => k !== 'time' && k !== 'fault');
    if (unknown.length > 0) problems.push(`${where}: unknown ${unknown.length === 1 ? 'field' : 'fields'} ${unknown.map((k) => quoted(k).slice(1, -1)).join(', ')} (a record is { time, fault })`);
    try {
      if (typeof r.fault !== 'string') throw new FaultError('fault must be a string such as "node 1"');
      if (typeof r.time !== 'string' && typeof r.time !== 'number') throw new FaultError('time must be a simulated time such as "20ms"');
      const fault = parseFault(r.fault);
      const wrong = check(fault);
      if (wrong.length > 0) throw new FaultError(wrong.join('; '));
      out.push({ time: parseSimulatedTime(r.time), fault });
    } catch (error) {
      if (!(error instanceof FaultError)) throw error;
      problems.push(`${where}: ${error.message}`);
    }
  });
  if (problems.length > 0) throw new FaultError(problems.join('\n'));
  return out;
}

/** The kinds a random campaign draws from. */
export type RandomFaultKind = Fault['kind'];

export interface RandomCampaign {
  seed: number;
  count: number;
  /** The window the faults' times fall in, machine cycles. */
  from: number;
  to: number;
  kinds?: readonly RandomFaultKind[];
}

/**
 * `count` faults at times drawn evenly from [from, to), each of a kind drawn from `kinds` (default node,
 * cpu, link, router and page) on a machine with `layout` and `links`: a function of the seed alone
 * (mulberry32), sorted by time. Pages are drawn from every node's memory.
 */
export function randomFaults(campaign: RandomCampaign, layout: MachineLayout, links: readonly Link[]): ScheduledFault[] {
  const kinds = (campaign.kinds ?? ['node', 'cpu', 'link', 'router', 'page']).filter((k) => k !== 'link' || links.length > 0);
  if (kinds.length === 0) throw new FaultError('a random campaign needs at least one kind of fault the machine has');
  const random = mulberry32(campaign.seed);
  const pick = (n: number): number => Math.floor(random() * n);
  const out: ScheduledFault[] = [];
  for (let i = 0; i < campaign.count; i++) {
    const time = campaign.from + Math.floor(random() * Math.max(1, campaign.to - campaign.from));
    const fault = drawFault(kinds[pick(kinds.length)]!, layout, links, pick);
    out.push({ time, fault });
  }
  return out.sort((x, y) => x.time - y.time || faultName(x.fault).localeCompare(faultName(y.fault)));
}

/**
 * One fault of `kind` drawn with `pick` (an integer below its argument): a node or router, a CPU, a link of
 * `links`, or a page or line anywhere in the machine's memory.
 */
export function drawFault(kind: RandomFaultKind, layout: MachineLayout, links: readonly Link[], pick: (n: number) => number): Fault {
  switch (kind) {
    case 'node':
    case 'router':
      return { kind, node: pick(layout.nodes.length) };
    case 'cpu':
      return { kind, cpu: pick(layout.harts) };
    case 'link': {
      const link = links[pick(links.length)]!;
      return { kind, a: link.a, b: link.b };
    }
    case 'page':
    case 'line': {
      const pages = (layout.ramEnd - layout.nodes[0]!.base) / 4096;
      return { kind, address: layout.nodes[0]!.base + pick(pages) * 4096 + (kind === 'line' ? pick(64) * 64 : 0) };
    }
  }
}

/** A small, fast, seedable generator of uniform numbers in [0, 1) (Tommy Ettinger's mulberry32). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
