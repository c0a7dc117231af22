// End to end, issue 27 item 4: the thin-OS example (examples/thin-os) as a VM of `mirrorball up` (`elf:`), beside
// two Linux VMs, prints the same checksum as a bare `run --elf --sbi`. The Linux VMs are restored from a boot kept
// in the boot cache (a VM entry's `restore:`), so the test boots Linux once per emulator version, and while the
// thin OS computes they run a shell loop through their console agents.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { AgentProtocol } from '../../src/guest/agent-protocol.js';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import { cachedSession } from '../../src/guest/boot-cache.js';
import { MonitorSession } from '../../src/guest/monitor-session.js';
import { decodeMonitorSnapshot } from '../../src/host/monitor-snapshot.js';
import { CLI } from '../helpers/run-process.js';
import { buildThinOs, thinOsChecksum, thinOsHarts, thinOsSkip } from '../helpers/thin-os.js';

const MiB = 2 ** 20;
const guest = findBuiltGuest();
const skip = guest === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : thinOsSkip();
const directory = mkdtempSync(join(tmpdir(), 'mirrorball-up-thin-os-'));
after(() => rmSync(directory, { recursive: true, force: true }));

const LINUX_VMS = ['linux-a', 'linux-b'];
/** A shell loop that keeps a Linux VM busy for a while, then says which OS it is. */
const BUSY = 'i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; echo $i; uname -s';

/** Two Linux VMs booted to their agents' first idle moment, as a whole-machine snapshot (cached). */
async function linuxSnapshot(): Promise<Uint8Array> {
  const kernel = readFileSync(guest!.kernel);
  const initrd = readFileSync(guest!.initramfs);
  const options = {
    kernel, initrd, holdIdle: true, timeoutMs: 600_000,
    config: { harts: 2, nodes: [{ memoryBytes: 512 * MiB, harts: [0, 1] }] },
    vms: LINUX_VMS.map((name) => ({ name, vcpus: 1, memoryBytes: 64 * MiB })),
  };
  const key = { kind: 'up-thin-os', guest: guest!.hash, config: options.config, vms: options.vms };
  const { bytes } = await cachedSession(key, () => MonitorSession.boot(options));
  return bytes;
}

/** Attaches to VM `name`'s console socket as its agent's host, going on from the snapshot's command ids. */
function attach(runDir: string, name: string, nextCommandId: number): { agent: AgentProtocol; socket: Socket } {
  const socket = createConnection(join(runDir, `${name}.console.sock`));
  const agent = new AgentProtocol({ send: (bytes) => { socket.write(bytes); } });
  socket.on('data', (chunk: Buffer) => agent.feed(new Uint8Array(chunk)));
  agent.continueFrom(nextCommandId);
  agent.readyAgain();
  return { agent, socket };
}

describe('up: the thin OS beside two Linux VMs', { skip, timeout: 900_000 }, () => {
  it('prints the bare run\'s checksum on all its vCPUs while both Linux VMs run commands, and powers off alone', async () => {
    const elf = buildThinOs();
    const bare = spawnSync(process.execPath, [CLI, 'run', '--elf', elf, '--sbi', '--smp', '1'], { encoding: 'utf8', timeout: 300_000 });
    assert.equal(bare.status, 0, bare.stderr);
    const expected = thinOsChecksum(bare.stdout);
    assert.ok(expected !== undefined, bare.stdout);

    const snapshot = join(directory, 'linux.snap');
    const bytes = await linuxSnapshot();
    writeFileSync(snapshot, bytes);
    const agents = (decodeMonitorSnapshot(bytes).extra as { agents: { name: string; nextCommandId: number }[] }).agents;
    const file = join(directory, 'machine.yaml');
    const runDir = join(directory, 'run');
    writeFileSync(file, [
      'machine:', '  smp: 2', '  memory: 512M',
      'vms:',
      '  - name: thin', '    smp: 3', '    memory: 32M', `    elf: ${elf}`,
      ...LINUX_VMS.flatMap((name) => [`  - name: ${name}`, `    restore: ${snapshot}`]),
    ].join('\n'));
    const up = spawn(process.execPath, [CLI, 'up', file, '--run-dir', runDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    up.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
    up.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    const exited = new Promise<number | null>((done) => up.once('exit', (code) => done(code)));
    const attached: Socket[] = [];
    try {
      for (const name of LINUX_VMS) {
        const socketPath = join(runDir, `${name}.console.sock`);
        for (let i = 0; i < 1200 && !existsSync(socketPath) && up.exitCode === null; i++) await new Promise((done) => setTimeout(done, 50));
      }
      const linux = LINUX_VMS.map((name) => attach(runDir, name, agents.find((a) => a.name === name)!.nextCommandId));
      attached.push(...linux.map((l) => l.socket));
      void exited.then((code) => { for (const l of linux) l.agent.abort(`up exited (${code}): ${stderr}`); });
      // All three VMs are runnable from the first round: the Linux VMs work (a shell loop each) while the thin OS computes.
      const results = await Promise.all(linux.map((l) => l.agent.exec(BUSY)));
      for (const r of results) {
        assert.equal(r.status, 0, r.output);
        assert.equal(r.output, '3000\nLinux\n');
      }
      for (let i = 0; i < 6000 && !stdout.includes('vm thin: powered off') && up.exitCode === null; i++) await new Promise((done) => setTimeout(done, 50));
      assert.match(stdout, /^vm thin: powered off \(code 0\)$/m, 'the thin OS powered off by itself, with status 0');
      assert.ok(!/vm linux-[ab]: (powered off|crashed|stopped)/.test(stdout), 'the Linux VMs run on after it');
      const log = readFileSync(join(runDir, 'thin.console.log'), 'latin1');
      assert.equal(thinOsHarts(log), 3, log);
      for (let k = 0; k < 3; k++) assert.match(log, new RegExp(`thin-os: hart ${k} computed \\d+ rows`));
      assert.equal(thinOsChecksum(log), expected, log);
      // The Linux VMs still answer after the thin OS has gone.
      const after = await linux[0]!.agent.exec('echo after-thin');
      assert.equal(after.output, 'after-thin\n');
      for (const l of linux) l.agent.exec('poweroff -f').catch(() => {});
      assert.equal(await exited, 0, stderr);
    } catch (error) {
      throw new Error(`${(error as Error).message}\n--- up stdout ---\n${stdout}\n--- up stderr ---\n${stderr}`);
    } finally {
      for (const s of attached) s.destroy();
      if (up.exitCode === null) up.kill('SIGKILL');
    }
  });
});
