// The problems a machine file's text is refused for (machine-file.ts), for tests of the parser.

import { MachineFileError, parseMachineFile } from '../../src/cli/machine-file.js';

/** The problems reported for `text`, or [] if it parses. */
export function machineFileProblems(text: string): string[] {
  try {
    parseMachineFile(text, 'm.yaml');
    return [];
  } catch (error) {
    if (error instanceof MachineFileError) return error.problems;
    throw error;
  }
}
