// A booted guest saved once and restored for each use, as tests and experiments that boot the same guest
// would: every restore answers commands at once, and none sees what another did. The times are reported
// (test diagnostics), not asserted.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import { GuestSession, type GuestSessionOptions } from '../../src/guest/session.js';

const guest = findBuiltGuest();
const skip = guest === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : false;
const MiB = 2 ** 20;

describe('a booted guest restored from a snapshot', { skip }, () => {
  it('runs commands in each restore, each from the saved state alone', async (t) => {
    const options: GuestSessionOptions = {
      kernel: readFileSync(guest!.kernel),
      initrd: readFileSync(guest!.initramfs),
      config: { harts: 1, nodes: [{ memoryBytes: 256 * MiB, harts: [0] }] },
      holdIdle: true,
      // A restore that went wrong shows as a guest that never answers: fail in two minutes, not ten.
      timeoutMs: 120_000,
    };
    const command = 'cat /tmp/mark 2>/dev/null; echo "answer $((6*7))"';
    let started = performance.now();
    const booted = await GuestSession.boot(options);
    const first = await booted.exec(command);
    const bootMs = performance.now() - started;
    assert.equal(first.status, 0);
    assert.equal(first.output, 'answer 42\n');
    started = performance.now();
    const snapshot = await booted.snapshot();
    const saveMs = performance.now() - started;
    await booted.kill();

    const restoreMs: number[] = [];
    for (const mark of ['one', 'two', 'three']) {
      started = performance.now();
      const session = await GuestSession.boot({ ...options, restore: snapshot });
      try {
        const r = await session.exec(command);
        restoreMs.push(performance.now() - started);
        // The mark the last restore left is not here: each starts from the snapshot.
        assert.equal(r.output, 'answer 42\n');
        assert.equal((await session.exec(`echo ${mark} > /tmp/mark; cat /tmp/mark`)).output, `${mark}\n`);
      } finally {
        await session.kill();
      }
    }
    const best = Math.min(...restoreMs);
    t.diagnostic(`boot + command ${bootMs.toFixed(0)} ms; snapshot ${(snapshot.length / MiB).toFixed(1)} MiB in ${saveMs.toFixed(0)} ms; ` +
      `restore + command ${restoreMs.map((ms) => ms.toFixed(0)).join(', ')} ms (${(bootMs / best).toFixed(1)}x faster)`);
  });
});
