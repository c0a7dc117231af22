// `mirrorball guest ...`: building the guest images (being written).
import type { Command } from 'commander';

export function registerGuestCommands(program: Command): void {
  void program;
}
