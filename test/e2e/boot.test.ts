// End to end: the built guest (kernel + busybox initramfs) boots on the emulated machine and answers
// commands through its console agent, on 1 and 4 harts, with our SBI and with OpenSBI, from a disk,
// and reproducibly.

import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execFileSync } from 'node:child_process';
import { CLINT, RAM_BASE, type MachineConfig } from '../../src/board/address-map.js';
import { PAGE_ALLOWED, PAGE_DENIED } from '../../src/cpu/pmp.js';
import { PRIV_S } from '../../src/isa/opcodes.js';
import { ACCESS_READ, ACCESS_WRITE } from '../../src/memory/bus.js';
import { LinkedNics, VirtioNet, type NetBackend } from '../../src/devices/virtio/net.js';
import { findBuiltGuest, type GuestArtifacts } from '../../src/guest/artifacts.js';
import { GuestSession, type GuestSessionOptions } from '../../src/guest/session.js';

const OPENSBI_FW_JUMP = '/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.bin';
const MiB = 1024 * 1024;

const guest = findBuiltGuest();
const skip = guest === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : false;

function topology(harts: number, nodes = 1, memoryMiB = 256): MachineConfig {
  return {
    harts,
    nodes: Array.from({ length: nodes }, (_, n) => ({
      memoryBytes: (memoryMiB / nodes) * MiB,
      harts: Array.from({ length: harts }, (_, h) => h).filter((h) => h % nodes === n),
    })),
  };
}

function options(g: GuestArtifacts, extra: Partial<GuestSessionOptions> = {}): GuestSessionOptions {
  return {
    kernel: readFileSync(g.kernel),
    initrd: readFileSync(g.initramfs),
    config: topology(1),
    ...extra,
  };
}

/** Boots, runs `body`, and always stops the machine. */
async function withGuest<T>(opts: GuestSessionOptions, body: (s: GuestSession) => Promise<T>): Promise<T> {
  const session = await GuestSession.boot(opts);
  try {
    return await body(session);
  } catch (error) {
    // The console tail is what explains a failure inside the guest.
    throw new Error(`${(error as Error).message}\n--- console ---\n${session.tail()}`);
  } finally {
    await session.kill();
  }
}

describe('the guest boots and runs commands', { skip }, () => {
  it('on 1 hart with the built-in SBI: a command runs and its output and status come back', async () => {
    await withGuest(options(guest!), async (s) => {
      const r = await s.exec('echo "hart count $(grep -c ^processor /proc/cpuinfo)"; uname -sm; exit 7');
      assert.equal(r.status, 7);
      assert.match(r.output, /^hart count 1$/m);
      assert.match(r.output, /^Linux riscv64$/m);
      const fp = await s.exec('awk "BEGIN { printf \\"%.6f\\", sqrt(2) }"');
      assert.equal(fp.output, '1.414214', 'floating point in user space');
      // clock_gettime goes through the vDSO, which reads the time CSR in U-mode (scounteren set by Linux).
      const clock = await s.exec('date +%s');
      assert.equal(clock.status, 0, clock.output);
      assert.match(clock.output, /^\d+\n$/);
    });
  });

  it('on 4 harts over 2 NUMA nodes: all harts online, NUMA visible, work runs on every hart', async () => {
    await withGuest(options(guest!, { config: topology(4, 2, 512) }), async (s) => {
      const online = await s.exec('cat /sys/devices/system/cpu/online; ls -d /sys/devices/system/node/node*');
      assert.equal(online.status, 0, online.output);
      assert.match(online.output, /^0-3$/m);
      assert.match(online.output, /node0\n.*node1$/m);
      // Four busy loops, then the per-CPU user time in /proc/stat shows each hart did work.
      const busy = await s.exec('for i in 1 2 3 4; do (i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done) & done; wait; ' +
        "awk '/^cpu[0-9]/ { print $1, $2 }' /proc/stat");
      const users = [...busy.output.matchAll(/^cpu(\d) (\d+)$/gm)].map((m) => Number(m[2]));
      assert.equal(users.length, 4, busy.output);
      for (const [cpu, ticks] of users.entries()) assert.ok(ticks > 0, `cpu${cpu} ran no user code:\n${busy.output}`);
    });
  });

  it('over a virtio console (hvc1) instead of the UART', async () => {
    await withGuest(options(guest!, { console: 'virtio' }), async (s) => {
      const r = await s.exec('cat /sys/class/tty/console/active; grep virtio /proc/interrupts');
      assert.equal(r.status, 0, r.output);
      assert.match(r.output, /^hvc1$/m);
      // The agent's frames crossed the virtio queues: the device's interrupt has fired.
      const interrupts = /^\s*\d+:\s+(\d+)\s.*virtio0$/m.exec(r.output);
      assert.ok(interrupts !== null && Number(interrupts[1]) > 0, r.output);
    });
  });

  it('with OpenSBI fw_jump as M-mode firmware', { skip: existsSync(OPENSBI_FW_JUMP) ? false : `${OPENSBI_FW_JUMP} missing (apt-get install opensbi)` }, async () => {
    await withGuest(options(guest!, { firmware: readFileSync(OPENSBI_FW_JUMP), config: topology(2) }), async (s) => {
      const r = await s.exec('cat /sys/devices/system/cpu/online; dmesg | grep -o "SBI implementation ID=0x[0-9a-f]*"');
      assert.equal(r.status, 0, r.output);
      assert.match(r.output, /^0-1$/m);
      // OpenSBI's implementation ID is 1 (SBI spec, table of implementation IDs); ours is not.
      assert.match(r.output, /SBI implementation ID=0x1$/m);
      // OpenSBI set PMP up and Linux ran under it: S-mode may not touch the firmware at the start of RAM
      // nor the CLINT, and may touch the kernel's memory.
      for (const h of s.machine.harts) {
        assert.equal(h.pmp.page(RAM_BASE, PRIV_S, ACCESS_WRITE), PAGE_DENIED, 'the firmware protected');
        assert.equal(h.pmp.page(CLINT.base, PRIV_S, ACCESS_READ), PAGE_DENIED, 'the CLINT protected');
        assert.equal(h.pmp.page(RAM_BASE + 2 * MiB, PRIV_S, ACCESS_WRITE), PAGE_ALLOWED, 'the kernel\'s memory allowed');
      }
    });
  });
});

