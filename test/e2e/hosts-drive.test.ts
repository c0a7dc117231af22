// End to end: virtio-blk on a VM spread over two host processes (`run --hosts 2 --drive`, docs/giantvm.md,
// "DMA"). Linux on 2 harts, one per host, mounts a copy of the guest's root file system, writes a file
// from a process on each hart, drops its page cache, reads each file back on the other hart, and
// unmounts; what it read is what it wrote, and the image on the host holds the files whole afterwards.
// The device lives on host 0: host 1's dirty pages go to the disk through the DSM, and what the disk
// reads lands in pages host 1 then fetches. stats.json says the DMA waited for pages of the other host.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { consoleScript } from '../../src/bench/console-script.js';
import { findBuiltGuest } from '../../src/guest/artifacts.js';

const CLI = fileURLToPath(new URL('../../bin/mirrorball.js', import.meta.url));
const guest = findBuiltGuest();
const debugfs = spawnSync('debugfs', ['-V']).status === 0;
const skip = guest === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)'
  : !debugfs ? 'debugfs is not installed (e2fsprogs)' : false;

/** Lines of `seq from to`, as the guest's seq prints them. */
function seq(from: number, to: number): string {
  let out = '';
  for (let i = from; i <= to; i++) out += `${i}\n`;
  return out;
}

const md5 = (data: string | Buffer): string => createHash('md5').update(data).digest('hex');

function imageFile(image: string, path: string): Buffer {
  return execFileSync('debugfs', ['-R', `cat ${path}`, image], { stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 << 20 });
}

test('Linux on 2 harts over 2 host processes writes and reads a virtio-blk disk from both harts, and the image is right; the virtio-rng fills a buffer on host 1', { skip, timeout: 240_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-hosts-drive-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const disk = join(dir, 'disk.ext4');
  copyFileSync(guest!.disk, disk);
  const statsDir = join(dir, 'stats');
  const lines = 20_000;
  const command = 'dmesg -n 1; mount /dev/vda /mnt' +
    ` && taskset -c 1 sh -c 'seq 1 ${lines} > /mnt/h1.txt' && taskset -c 0 sh -c 'seq ${lines + 1} ${2 * lines} > /mnt/h0.txt'` +
    ' && sync && echo 3 > /proc/sys/vm/drop_caches' +
    ' && taskset -c 1 md5sum /mnt/h0.txt /mnt/bin/busybox && taskset -c 0 md5sum /mnt/h1.txt && umount /mnt && echo unmounted' +
    // The rng on host 0 fills a buffer of host 1's hart's process (its DMA writes through the DSM too).
    ' && taskset -c 1 head -c 4096 /dev/hwrng | wc -c';
  const run = await consoleScript(process.execPath, [CLI, 'run', '--smp', '2', '--hosts', '2', '--memory', '256M', '--drive', `file=${disk}`, '--rng', '7', '--stats-dir', statsDir],
    command, 200_000, { poweroff: true });
  t.diagnostic(`${run.seconds.toFixed(1)} s to the end, the command ${run.commandSeconds.toFixed(1)} s`);
  assert.equal(run.status, 0, run.console.slice(-3000));
  const h0 = seq(lines + 1, 2 * lines);
  const h1 = seq(1, lines);
  // What each hart read back (from the disk: the page cache was dropped) is what the other wrote.
  assert.equal(run.output, `${md5(h0)}  /mnt/h0.txt\n${md5(imageFile(guest!.disk, '/bin/busybox'))}  /mnt/bin/busybox\n${md5(h1)}  /mnt/h1.txt\nunmounted\n4096\n`,
    run.console.slice(-3000));
  // And the host's image holds them, in a clean file system.
  assert.equal(imageFile(disk, '/h1.txt').toString(), h1);
  assert.equal(imageFile(disk, '/h0.txt').toString(), h0);
  execFileSync('e2fsck', ['-fn', disk], { stdio: 'ignore' }); // throws if the file system is damaged
  // The device's DMA went through the DSM: pages host 1 wrote were fetched for the disk.
  const stats = JSON.parse(readFileSync(join(statsDir, 'stats.json'), 'utf8')) as Record<string, { value?: number; values?: Record<string, number> }>;
  const dma = stats['dsm.host0.dmaPages']?.values;
  t.diagnostic(`DMA pages asked of the DSM: ${JSON.stringify(dma)}, waits ${stats['dsm.host0.dmaWaits']?.value}, bytes ${JSON.stringify(stats['dsm.host0.dmaBytes']?.values)}`);
  assert.ok(dma !== undefined && dma.read! > 0, JSON.stringify(dma));
  assert.ok(stats['dsm.host0.dmaWaits']!.value! > 0);
});
