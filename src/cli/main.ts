// The `mirrorball` command line: one subcommand per job, each registered from its own file.

import { Command, CommanderError } from 'commander';
import { registerConsoleCommand } from './console.js';
import { registerExperimentCommands } from './experiment.js';
import { registerGuestCommands } from './guest.js';
import { UsageError } from './options.js';
import { registerRunCommand } from './run.js';
import { registerUpCommand } from './up.js';
import { ControlClientError } from './vm-client.js';
import { registerVmCommands } from './vm-commands.js';

/** QEMU spells some options with one dash and several letters; accept those spellings too. */
const QEMU_SPELLINGS: Record<string, string> = { '-smp': '--smp', '-kernel': '--kernel', '-initrd': '--initrd', '-append': '--append', '-bios': '--bios', '-drive': '--drive' };

export async function main(argv: string[]): Promise<void> {
  const program = new Command();
  program
    .name('mirrorball')
    .description('A virtual machine monitor for an emulated RISC-V ccNUMA machine')
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)');
  registerRunCommand(program);
  registerUpCommand(program);
  registerVmCommands(program);
  registerConsoleCommand(program);
  registerGuestCommands(program);
  registerExperimentCommands(program);
  const args = argv.map((a, i) => (i >= 2 ? QEMU_SPELLINGS[a] ?? a : a));
  try {
    await program.parseAsync(args);
  } catch (error) {
    if (error instanceof CommanderError) {
      process.exitCode = error.exitCode;
      return;
    }
    if (error instanceof UsageError) {
      process.stderr.write(`mirrorball: ${error.message}\n`);
      process.exitCode = 2;
      return;
    }
    if (error instanceof ControlClientError) {
      // Talking to a running monitor failed (none there, an unknown VM): the command did not happen.
      process.stderr.write(`mirrorball: ${error.message}\n`);
      process.exitCode = 1;
      return;
    }
    if (process.env.MIRRORBALL_DEBUG) throw error;
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`mirrorball: internal error: ${message} (set MIRRORBALL_DEBUG=1 for details)\n`);
    process.exitCode = 70;
  }
}
