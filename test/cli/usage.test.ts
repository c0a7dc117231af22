// Bad input to any command of `mirrorball` (an unknown option or command, a missing argument) is one line on
// stderr, naming where --help says more, and exit status 2; --help itself is exit status 0.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { createProgram } from '../../src/cli/program.js';
import { mirrorballEach, type CliResult } from '../helpers/cli-batch.js';

const CLI = fileURLToPath(new URL('../../bin/mirrorball.js', import.meta.url));

function mirrorball(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Every command that runs something (no subcommands of its own), as the words that name it. */
function leafCommands(command: Command, path: string[] = []): string[][] {
  const subs = command.commands.filter((c) => c.name() !== 'help');
  if (subs.length === 0) return [path];
  return subs.flatMap((c) => leafCommands(c, [...path, c.name()]));
}

function assertUsageLine(r: CliResult, pattern: RegExp): void {
  assert.equal(r.status, 2, `exit status; stderr: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line, got:\n${r.stderr}`);
  assert.match(lines[0]!, pattern);
}

describe('mirrorball: bad command lines', () => {
  const commands = leafCommands(createProgram());

  it('knows every command', () => {
    const names = commands.map((c) => c.join(' '));
    for (const expected of ['run', 'up', 'ps', 'stop', 'guest build', 'guest path', 'experiment overhead']) assert.ok(names.includes(expected), expected);
  });

  it('an unknown option to any command: one line naming it and the command\'s --help, exit 2', () => {
    // Every command through main in one process (the CLI's start-up once, not once per command); the tests
    // below run the command line as its own process.
    const results = mirrorballEach(commands.map((path) => [...path, '--bogus']));
    commands.forEach((path, i) => {
      assertUsageLine(results[i]!, new RegExp(`^mirrorball: unknown option '--bogus' \\(see mirrorball ${path.join(' ')} --help\\)$`));
    });
  });

  it('a near miss is suggested on the same line', () => {
    assertUsageLine(mirrorball('run', '--elff', 'x'), /^mirrorball: unknown option '--elff'; did you mean --elf\? \(see mirrorball run --help\)$/);
  });

  it('an unknown command and a missing argument: one line, exit 2', () => {
    const [unknown, unknownGuest, stop, repeat] = mirrorballEach([['bogus'], ['guest', 'bogus'], ['stop'], ['experiment', 'overhead', '--repeat']]);
    assertUsageLine(unknown!, /^mirrorball: unknown command 'bogus' \(see mirrorball --help\)$/);
    assertUsageLine(unknownGuest!, /^mirrorball: unknown command 'bogus' \(see mirrorball guest --help\)$/);
    assertUsageLine(stop!, /^mirrorball: missing required argument 'vm' \(see mirrorball stop --help\)$/);
    assertUsageLine(repeat!, /argument missing \(see mirrorball experiment overhead --help\)$/);
  });

  it('--help is not an error', () => {
    for (const args of [['--help'], ['run', '--help'], ['guest', 'build', '--help']]) {
      const r = mirrorball(...args);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /^Usage: mirrorball/);
    }
  });
});
