// The `mirrorball` command line: one subcommand per job, each registered from its own file (program.ts).

import { Command, CommanderError } from 'commander';
import { UsageError } from './options.js';
import { ControlClientError } from './vm-client.js';

/** A program with no command yet, set up as main wants it: errors are thrown (exitOverride) and printed by main. */
export function emptyProgram(): Command {
  const program = new Command();
  program
    .name('mirrorball')
    .description('A virtual machine monitor for an emulated RISC-V ccNUMA machine')
    .exitOverride()
    // main prints commander's errors as one line; help and --version still go out as they are.
    .configureOutput({ outputError: () => {} });
  return program;
}

/** QEMU spells some options with one dash and several letters; accept those spellings too. */
const QEMU_SPELLINGS: Record<string, string> = { '-smp': '--smp', '-kernel': '--kernel', '-initrd': '--initrd', '-append': '--append', '-bios': '--bios', '-drive': '--drive' };

/** Bad input to the command line (an unknown option or command, a missing argument): exit status 2, as QEMU's. */
const USAGE_STATUS = 2;

/**
 * The program for `args` (the words after `node mirrorball`): `mirrorball run` loads only its own command's
 * modules, about half of the project, so a run reaches its first instruction sooner; anything else (other
 * commands, `--help`, a mistake) loads every command, as `createProgram` (program.ts) has them.
 */
async function programFor(args: readonly string[]): Promise<Command> {
  if (args[0] !== 'run') return (await import('./program.js')).createProgram();
  const program = emptyProgram();
  (await import('./run.js')).registerRunCommand(program);
  return program;
}

/** `mirrorball run`, from the words of the command line that name commands: where `--help` says more. */
export function commandPath(program: Command, args: readonly string[]): string {
  const names = [program.name()];
  let command = program;
  for (const arg of args) {
    if (arg.startsWith('-')) break;
    const sub = command.commands.find((c) => c.name() === arg || c.aliases().includes(arg));
    if (sub === undefined) break;
    names.push(sub.name());
    command = sub;
  }
  return names.join(' ');
}

/** commander's error ("error: unknown option '--x'\n(Did you mean --y?)") as one line, with where to look. */
export function usageLine(message: string, path: string): string {
  const text = message
    .replace(/^error: /, '')
    .replace(/\n\(Did you mean (.*)\?\)/, '; did you mean $1?')
    .replace(/\s*\n\s*/g, ' ');
  return `mirrorball: ${text} (see ${path} --help)`;
}

export async function main(argv: string[]): Promise<void> {
  const args = argv.map((a, i) => (i >= 2 ? QEMU_SPELLINGS[a] ?? a : a));
  const program = await programFor(args.slice(2));
  try {
    await program.parseAsync(args);
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and --version end with 0; help shown for a missing command was already printed in full.
      if (error.exitCode === 0) return;
      if (error.code !== 'commander.help') process.stderr.write(`${usageLine(error.message, commandPath(program, args.slice(2)))}\n`);
      process.exitCode = USAGE_STATUS;
      return;
    }
    if (error instanceof UsageError) {
      process.stderr.write(`mirrorball: ${error.message}\n`);
      process.exitCode = USAGE_STATUS;
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
