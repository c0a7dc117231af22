// The built-in SBI across two host processes (docs/giantvm.md, "Forwarded CPUs"): an S-mode program whose
// hart 1 runs on host 1 is started by hart 0 (HSM), gets its IPI, runs code hart 0 patched only after the
// remote FENCE.I reached its translated blocks, fences and is fenced 300 times each way at once, and gets
// its SBI timer; hart 0 prints OK and powers off.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { assembleElf, requireToolchain } from '../helpers/asm.js';
import { SBI_PROGRAM } from '../helpers/sbi-programs.js';

const CLI = fileURLToPath(new URL('../../bin/mirrorball.js', import.meta.url));

/** The fields of `run --stats`'s dsm line of host `host`, as numbers. */
function dsmFields(stderr: string, host: number): Record<string, number> {
  const line = stderr.split('\n').find((l) => l.startsWith(`mirrorball: dsm host=${host} `));
  assert.ok(line, `a dsm line for host ${host} in:\n${stderr}`);
  return Object.fromEntries([...line.matchAll(/([a-z-]+)=(\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
}

// A lost start, IPI, fence ack or timer leaves a hart waiting for good: the timeout turns that into a failure.
test('the built-in SBI on 2 hosts: HSM start, an IPI, a remote FENCE.I reaching the other host\'s blocks, fences both ways at once, a timer, reset', { timeout: 150_000 }, (t) => {
  if (!requireToolchain(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'mb-hosts-sbi-'));
  const elf = join(dir, 'sbi.elf');
  writeFileSync(elf, assembleElf(SBI_PROGRAM));
  const r = spawnSync(process.execPath, [CLI, 'run', '--elf', elf, '--sbi', '--smp', '2', '--memory', '16M', '--hosts', '2', '--stats'],
    { encoding: 'utf8', timeout: 140_000 });
  assert.equal(r.status, 0, `exit status; stderr:\n${r.stderr}`);
  assert.equal(r.stdout, 'OK');
  const zero = dsmFields(r.stderr, 0);
  const one = dsmFields(r.stderr, 1);
  // Host 0 sent the start and the IPI, and its 301 fences (some merged); host 1 served them and sent its own.
  assert.ok(zero['signals-sent']! >= 2, `host 0 signals: ${zero['signals-sent']}`);
  assert.ok(zero['fences-sent']! >= 1 && one['fences-served']! === zero['fences-sent'], `fences ${zero['fences-sent']} sent, ${one['fences-served']} served`);
  assert.ok(one['fences-sent']! >= 1 && zero['fences-served']! === one['fences-sent'], `fences ${one['fences-sent']} sent, ${zero['fences-served']} served`);
  // Hart 1's start reached host 0's copy of its HSM state (hart 0 polls it before it goes on).
  assert.ok(one['hsm-sent']! >= 1);
});
