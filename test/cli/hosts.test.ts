// `run --hosts N`, `run --join` and `mirrorball host` as a user meets them (docs/giantvm.md): bare-metal
// programs whose harts run in two host processes give the one-host result with pages moving between
// them; a bad token or another wire version is one line and nothing runs; a host killed mid-run stops the
// VM with a line naming it; no host process is left behind.

import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { buildHartsProgram, buildStress } from '../../src/bench/programs.js';
import { encodeFrame, WIRE_VERSION } from '../../src/dsm/wire.js';
import { requireToolchain } from '../helpers/asm.js';

const CLI = fileURLToPath(new URL('../../bin/mirrorball.js', import.meta.url));
const LONG = process.env.MIRRORBALL_LONG === '1';

interface Result { status: number | null; stdout: string; stderr: string }

function mirrorball(args: string[], env: NodeJS.ProcessEnv = {}): Result {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 180_000, env: { ...process.env, ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The same, without blocking this process's event loop (for peers served from the test). */
function mirrorballAsync(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Result> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += String(d); });
  child.stderr.on('data', (d) => { stderr += String(d); });
  return new Promise((resolve) => child.on('close', (status) => resolve({ status, stdout, stderr })));
}

function assertOneLine(r: Result, status: number, pattern: RegExp): void {
  assert.equal(r.status, status, `exit status; stderr: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line, got:\n${r.stderr}`);
  assert.match(lines[0]!, pattern);
}

/** Processes of this user whose environment holds `mark`: the hosts a run started and left behind. */
function processesMarked(mark: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, 'latin1').includes(mark)) found.push(Number(entry));
    } catch { /* gone, or not ours */ }
  }
  return found;
}

/** A `mirrorball host` listening on a free port, and its address once it said it. */
async function startHost(token: string): Promise<{ child: ChildProcess; address: string; exited: Promise<number | null> }> {
  const child = spawn(process.execPath, [CLI, 'host', '--listen', '127.0.0.1:0'], { env: { ...process.env, MIRRORBALL_HOST_TOKEN: token }, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const line = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve));
  const m = /listening on (\S+)$/.exec(line);
  assert.ok(m, `the host said '${line}'`);
  return { child, address: m[1]!, exited };
}

