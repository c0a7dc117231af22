// Booted guests shared by the end-to-end tests that boot the same guest on the same machine: booted once per
// configuration and kept as a snapshot file keyed by the guest's content and the configuration
// (src/guest/boot-cache.ts); every use is a restore of it, so every test starts from the same state, booted
// now or earlier.

import { cachedBoot, contentHash } from '../../src/guest/boot-cache.js';
import { MonitorSession, type MonitorSessionOptions } from '../../src/guest/monitor-session.js';
import { GuestSession, type GuestSessionOptions } from '../../src/guest/session.js';

/**
 * A session of the guest `options` describe, at its agent's first idle moment after boot: restored from the
 * cached boot of this configuration, which is booted (once) when there is none. Options that change the
 * machine outside the key (`configure`, `drives`, `firmware`, `pace`) boot instead: use GuestSession.boot.
 */
export async function bootedGuest(options: GuestSessionOptions): Promise<GuestSession> {
  if (options.configure !== undefined || (options.drives?.length ?? 0) > 0 || options.firmware !== undefined || options.pace === true) {
    throw new Error('bootedGuest: a machine with extra devices, drives, firmware or pacing is booted with GuestSession.boot');
  }
  const key = {
    kind: 'guest', kernel: contentHash(options.kernel), initrd: options.initrd === undefined ? null : contentHash(options.initrd),
    config: options.config, append: options.append ?? null, console: options.console ?? 'uart',
  };
  const { bytes } = await cachedBoot(key, async () => {
    const booted = await GuestSession.boot({ ...options, holdIdle: true });
    try {
      return await booted.snapshot();
    } finally {
      await booted.kill();
    }
  });
  return GuestSession.boot({ ...options, restore: bytes });
}

/**
 * The same for VMs under the monitor: every VM at the first moment after boot when all idle. The monitor's
 * timing configuration, policy and swap store are not in the key: a machine booted in fast mode, and with no
 * paging (its boot must fit in memory: a snapshot refuses pages in the store), gets them on restore.
 */
export async function bootedMonitor(options: MonitorSessionOptions): Promise<MonitorSession> {
  if (options.pace === true) throw new Error('bootedMonitor: a paced session is booted with MonitorSession.boot');
  const { timing: _timing, policy: _policy, swap: _swap, ...monitor } = options.monitor ?? {};
  const key = {
    kind: 'monitor', kernel: contentHash(options.kernel), initrd: options.initrd === undefined ? null : contentHash(options.initrd),
    config: options.config, vms: options.vms, monitor,
  };
  const { bytes } = await cachedBoot(key, async () => {
    // With paging the boot has its swap store too (a VM may be larger than the machine), but nothing in it.
    const booted = await MonitorSession.boot({ ...options, monitor: _swap === undefined ? monitor : { ...monitor, swap: _swap }, holdIdle: true });
    try {
      return await booted.snapshot();
    } finally {
      await booted.kill();
    }
  });
  return MonitorSession.boot({ ...options, restore: bytes });
}
