// `mirrorball fault node N | cpu N | link A-B | router N | page ADDR | line ADDR`: a hardware fault injected into a running
// `mirrorball up`; `mirrorball repair`: every failed part replaced.

import type { Command } from 'commander';
import { parseFault } from '../board/fault-script.js';
import { FaultError } from '../board/faults.js';
import { UsageError } from './options.js';
import { controlOptions, withControl, type ControlFlags } from './vm-client.js';

export function registerFaultCommand(program: Command): void {
  controlOptions(program
    .command('fault')
    .argument('<kind>', 'node, cpu, link, router, page or line')
    .argument('<what>', 'a node or CPU number, a link as A-B, or a machine address (0x80200000)')
    .option('--at <time>', 'at this simulated time (20ms, 150us, 1.5s) instead of at once')
    .summary('inject a hardware fault into a running `mirrorball up`')
    .description('Inject a hardware fault into the machine of a running `mirrorball up` (docs/faults.md): a node fails (its CPUs ' +
      'stop and its memory is gone), a CPU stops, a link or a node\'s router fails (the interconnect may partition: the side ' +
      'without node 0 stops), or a page or line of machine memory is poisoned. The monitor ends exactly the VMs that depended on it.'))
    .action(async (kind: string, what: string, flags: ControlFlags & { at?: string }) => {
      try {
        parseFault(`${kind} ${what}`);
      } catch (error) {
        if (error instanceof FaultError) throw new UsageError(error.message);
        throw error;
      }
      const reply = await withControl(flags, async (c) =>
        (await c.execute('inject-fault', { fault: `${kind} ${what}`, ...(flags.at === undefined ? {} : { time: flags.at }) })) as { fault: string; time: number });
      process.stdout.write(`mirrorball: ${reply.fault} injected for cycle ${reply.time}\n`);
    });
}

export function registerRepairCommand(program: Command): void {
  controlOptions(program
    .command('repair')
    .summary('replace every failed part of a running `mirrorball up`\'s machine')
    .description('Replace every failed part of the machine of a running `mirrorball up` (docs/faults.md, "Repair"): failed nodes ' +
      '(with new memory, all zeros), stopped CPUs, failed links and routers work again. The monitor takes them back at the next ' +
      'round boundary; a cell that had failed rejoins through the other cells\' agreement. VMs that ended stay ended; start new ' +
      'ones. Poison in memory that was not replaced stays.'))
    .action(async (flags: ControlFlags) => {
      const reply = await withControl(flags, async (c) => (await c.execute('repair-hardware', {})) as { parts: number });
      process.stdout.write(reply.parts === 0 ? 'mirrorball: nothing had failed\n' : `mirrorball: ${reply.parts} part${reply.parts === 1 ? '' : 's'} repaired\n`);
    });
}
