// The boot cache without a guest: a session's snapshot kept under its key, made once, the session always ended.

import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cachedSession } from './boot-cache.js';

/** A stand-in session whose snapshot is `bytes`, counting what was asked of it. */
function fakeSession(bytes: number[], log: string[]) {
  return {
    snapshot: async () => { log.push('snapshot'); return Uint8Array.from(bytes); },
    kill: async () => { log.push('kill'); },
  };
}

describe('cachedSession', () => {
  const saved = { cache: process.env.MIRRORBALL_CACHE, off: process.env.MIRRORBALL_BOOT_CACHE };
  const dir = mkdtempSync(join(tmpdir(), 'mb-boot-cache-'));
  before(() => {
    process.env.MIRRORBALL_CACHE = dir;
    delete process.env.MIRRORBALL_BOOT_CACHE;
  });
  after(() => {
    if (saved.cache === undefined) delete process.env.MIRRORBALL_CACHE;
    else process.env.MIRRORBALL_CACHE = saved.cache;
    if (saved.off !== undefined) process.env.MIRRORBALL_BOOT_CACHE = saved.off;
    rmSync(dir, { recursive: true, force: true });
  });

  it('makes the session, runs the step, keeps its snapshot and ends it; the next use reads the file and makes nothing', async () => {
    const log: string[] = [];
    const key = { test: 'cachedSession', n: 1 };
    const first = await cachedSession(key, async () => { log.push('make'); return fakeSession([1, 2, 3], log); }, async () => { log.push('step'); });
    assert.deepEqual(log, ['make', 'step', 'snapshot', 'kill']);
    assert.equal(first.cached, false);
    assert.deepEqual([...first.bytes], [1, 2, 3]);
    assert.equal(readdirSync(join(dir, 'snapshots')).length, 1);

    const again = await cachedSession(key, async () => { log.push('make again'); return fakeSession([9], log); });
    assert.equal(again.cached, true);
    assert.deepEqual([...again.bytes], [1, 2, 3]);
    assert.deepEqual(log, ['make', 'step', 'snapshot', 'kill'], 'a cached step made a session');

    // Another key (another step, another machine) is another snapshot.
    const other = await cachedSession({ ...key, step: 'warm' }, async () => fakeSession([4], log));
    assert.equal(other.cached, false);
    assert.deepEqual([...other.bytes], [4]);
  });

  it('ends the session and keeps nothing when the step fails', async () => {
    const log: string[] = [];
    const key = { test: 'cachedSession', n: 2 };
    await assert.rejects(cachedSession(key, async () => fakeSession([5], log), async () => { throw new Error('warm-up failed'); }), /warm-up failed/);
    assert.deepEqual(log, ['kill']);
    const next = await cachedSession(key, async () => fakeSession([6], log));
    assert.equal(next.cached, false);
    assert.deepEqual([...next.bytes], [6]);
  });

  it('makes the session every time with MIRRORBALL_BOOT_CACHE=0', async () => {
    process.env.MIRRORBALL_BOOT_CACHE = '0';
    try {
      const log: string[] = [];
      const key = { test: 'cachedSession', n: 1 };
      const r = await cachedSession(key, async () => fakeSession([7], log));
      assert.equal(r.cached, false);
      assert.deepEqual([...r.bytes], [7]);
      assert.deepEqual(log, ['snapshot', 'kill']);
    } finally {
      delete process.env.MIRRORBALL_BOOT_CACHE;
    }
  });
});