/** A line of `run --stats` about one host's part of the DSM, as numbers. */
function dsmLine(stderr: string, host: number): Record<string, number> {
  const line = stderr.split('\n').find((l) => l.startsWith(`mirrorball: dsm host=${host} `));
  assert.ok(line, `a dsm line for host ${host} in:\n${stderr}`);
  return Object.fromEntries([...line.matchAll(/([a-z-]+)=(\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
}

test('run --hosts 2: the stress program on harts in two host processes passes, its pages moving between them', (t) => {
  if (!requireToolchain(t)) return;
  const mark = `MB_HOSTS_TEST_${randomBytes(6).toString('hex')}`;
  for (const harts of [2, 3]) {
    const statsDir = join(mkdtempSync(join(tmpdir(), 'mb-hosts-stats-')), 'out');
    const r = mirrorball(['run', '--elf', buildStress(harts, LONG ? 20_000 : 200), '--smp', String(harts), '--hosts', '2', '--stats', '--stats-dir', statsDir], { [mark]: '1' });
    assert.equal(r.status, 0, r.stderr);
    const zero = dsmLine(r.stderr, 0);
    const one = dsmLine(r.stderr, 1);
    // Host 1 began with no page: everything its hart touched came over the wire, and came back.
    assert.ok(one['faults-read']! > 0 && one['faults-write']! > 0, r.stderr);
    assert.ok(zero['bytes-sent']! > 0 && one['bytes-sent']! > 0, r.stderr);
    assert.ok(one.instructions! > 0 && zero.instructions! > 0, r.stderr);
    // The same counters in stats.json, under dsm.* (and in stats.txt beside the machine's).
    const json = JSON.parse(readFileSync(join(statsDir, 'stats.json'), 'utf8')) as Record<string, { value?: number; values?: Record<string, number>; total?: number }>;
    for (const [host, line] of [[0, zero], [1, one]] as const) {
      const p = `dsm.host${host}`;
      assert.deepEqual(json[`${p}.faults`]?.values, { read: line['faults-read'], write: line['faults-write'], upgrade: line['faults-upgrade'] });
      assert.equal(json[`${p}.bytesSent`]?.value, line['bytes-sent']);
      assert.equal(json[`${p}.roundTrips`]?.value, line['rtt-count']);
      assert.equal(json[`${p}.roundTripHistogram`]?.total, line['rtt-count'], 'every round trip in one bucket');
      assert.equal(json[`${p}.roundTripMedian`]?.value, line['rtt-median-us']);
      assert.deepEqual(json[`${p}.pages`]?.values, { invalid: line['pages-invalid'], shared: line['pages-shared'], modified: line['pages-modified'] });
    }
    assert.ok(json['dsm.bounced']!.total! > 0, 'pages bounced, by address');
    assert.match(readFileSync(join(statsDir, 'stats.txt'), 'utf8'), /^dsm\.host1\.faults::write +\d+/m);
  }
  assert.deepEqual(processesMarked(mark), [], 'no host process is left behind');
});

test('run --hosts 3: the stress program passes with a hart on each host, hosts 1 and 2 passing pages through host 0', (t) => {
  if (!requireToolchain(t)) return;
  const mark = `MB_HOSTS_TEST_${randomBytes(6).toString('hex')}`;
  const r = mirrorball(['run', '--elf', buildStress(3, LONG ? 20_000 : 200), '--smp', '3', '--hosts', '3', '--stats'], { [mark]: '1' });
  assert.equal(r.status, 0, r.stderr);
  // Every host reported (the first to close its link after its report does not cut the others off).
  const lines = [0, 1, 2].map((host) => dsmLine(r.stderr, host));
  for (const line of lines) assert.ok(line['faults-write']! > 0 && line['bytes-sent']! > 0 && line.instructions! > 0, r.stderr);
  // Hosts 1 and 2 talked to each other (pages, requests, invalidations) through host 0.
  assert.ok(lines[0]!['passed-on']! > 0, r.stderr);
  assert.deepEqual(processesMarked(mark), [], 'no host process is left behind');
});

test('run --hosts 2: the parallel program gives the result it gives on one host', (t) => {
  if (!requireToolchain(t)) return;
  const program = buildHartsProgram('parallel', 2, 4);
  const one = mirrorball(['run', '--elf', program, '--smp', '2']);
  const two = mirrorball(['run', '--elf', program, '--smp', '2', '--hosts', '2']);
  assert.equal(one.status, 0, one.stderr);
  assert.equal(two.status, one.status, two.stderr);
  assert.equal(two.stdout, one.stdout);
});

test('run --hosts 2 --drive: a virtio-blk driver on host 1\'s hart reads and writes the disk on host 0 through the DSM; its hostile chain is the guest\'s error', (t) => {
  if (!requireToolchain(t)) return;
  const program = buildHartsProgram('virtio', 2, 1);
  const dir = mkdtempSync(join(tmpdir(), 'mb-hosts-virtio-'));
  const image = join(dir, 'disk.img');
  const disk = Buffer.alloc(1 << 20);
  for (let i = 0; i < 512; i++) disk[i] = (i * 7 + 3) & 0xff;
  writeFileSync(image, disk);
  const r = mirrorball(['run', '--elf', program, '--smp', '2', '--hosts', '2', '--drive', `file=${image}`, '--stats']);
  // 0: hart 1 read sector 0's pattern and wrote sector 1, and the chain outside RAM set DEVICE_NEEDS_RESET (9 if not).
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /^mirrorball: virtio-mmio\(2\): needs reset: buffer of 512 bytes at 0x1000 outside RAM$/m);
  const written = readFileSync(image).subarray(512, 1024);
  assert.deepEqual([...written], Array.from({ length: 512 }, (_, i) => (i * 5 + 1) & 0xff), 'sector 1 holds what hart 1 wrote');
  // The rings and buffers were hart 1's pages: the device waited for them.
  const zero = dsmLine(r.stderr, 0);
  assert.ok(zero['dma-read-pages']! > 0 && zero['dma-write-pages']! > 0 && zero['dma-waits']! > 0, r.stderr);
});

test('run --hosts 1 is the plain run: the same instructions and guest time', (t) => {
  if (!requireToolchain(t)) return;
  const program = buildStress(2, 200);
  const counts = (r: Result): string => {
    assert.equal(r.status, 0, r.stderr);
    return /instructions=\d+ guest-seconds=[\d.]+/.exec(r.stderr)![0];
  };
  assert.equal(counts(mirrorball(['run', '--elf', program, '--smp', '2', '--hosts', '1', '--stats'])), counts(mirrorball(['run', '--elf', program, '--smp', '2', '--stats'])));
});

test('--hosts and --join refuse what they cannot run, in one line', () => {
  assertOneLine(mirrorball(['run', '--hosts', '2', '--serial', 'socket=x.sock']), 2, /^mirrorball: --hosts and --join do not work with --serial yet$/);
  assertOneLine(mirrorball(['run', '--hosts', '2', '--web', '0']), 2, /^mirrorball: --hosts and --join do not work with --web yet$/);
  assertOneLine(mirrorball(['run', '--elf', CLI, '--hosts', '2', '--timing']), 2, /--timing is refused across hosts/);
  assertOneLine(mirrorball(['run', '--elf', CLI, '--hosts', '2', '--console', 'socket=x.sock', '--nodes', '2']), 2, /do not work with --console, --nodes yet/);
  assertOneLine(mirrorball(['run', '--elf', CLI, '--hosts', '2', '--join', '127.0.0.1:1']), 2, /give one of them/);
  assertOneLine(mirrorball(['run', '--elf', CLI, '--hosts', '99']), 2, /--hosts/);
  assertOneLine(mirrorball(['run', '--elf', CLI, '--dsm-hold', '5']), 2, /^mirrorball: --dsm-hold is for --hosts above 1 or --join$/);
  assertOneLine(mirrorball(['run', '--elf', CLI, '--hosts', '2', '--dsm-hold', 'soon']), 2, /--dsm-hold must be an integer/);
  assertOneLine(mirrorball(['run', '--elf', CLI, '--hosts', '17']), 2, /--hosts takes at most 16$/);
  assertOneLine(mirrorball(['run', '--elf', CLI, '--join', Array.from({ length: 16 }, (_, i) => `127.0.0.1:${i + 1}`).join(',')]), 2, /--join takes at most 15 hosts$/);
  assertOneLine(mirrorball(['run', '--elf', CLI, '--join', 'nowhere']), 2, /--join: 'nowhere' is not ADDR:PORT/);
  assertOneLine(mirrorball(['host']), 2, /^mirrorball: mirrorball host needs --listen ADDR:PORT$/);
  assertOneLine(mirrorball(['host', '--listen', '127.0.0.1:0'], { MIRRORBALL_HOST_TOKEN: '' }), 2, /^mirrorball: a host needs a shared token: --token-file FILE or MIRRORBALL_HOST_TOKEN$/);
});

test('run --join: a wrong token is refused in one line and nothing runs; the host then serves the right one', async (t) => {
  if (!requireToolchain(t)) return;
  const host = await startHost('the-token');
  try {
    const dir = mkdtempSync(join(tmpdir(), 'mb-hosts-'));
    writeFileSync(join(dir, 'wrong'), 'not-the-token\n');
    writeFileSync(join(dir, 'right'), 'the-token\n');
    const program = buildStress(2, 200);
    const wrong = await mirrorballAsync(['run', '--elf', program, '--smp', '2', '--join', host.address, '--token-file', join(dir, 'wrong')]);
    assertOneLine(wrong, 2, new RegExp(`^mirrorball: host ${host.address.replace(/\./g, '\\.')} refused: bad token$`));
    const right = await mirrorballAsync(['run', '--elf', program, '--smp', '2', '--join', host.address, '--token-file', join(dir, 'right'), '--stats']);
    assert.equal(right.status, 0, right.stderr);
    assert.ok(dsmLine(right.stderr, 1)['faults-read']! > 0);
    assert.equal(await host.exited, 0, 'the host ends with its run');
  } finally {
    host.child.kill();
  }
});

test('run --join: a host that speaks another wire version is one line, and nothing runs', async (t) => {
  if (!requireToolchain(t)) return;
  const fake = createServer((socket) => {
    const frame = encodeFrame({ kind: 'challenge', nonce: new Uint8Array(32) });
    frame[2] = 7;
    socket.on('error', () => {});
    socket.write(frame);
  });
  await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
  const port = (fake.address() as AddressInfo).port;
  try {
    const r = await mirrorballAsync(['run', '--elf', buildStress(2, 200), '--smp', '2', '--join', `127.0.0.1:${port}`], { MIRRORBALL_HOST_TOKEN: 'x' });
    assertOneLine(r, 2, new RegExp(`^mirrorball: host 127\\.0\\.0\\.1:${port} speaks wire version 7, this host speaks ${WIRE_VERSION}$`));
  } finally {
    fake.close();
  }
});

test('a host killed mid-run stops the VM with one line naming it', async (t) => {
  if (!requireToolchain(t)) return;
  const host = await startHost('k');
  const program = buildStress(2, 1_000_000);
  const run = mirrorballAsync(['run', '--elf', program, '--smp', '2', '--join', host.address], { MIRRORBALL_HOST_TOKEN: 'k' });
  // Once the run is under way (the host's harts took pages), the host dies without a word.
  await new Promise((resolve) => setTimeout(resolve, 3000));
  const killed = Date.now();
  host.child.kill('SIGKILL');
  const r = await run;
  t.diagnostic(`the run ended ${Date.now() - killed} ms after the kill`);
  // Which of the three the run sees depends on whether it was reading (closed, reset) or writing (EPIPE) when the host died.
  assertOneLine(r, 1, new RegExp(`^mirrorball: host ${host.address.replace(/\./g, '\\.')} lost: (connection closed|ECONNRESET|EPIPE)$`));
});
