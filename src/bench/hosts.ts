// The hosts bench (`npm run bench -- --only hosts`, docs/giantvm.md "Measured"): Linux on 2 harts booted to
// its shell prompt by the plain `run` and by `run --hosts 2`, alternating; for the run over hosts, what the
// DSM did (faults by kind, bytes, the fault round trip, the relayed SBI calls) and the pages that bounced
// most, with the part of memory they lie in (the guest's /proc/iomem: the kernel's code, data or bss, or
// RAM the kernel allocated: per-CPU areas, slab, stacks, page tables).

import type { GuestArtifacts } from '../guest/artifacts.js';
import type { HostReport } from '../host/dsm-host.js';
import { quantile } from '../host/hosts-runner.js';
import { runSpanned } from '../experiments/giant.js';
import { formatSpread } from './options.js';

/** Guest-physical base of RAM (the virt board's). */
const RAM_BASE = 0x8000_0000;
/** Pages of the top list. */
const TOP_PAGES = 10;

interface BootRun {
  /** Host seconds from the spawn to the shell's prompt. */
  bootSeconds: number;
  /** Guest instructions of the whole run (the boot, one command, the power-off). */
  instructions: number;
  iomem: string;
  reports: HostReport[];
}

/** Boots, waits for the prompt, prints the kernel's place in /proc/iomem and powers off (leaving the shell). */
async function bootOnce(guest: GuestArtifacts, hosts: number): Promise<BootRun> {
  const r = await runSpanned(guest, 2, hosts, 'grep -i -e kernel /proc/iomem');
  return { bootSeconds: r.bootSeconds, instructions: r.instructions, iomem: r.output, reports: r.reports };
}

/** The kernel's sections from /proc/iomem lines ("80201000-804bf871 : Kernel code"), as physical ranges. */
function kernelSections(iomem: string): { name: string; start: number; end: number }[] {
  return [...iomem.matchAll(/^\s*([0-9a-f]+)-([0-9a-f]+) : Kernel (code|rodata|data|bss)$/gm)]
    .map((m) => ({ name: `kernel ${m[3]}`, start: parseInt(m[1]!, 16), end: parseInt(m[2]!, 16) }));
}

/** What guest-physical page `page` (from RAM's base) holds, as far as /proc/iomem tells. */
function whatPage(page: number, sections: readonly { name: string; start: number; end: number }[]): string {
  const start = RAM_BASE + page * 4096;
  const hit = sections.filter((s) => s.start <= start + 4095 && start <= s.end).map((s) => s.name);
  if (hit.length > 0) return hit.join(' + ');
  // Memblock allocates top-down: the end of RAM holds what the kernel set up first (per-CPU areas among it).
  return sections.length > 0 && start > sections[sections.length - 1]!.end ? 'RAM the kernel allocated (per-CPU, slab, stacks, page tables)' : 'RAM below the kernel';
}

export async function hostsBench(guest: GuestArtifacts, repeat: number): Promise<string> {
  const plain: BootRun[] = [];
  const spread: BootRun[] = [];
  for (let k = 1; k <= repeat; k++) {
    process.stderr.write(`bench: hosts, run ${k}/${repeat}\n`);
    // Alternate which goes first, so that a trend in the host's load falls on both.
    const order = k % 2 === 1 ? [1, 2] : [2, 1];
    for (const hosts of order) {
      const r = await bootOnce(guest, hosts);
      (hosts === 1 ? plain : spread).push(r);
      process.stderr.write(`bench: hosts: ${hosts === 1 ? 'plain run' : '--hosts 2'} to the prompt in ${r.bootSeconds.toFixed(1)} s\n`);
    }
  }
  const sections = kernelSections(spread[0]!.iomem);
  const perHost = (host: number, f: (r: HostReport) => number): string =>
    formatSpread(spread.map((run) => f(run.reports.find((r) => r.host === host)!)), 0);
  const rtt = (q: number) => (r: HostReport): number => quantile([...r.roundTripsUs].sort((a, b) => a - b), q);
  const bounced = new Map<number, number>();
  for (const run of spread) for (const r of run.reports) for (const [page, n] of r.bounces) bounced.set(page, (bounced.get(page) ?? 0) + n);
  const top = [...bounced.entries()].sort((a, b) => b[1] - a[1]).slice(0, TOP_PAGES);
  const lines = [
    `hosts: Linux on --smp 2 (256 MiB, the built guest's initramfs) to its shell prompt, host seconds from the spawn (${repeat} run${repeat === 1 ? '' : 's'} each, alternating)`,
    `  plain run:  ${formatSpread(plain.map((r) => r.bootSeconds), 1)} s`,
    `  --hosts 2:  ${formatSpread(spread.map((r) => r.bootSeconds), 1)} s`,
    `  slow-down, run by run: ${formatSpread(spread.map((r, i) => r.bootSeconds / plain[i]!.bootSeconds), 2)}x`,
    `  guest instructions (boot and power-off): plain ${formatSpread(plain.map((r) => r.instructions / 1e6), 1)} M, --hosts 2 ${formatSpread(spread.map((r) => r.instructions / 1e6), 1)} M`,
  ];
  for (const host of [0, 1]) {
    lines.push(`  host ${host}: faults read ${perHost(host, (r) => r.readFaults)}, write ${perHost(host, (r) => r.writeFaults)}, upgrade ${perHost(host, (r) => r.upgradeFaults)}; ` +
      `MB sent ${perHost(host, (r) => r.bytesSent / 1e6)}; fault round trip median ${perHost(host, rtt(0.5))} us, p99 ${perHost(host, rtt(0.99))} us; ` +
      `signals sent ${perHost(host, (r) => r.relay?.signalsSent ?? 0)}, fences sent ${perHost(host, (r) => r.relay?.fencesSent ?? 0)}` +
      (host === 0 ? `, interrupt lines sent ${perHost(host, (r) => r.linesSent ?? 0)}` : ''));
  }
  lines.push(`  most-bounced pages (ownership moves, summed over the runs; page: guest-physical address, what holds it):`);
  for (const [page, n] of top) lines.push(`    0x${(RAM_BASE + page * 4096).toString(16)}: ${n} (${(n / repeat).toFixed(0)} a run), ${whatPage(page, sections)}`);
  return lines.join('\n');
}
