// Every command of `mirrorball`, registered from its own file: the program `--help` and the tests see.

import type { Command } from 'commander';
import { emptyProgram } from './main.js';
import { registerConsoleCommand } from './console.js';
import { registerExperimentCommands } from './experiment.js';
import { registerGuestCommands } from './guest.js';
import { registerRunCommand } from './run.js';
import { registerUpCommand } from './up.js';
import { registerVmCommands } from './vm-commands.js';
import { registerFaultCommand, registerRepairCommand } from './fault.js';
import { registerWebCommands } from './web.js';
import { registerHostCommand } from './host.js';

/** Every command of `mirrorball`, parsing only. */
export function createProgram(): Command {
  const program = emptyProgram();
  registerRunCommand(program);
  registerHostCommand(program);
  registerUpCommand(program);
  registerVmCommands(program);
  registerFaultCommand(program);
  registerRepairCommand(program);
  registerConsoleCommand(program);
  registerGuestCommands(program);
  registerExperimentCommands(program);
  registerWebCommands(program);
  return program;
}
