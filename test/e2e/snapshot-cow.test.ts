// End to end: Linux with its root on a snapshot=on disk over the built guest's rootfs.ext4 writes files, is
// saved, and each restore finds on the disk what the guest wrote before the save (read back from the disk with
// the page cache dropped), continues writing, and never sees what another restore wrote.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import { GuestSession, type GuestSessionOptions } from '../../src/guest/session.js';

const guest = findBuiltGuest();
const skip = guest === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : false;
const MiB = 2 ** 20;
const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

describe('a guest whose root is a snapshot=on disk, saved and restored', { skip }, () => {
  it('keeps what the guest wrote to the disk before the save, in every restore and in none after', { timeout: 10 * 60_000 }, async () => {
    const image = guest!.disk;
    const before = sha256(readFileSync(image));
    const options: GuestSessionOptions = {
      kernel: readFileSync(guest!.kernel),
      config: { harts: 1, nodes: [{ memoryBytes: 256 * MiB, harts: [0] }] },
      drives: [{ file: image, readOnly: false, snapshot: true }],
      append: 'root=/dev/vda rw',
      holdIdle: true,
      timeoutMs: 180_000,
    };
    const booted = await GuestSession.boot(options);
    let snapshot: Uint8Array;
    try {
      // Written and synced, so that it is on the disk (its clusters), not only in the guest's page cache.
      const w = await booted.exec('head -c 100000 /dev/urandom > /root/saved.bin && sha256sum /root/saved.bin && sync');
      assert.equal(w.status, 0, w.output);
      snapshot = await booted.snapshot();
      const expected = w.output.split(' ')[0]!;
      for (const mark of ['one', 'two']) {
        const session = await GuestSession.boot({ ...options, restore: snapshot });
        try {
          // Dropping the page cache makes the guest read the file back from the restored disk.
          const r = await session.exec(`echo 3 > /proc/sys/vm/drop_caches; sha256sum /root/saved.bin; ls /root; echo ${mark} > /root/${mark}.txt && sync && echo 3 > /proc/sys/vm/drop_caches && cat /root/${mark}.txt`);
          assert.equal(r.status, 0, r.output);
          assert.match(r.output, new RegExp(`^${expected} `, 'm'), r.output);
          // The restore before this one wrote one.txt: not here.
          assert.doesNotMatch(r.output, /one\.txt/);
          assert.match(r.output, new RegExp(`${mark}\\n$`));
        } finally {
          await session.kill();
        }
      }
    } finally {
      await booted.kill();
    }
    assert.equal(sha256(readFileSync(image)), before, 'the base image is never written');
  });
});
