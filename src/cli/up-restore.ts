// `mirrorball up MACHINE-FILE --restore F`: the whole machine a snapshot holds, made again exactly, when the
// machine file describes that machine (its VMs in order, each as the file makes it).

import { resolve } from 'node:path';
import type { LoadedMonitorSnapshot } from '../host/monitor-snapshot.js';
import type { VirtualMachine } from '../monitor/vm.js';
import type { MachineFileSpec, VmFileSpec } from './machine-file.js';

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/**
 * How the machine file's VMs differ from those a whole snapshot saved, in a few words, or undefined when they
 * are the same: the same names in the same order (ended VMs too), and each VM the file makes (not one it
 * restores from a snapshot of its own, which says what it is) with the vCPUs, memory, network card, sharing,
 * drives and rng it was saved with. Kernels and command lines are not compared: a booted VM's are in its memory.
 */
export function vmsDiffer(spec: MachineFileSpec, loaded: LoadedMonitorSnapshot): string | undefined {
  const saved = loaded.saved.vms;
  const names = (list: readonly { name: string }[]): string => list.map((v) => v.name).join(', ');
  if (saved.length !== spec.vms.length || saved.some((v, i) => v.name !== spec.vms[i]!.name)) {
    return `its VMs are ${names(saved)}, the file's ${names(spec.vms)}`;
  }
  for (const [i, v] of saved.entries()) {
    const f = spec.vms[i]!;
    if (f.restore !== undefined) continue;
    const build = loaded.builds.get(v.name)!;
    const differs = (file: string, snapshot: string): string => `vm ${v.name}: ${file} in the file, ${snapshot} in the snapshot`;
    if (f.smp !== v.vcpus) return differs(plural(f.smp, 'vCPU'), plural(v.vcpus, 'vCPU'));
    if (f.memoryBytes !== v.memoryBytes) return differs(`${f.memoryBytes / 2 ** 20} MiB`, `${v.memoryBytes / 2 ** 20} MiB`);
    if (f.net !== v.net) return differs(f.net ? 'a network card' : 'no network card', v.net ? 'one' : 'none');
    if (f.share !== v.sharing) return differs(`share: ${f.share}`, `share: ${v.sharing}`);
    const drive = (d: { file: string; readOnly: boolean; snapshot?: boolean; overlay?: string }): string =>
      // overlay= says snapshot=on too (docs/disks.md), so a file may give both and a snapshot records the overlay.
      `${resolve(d.file)}${d.readOnly ? ',readonly=on' : ''}${d.overlay !== undefined ? `,overlay=${resolve(d.overlay)}` : d.snapshot === true ? ',snapshot=on' : ''}`;
    const fileDrives = f.drives.map(drive).join(' ');
    const savedDrives = build.drives.map(drive).join(' ');
    if (fileDrives !== savedDrives) return differs(`drives ${fileDrives || '(none)'}`, savedDrives || 'none');
    if ((f.rng ?? null) !== build.rngSeed) return differs(f.rng === undefined ? 'no rng' : `rng ${f.rng}`, build.rngSeed === null ? 'none' : `rng ${build.rngSeed}`);
  }
  return undefined;
}

/** The first VM the file confines to a cell (`cell: N`) that the restored machine placed elsewhere, in a few words. */
export function cellsDiffer(specs: readonly VmFileSpec[], vms: readonly VirtualMachine[]): string | undefined {
  for (const [i, f] of specs.entries()) {
    const vm = vms[i]!;
    if (f.cell !== undefined && !(vm.placedCells.length === 1 && vm.placedCells[0] === f.cell)) {
      return `vm ${vm.name}: cell ${f.cell} in the file, placed in cell${vm.placedCells.length === 1 ? '' : 's'} ${vm.placedCells.join(', ')} in the snapshot`;
    }
  }
  return undefined;
}