describe('the guest root disk', { skip }, () => {
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'mirrorball-e2e-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('boots from root=/dev/vda and what the guest synced is in the image after power-off', async () => {
    const disk = join(dir, 'root.ext4');
    copyFileSync(guest!.disk, disk);
    const session = await GuestSession.boot(options(guest!, { drives: [{ file: disk, readOnly: false }], append: 'root=/dev/vda' }));
    try {
      const r = await session.exec('grep " / " /proc/mounts; echo written-by-the-guest > /root/e2e.txt; sync');
      assert.equal(r.status, 0, r.output);
      assert.match(r.output, /^\/dev\/vda \/ ext4 rw/m);
    } finally {
      await session.poweroff();
    }
    const text = execFileSync('debugfs', ['-R', 'cat /root/e2e.txt', disk], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
    assert.equal(text, 'written-by-the-guest\n');
    execFileSync('e2fsck', ['-fn', disk], { stdio: 'ignore' }); // throws if the file system is damaged
  });
});

describe('two machines on one virtual cable', { skip }, () => {
  it('ping each other over virtio-net (LinkedNics)', async () => {
    const cable = new LinkedNics();
    const boot = (backend: NetBackend, mac: string, ip: string): Promise<GuestSession> =>
      GuestSession.boot(options(guest!, { append: `mb.ip=${ip}/24`, pace: true, configure: (m) => { m.attachVirtio(new VirtioNet(backend, { mac })); } }));
    const [a, b] = await Promise.all([boot(cable.a, '52:54:00:00:00:01', '10.0.2.1'), boot(cable.b, '52:54:00:00:00:02', '10.0.2.2')]);
    try {
      const r = await a.exec('ping -c 3 -W 5 10.0.2.2');
      assert.equal(r.status, 0, r.output);
      assert.match(r.output, /3 packets transmitted, 3 packets received/);
      const back = await b.exec('ping -c 1 -W 5 10.0.2.1');
      assert.equal(back.status, 0, back.output);
    } finally {
      await Promise.all([a.kill(), b.kill()]);
    }
  });
});

describe('determinism', { skip }, () => {
  it('two boots print the same console, byte for byte, and reach READY at the same instruction', async () => {
    const runs: Array<{ console: string; instructions: number | undefined }> = [];
    for (let i = 0; i < 2; i++) {
      await withGuest(options(guest!), async (s) => { runs.push({ console: s.bootConsole, instructions: s.bootInstructions }); });
    }
    assert.ok(runs[0].console.includes('Run /init'), 'the console holds the boot');
    assert.ok(runs[0].instructions !== undefined && runs[0].instructions > 0);
    assert.equal(runs[1].console, runs[0].console);
    assert.equal(runs[1].instructions, runs[0].instructions);
  });
});
