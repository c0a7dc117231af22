// End to end: Linux boots with its root file system on a copy-on-write disk (snapshot=on) over the built
// guest's rootfs.ext4, with no initramfs; runs pmake from the disk and writes to it; the image is unchanged.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import { SOURCES_DIR } from '../../src/guest/images.js';
import { recipeDir } from '../../src/guest/recipe.js';
import { GuestSession } from '../../src/guest/session.js';
import { referenceChecksum } from '../helpers/reference-checks.js';

const MiB = 1024 * 1024;
const guest = findBuiltGuest();
const skip = guest === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : false;
const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');
/** The reference check of pmake (guest/workloads/checks.txt), here run with its work tree on the disk. */
const PMAKE = 'pmake -j 2 -n 8 -l 100';

describe('root on a copy-on-write disk', { skip }, () => {
  it('boots with root=/dev/vda on snapshot=on over the guest image, runs pmake from it, and the image is unchanged', { timeout: 15 * 60_000 }, async () => {
    const image = guest!.disk;
    const before = sha256(readFileSync(image));
    // Two VMs at once over the one image: each sees its own writes only.
    const boot = (): Promise<GuestSession> => GuestSession.boot({
      kernel: readFileSync(guest!.kernel),
      // No initramfs: the kernel mounts the disk as / itself and runs /sbin/init from it.
      config: { harts: 2, nodes: [{ memoryBytes: 256 * MiB, harts: [0, 1] }] },
      drives: [{ file: image, readOnly: false, snapshot: true }],
      append: 'root=/dev/vda rw',
    });
    const [a, b] = [await boot(), await boot()];
    try {
      // The kernel names the root it mounted /dev/root: its device numbers say it is vda.
      const root = await a.exec('grep " / " /proc/mounts; [ "$(mountpoint -d /)" = "$(cat /sys/block/vda/dev)" ] && echo "root is vda"; ' +
        'stat -f -c "block %S" /; [ -e /etc/mirrorball-initramfs ] || echo "not the initramfs"');
      assert.equal(root.status, 0, root.output);
      assert.match(root.output, /^\/dev\/root \/ ext4 rw/m);
      assert.match(root.output, /^root is vda$/m);
      assert.match(root.output, /^block 4096$/m, 'the root file system has 4 KiB blocks');
      assert.match(root.output, /^not the initramfs$/m);

      // pmake's sources are on the disk as the recipe has them.
      const source = await a.exec(`sha256sum /${SOURCES_DIR}/pmake.c`);
      assert.equal(source.output.split(' ')[0], sha256(readFileSync(`${recipeDir()}workloads/pmake.c`)), source.output);

      // pmake from the disk, its work tree kept on the disk (-d /root -k): the reference checksum.
      const pmake = await a.exec(`${PMAKE} -d /root -k && ls /root/pmake.*/f0000.c && sync`);
      assert.equal(pmake.status, 0, pmake.output);
      assert.match(pmake.output, new RegExp(`checksum=${referenceChecksum(guest!, PMAKE)}\\b`));

      // What a writes is read back from the disk itself once the page cache is dropped; b never sees it.
      const written = await a.exec('echo from-a > /root/a.txt && sync && echo 3 > /proc/sys/vm/drop_caches && cat /root/a.txt');
      assert.equal(written.output, 'from-a\n');
      const other = await b.exec('ls /root; cat /root/a.txt 2>&1; echo from-b > /root/b.txt && sync && echo 3 > /proc/sys/vm/drop_caches && cat /root/b.txt');
      assert.doesNotMatch(other.output, /pmake\.|from-a/, other.output);
      assert.match(other.output, /from-b\n$/);
    } finally {
      await Promise.all([a.poweroff(), b.poweroff()]);
    }
    assert.equal(sha256(readFileSync(image)), before, 'the base image was not written');
  });
});
