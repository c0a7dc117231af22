// Several `mirrorball` command lines run one after the other in one child process, each through the command
// line's own `main` (what bin/mirrorball.js runs) with its output and exit status captured: for tests that
// check many short commands (bad options, --help), which would otherwise pay the CLI's start-up (loading
// every command's modules, most of a second) once per command. Uses the compiled dist/, as bin/ does.

import { spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { CLI } from './run-process.js';

export interface CliResult { status: number | null; stdout: string; stderr: string }

const MAIN = new URL('../dist/cli/main.js', pathToFileURL(CLI)).href;

/**
 * The child: for each command line, a fresh `main` run with stdout and stderr captured and process.exitCode
 * (what the process would exit with) read and reset; the results go out as JSON once every command ran.
 * A command that calls process.exit itself ends the child, which the caller reports.
 */
const CHILD = `
import { main } from ${JSON.stringify(MAIN)};
const cases = JSON.parse(process.env.MIRRORBALL_CLI_BATCH);
const out = process.stdout.write.bind(process.stdout);
const results = [];
for (const args of cases) {
  const r = { status: 0, stdout: '', stderr: '' };
  process.stdout.write = (chunk) => { r.stdout += String(chunk); return true; };
  process.stderr.write = (chunk) => { r.stderr += String(chunk); return true; };
  process.exitCode = undefined;
  try {
    await main([process.execPath, 'mirrorball', ...args]);
  } catch (error) {
    r.stderr += 'threw: ' + (error && error.stack || String(error));
    process.exitCode = 'threw';
  }
  r.status = process.exitCode ?? 0;
  results.push(r);
}
process.exitCode = 0;
out(JSON.stringify(results));
`;

/** Runs each of `commands` (the words after `mirrorball`) through main in one process, in order. */
export function mirrorballEach(commands: readonly string[][], env: NodeJS.ProcessEnv = {}): CliResult[] {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', CHILD], {
    encoding: 'utf8', timeout: 120_000, maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, ...env, MIRRORBALL_CLI_BATCH: JSON.stringify(commands) },
  });
  if (r.status !== 0) throw new Error(`the batch of ${commands.length} commands ended with ${r.status ?? r.signal}: ${r.stderr}\n${r.stdout.slice(-2000)}`);
  const results = JSON.parse(r.stdout) as CliResult[];
  if (results.length !== commands.length) throw new Error(`${results.length} results for ${commands.length} commands`);
  return results;
}
