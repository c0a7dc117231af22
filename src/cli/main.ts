// The `mirrorball` command line: one subcommand per job, each registered from its own file.

import { Command, CommanderError } from 'commander';
import { registerGuestCommands } from './guest.js';

export async function main(argv: string[]): Promise<void> {
  const program = new Command();
  program
    .name('mirrorball')
    .description('A virtual machine monitor for an emulated RISC-V ccNUMA machine')
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(text) });
  registerGuestCommands(program);
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) process.exit(error.exitCode);
    throw error;
  }
}
