// The workloads' reference checks (guest/workloads/checks.txt, checksums in the guest's reference.txt), run in a guest.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { GuestArtifacts } from '../../src/guest/artifacts.js';

/** Where the build put the reference checksums in the guest (src/guest/images.ts). */
const GUEST_REFERENCE = '/usr/share/mirrorball/reference.txt';

/** The commands of reference.txt: the build's copy on the host, the same file as the guest's. */
export function referenceCommands(guest: GuestArtifacts): string[] {
  return readFileSync(`${guest.workloads}/reference.txt`, 'utf8').split('\n')
    .filter((l) => l !== '' && !l.startsWith('#')).map((l) => l.split('\t')[0]!);
}

/** The checksum the build host computed for `command`. */
export function referenceChecksum(guest: GuestArtifacts, command: string): string {
  const line = readFileSync(`${guest.workloads}/reference.txt`, 'utf8').split('\n').find((l) => l.startsWith(`${command}\t`));
  assert.ok(line !== undefined, `no reference for ${command}`);
  return line.split('\t')[1]!.trim();
}

/**
 * A shell command that runs the reference checks whose command matches `pattern` (grep -E) and prints
 * `ok CMD` or `BAD CMD got WANT` for each, against the checksums the build computed on the host.
 */
export function checksScript(pattern: string): string {
  return `grep -v '^#' ${GUEST_REFERENCE} | grep -E '${pattern}' | while IFS='\t' read -r cmd want; do ` +
    'got=$($cmd | sed -n "s/.*checksum=\\([0-9a-f]*\\).*/\\1/p"); ' +
    'if [ "$got" = "$want" ]; then echo "ok $cmd"; else echo "BAD $cmd $got $want"; fi; done';
}

/** Exactly `count` checks passed and none failed. */
export function assertChecks(output: string, count: number): void {
  const oks = output.split('\n').filter((l) => l.startsWith('ok '));
  assert.equal(oks.length, count, output);
  assert.doesNotMatch(output, /^BAD /m, output);
}

/**
 * checksScript for a command typed on a serial console, where a tab would ask the shell to complete a
 * name: the separator is made by printf instead.
 */
export function typedChecksScript(pattern: string): string {
  return checksScript(pattern).replace(`IFS='\t'`, `IFS="$(printf '\\t')"`);
}
