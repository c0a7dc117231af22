// The disk bench over hosts (`npm run bench -- --only hosts-disk`, docs/giantvm.md "Measured"): Linux on 2
// harts with a copy of the guest's root image as /dev/vda; at the prompt a process on hart 1 (host 1's,
// over hosts) reads 32 MiB of the disk and writes 16 MiB with fsync. The plain run and `run --hosts 2`
// alternate; host seconds of the command, and what the devices' DMA asked of the DSM (stats.json, dsm.*).

import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { GuestArtifacts } from '../guest/artifacts.js';
import { consoleScript } from './console-script.js';
import { BenchError } from './measure.js';
import { formatSpread } from './options.js';

const COMMAND = 'dmesg -n 1; taskset -c 1 dd if=/dev/vda of=/dev/null bs=64k count=512 2>/dev/null && ' +
  'taskset -c 1 dd if=/dev/zero of=/dev/vda bs=64k count=256 conv=fsync 2>/dev/null && echo disk-done';

interface DiskRun {
  boot: number;
  command: number;
  /** Over hosts: pages the DMA asked for (read, write), and the times device work waited. */
  dma?: { read: number; write: number; waits: number };
}

type Stats = Record<string, { value?: number; values?: Record<string, number> }>;

async function diskOnce(cli: string, guest: GuestArtifacts, hosts: number): Promise<DiskRun> {
  const dir = mkdtempSync(join(tmpdir(), 'mirrorball-bench-disk-'));
  try {
    const disk = join(dir, 'disk.img');
    copyFileSync(guest.disk, disk);
    const statsDir = join(dir, 'stats');
    const args = [cli, 'run', '--smp', '2', '--memory', '256M', '--drive', `file=${disk}`, '--stats-dir', statsDir, ...(hosts > 1 ? ['--hosts', String(hosts)] : [])];
    const r = await consoleScript(process.execPath, args, COMMAND, 600_000, { poweroff: true });
    if (!r.output.includes('disk-done') || r.status !== 0) throw new BenchError(`hosts-disk: the run did not finish the command (status ${r.status}): ${r.console.slice(-1000)}`);
    const stats = JSON.parse(readFileSync(join(statsDir, 'stats.json'), 'utf8')) as Stats;
    const pages = stats['dsm.host0.dmaPages']?.values;
    return {
      boot: r.seconds - r.commandSeconds, command: r.commandSeconds,
      dma: pages === undefined ? undefined : { read: pages.read ?? 0, write: pages.write ?? 0, waits: stats['dsm.host0.dmaWaits']?.value ?? 0 },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function hostsDiskBench(cli: string, guest: GuestArtifacts, repeat: number): Promise<string> {
  const plain: DiskRun[] = [];
  const spread: DiskRun[] = [];
  for (let k = 1; k <= repeat; k++) {
    // Alternate which goes first, so that a trend in the host's load falls on both.
    for (const hosts of k % 2 === 1 ? [1, 2] : [2, 1]) {
      process.stderr.write(`bench: hosts-disk, run ${k}/${repeat}, ${hosts === 1 ? 'plain run' : '--hosts 2'}\n`);
      (hosts === 1 ? plain : spread).push(await diskOnce(cli, guest, hosts));
    }
  }
  const dma = (f: (d: NonNullable<DiskRun['dma']>) => number): string => formatSpread(spread.map((r) => f(r.dma!)), 0);
  return [
    `hosts-disk: Linux on --smp 2 (256 MiB) with the guest's root image as /dev/vda; a process on hart 1 reads 32 MiB and writes 16 MiB (fsync); ` +
      `host seconds of the command (${repeat} run${repeat === 1 ? '' : 's'} each, alternating)`,
    `  plain run:  ${formatSpread(plain.map((r) => r.command), 1)} s (boot ${formatSpread(plain.map((r) => r.boot), 1)} s)`,
    `  --hosts 2:  ${formatSpread(spread.map((r) => r.command), 1)} s (boot ${formatSpread(spread.map((r) => r.boot), 1)} s)`,
    `  slow-down, run by run: ${formatSpread(spread.map((r, i) => r.command / plain[i]!.command), 2)}x`,
    `  DMA over hosts: pages asked to read ${dma((d) => d.read)}, to write ${dma((d) => d.write)}; device work waited ${dma((d) => d.waits)} times`,
  ].join('\n');
}
