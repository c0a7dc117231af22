// `npm run bench -- --only net`: TCP throughput through the user network, Mirrorball's (`run --net user`) against
// QEMU's slirp (`-netdev user`), the same guest on both. Loopback only: the host's servers listen on 127.0.0.1.
//
// Per emulator, one boot; then, `repeat` times, the host fetches a file from the guest's busybox httpd through
// hostfwd with curl (guest → host), and the guest's wget fetches one from a server in this process on the
// host's loopback (host → guest). Each transfer's MiB/s; the table gives the median and range. QEMU's
// restrict=on would cut the guest off from the host as well, so QEMU runs unrestricted; its guest, like ours,
// reaches only 10.0.2.2 (the host's 127.0.0.1).

import { execFile, spawn } from 'node:child_process';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { AgentProtocol } from '../guest/agent-protocol.js';
import type { GuestArtifacts } from '../guest/artifacts.js';
import { BenchError } from './measure.js';
import { formatSpread } from './options.js';
import { freePort } from '../host/free-port.js';

/** What each transfer moves. */
const TRANSFER_MIB = 4;
const APPEND = 'console=ttyS0 mb.agent=1 mb.ip=10.0.2.15/24,10.0.2.2';
const BOOT_TIMEOUT_MS = 15 * 60_000;


function curlSeconds(url: string): Promise<number> {
  return new Promise((done, fail) => execFile('curl', ['-sS', '-o', '/dev/null', '-w', '%{time_total} %{size_download}', url], (error, stdout, stderr) => {
    if (error !== null) { fail(new BenchError(`net: curl ${url}: ${stderr.trim()}`)); return; }
    const [seconds, size] = stdout.trim().split(' ').map(Number);
    if (size !== TRANSFER_MIB * 2 ** 20) { fail(new BenchError(`net: curl got ${size} bytes, not ${TRANSFER_MIB} MiB`)); return; }
    done(seconds);
  }));
}

interface NetRuns {
  /** MiB/s of each transfer, guest → host (curl through hostfwd) and host → guest (guest wget). */
  out: number[];
  in: number[];
}

/** Boots `command args` with the agent on its stdio, and measures the transfers. */
async function transfers(who: string, command: string, args: (hostPort: number) => string[], repeat: number): Promise<NetRuns> {
  const hostPort = await freePort();
  const payload = new Uint8Array(TRANSFER_MIB * 2 ** 20).fill(0x61);
  const server = createHttpServer((_, response) => response.end(payload));
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', () => done()));
  const serverPort = (server.address() as AddressInfo).port;
  const child = spawn(command, args(hostPort), { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  const agent = new AgentProtocol({ send: (bytes) => { child.stdin.write(bytes); } });
  child.stdout.on('data', (chunk: Buffer) => agent.feed(new Uint8Array(chunk)));
  child.stdin.on('error', () => {});
  child.once('exit', (code) => agent.abort(`net: ${who} exited (${code}): ${stderr.trim().split('\n').pop() ?? ''}`));
  const timer = setTimeout(() => child.kill('SIGKILL'), BOOT_TIMEOUT_MS);
  try {
    await agent.whenReady();
    const setup = await agent.exec(`mkdir -p /tmp/www && dd if=/dev/zero bs=1M count=${TRANSFER_MIB} 2>/dev/null > /tmp/www/f && httpd -p 80 -h /tmp/www`);
    if (setup.status !== 0) throw new BenchError(`net: ${who}: httpd did not start: ${setup.output}`);
    const runs: NetRuns = { out: [], in: [] };
    for (let k = 1; k <= repeat; k++) {
      process.stderr.write(`bench: net ${who}, transfer ${k}/${repeat}\n`);
      runs.out.push(TRANSFER_MIB / await curlSeconds(`http://127.0.0.1:${hostPort}/f`));
      // The guest's wget, timed from the host, less a command that does nothing (the agent's own round trip).
      let started = performance.now();
      await agent.exec('true');
      const baseline = performance.now() - started;
      started = performance.now();
      const fetched = await agent.exec(`wget -q -O - http://10.0.2.2:${serverPort}/ | wc -c`);
      const seconds = (performance.now() - started - baseline) / 1000;
      if (fetched.output.trim() !== String(payload.length)) throw new BenchError(`net: ${who}: the guest's wget got ${fetched.output.trim()} bytes`);
      runs.in.push(TRANSFER_MIB / seconds);
    }
    agent.exec('poweroff -f').catch(() => {});
    await new Promise<void>((done) => { if (child.exitCode !== null) done(); else child.once('exit', () => done()); });
    return runs;
  } finally {
    clearTimeout(timer);
    if (child.exitCode === null) child.kill('SIGKILL');
    await new Promise<void>((done) => server.close(() => done()));
  }
}

/** The net bench's table: MiB/s each way, Mirrorball and QEMU. */
export async function netBench(guest: GuestArtifacts, mirrorball: string, qemu: string, qemuFirmware: string, repeat: number): Promise<string> {
  const ours = await transfers('mirrorball', process.execPath, (port) => [mirrorball, 'run', '--kernel', guest.kernel, '--initrd', guest.initramfs,
    '--append', APPEND, '--net', `user,restrict=on,hostfwd=tcp::${port}-:80`], repeat);
  const theirs = await transfers('qemu', qemu, (port) => ['-machine', 'virt', '-smp', '1', '-m', '512M', '-bios', qemuFirmware, '-kernel', guest.kernel,
    '-initrd', guest.initramfs, '-append', APPEND, '-nographic', '-netdev', `user,id=net0,hostfwd=tcp:127.0.0.1:${port}-:80`,
    '-device', 'virtio-net-device,netdev=net0'], repeat);
  return [
    `| ${TRANSFER_MIB} MiB over TCP, 1 hart | mirrorball MiB/s | qemu MiB/s |`,
    '|---|---|---|',
    `| guest → host (curl through hostfwd from busybox httpd) | ${formatSpread(ours.out, 2)} | ${formatSpread(theirs.out, 2)} |`,
    `| host → guest (the guest's wget from a server on 127.0.0.1) | ${formatSpread(ours.in, 2)} | ${formatSpread(theirs.in, 2)} |`,
  ].join('\n');
}
