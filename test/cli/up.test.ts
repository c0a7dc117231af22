// `mirrorball up` as a user meets it: machine-file mistakes, the control socket's monitor commands, the
// console sockets, `ps`/`stats`/`stop`/`console`, `--detach`; first with tiny hand-made kernels (no guest
// needed), then with two VMs of the built guest.

import assert from 'node:assert/strict';
import { DEFAULT_POLICY } from '../../src/monitor/numa-policy.js';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import { makeElf } from '../helpers/elf-file.js';
import { PROGRAMS, tinyKernel } from '../helpers/tiny-kernels.js';
import { QmpTestClient, type Message } from '../helpers/qmp-test-client.js';
import { CLI } from '../helpers/run-process.js';
import { mirrorballEach } from '../helpers/cli-batch.js';

// The compiled command line (dist/, built by `npm test` first), as the other CLI tests run it: under tsx every
// one of this file's many processes transpiled the sources again, more than doubling its start-up.
const MiB = 1024 * 1024;

let dir: string;

function argv(args: string[]): string[] {
  return [CLI, ...args];
}

interface Result { status: number | null; stdout: string; stderr: string }

function mirrorball(args: string[], options: { input?: string; env?: NodeJS.ProcessEnv } = {}): Result {
  const r = spawnSync(process.execPath, argv(args), {
    encoding: 'utf8', timeout: 120_000, input: options.input ?? '', env: { ...process.env, MIRRORBALL_RUN_DIR: '', ...options.env },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A command run in the background: its output so far and its end. */
class Running {
  stdout = '';
  stderr = '';
  readonly done: Promise<number | null>;

  constructor(readonly child: ChildProcess) {
    child.stdout!.setEncoding('utf8').on('data', (t: string) => { this.stdout += t; });
    child.stderr!.setEncoding('utf8').on('data', (t: string) => { this.stderr += t; });
    this.done = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  }

  static start(args: string[]): Running {
    return new Running(spawn(process.execPath, argv(args), { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, MIRRORBALL_RUN_DIR: '' } }));
  }

  /** Kills it if it still runs (after a failed assertion). */
  stop(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

/** Waits until `condition` holds, polling; fails naming `what` (and what `detail` says then). */
async function until(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 60_000, detail = (): string => ''): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail(`waited ${timeoutMs / 1000} s for ${what}${detail() === '' ? '' : `\n${detail()}`}`);
    await sleep(50);
  }
}

/** A QMP client of the Unix socket, reading one JSON object per line. */
class Client extends QmpTestClient {
  private buffer = '';

  constructor(readonly socket: Socket) {
    super();
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      this.buffer += text;
      for (let i = this.buffer.indexOf('\n'); i >= 0; i = this.buffer.indexOf('\n')) {
        this.messages.push(JSON.parse(this.buffer.slice(0, i)) as Message);
        this.buffer = this.buffer.slice(i + 1);
      }
    });
    socket.on('close', () => { this.closed = true; });
    socket.on('error', () => {});
  }

  static async connect(path: string, up?: Running): Promise<Client> {
    let socket: Socket | undefined;
    await until(`the control socket ${path}`, async () => {
      if (up !== undefined && up.child.exitCode !== null) assert.fail(`mirrorball up exited with ${up.child.exitCode}: ${up.stderr}`);
      if (!existsSync(path)) return false;
      const s = createConnection(path);
      const ok = await new Promise<boolean>((resolve) => { s.once('connect', () => resolve(true)); s.once('error', () => resolve(false)); });
      if (ok) socket = s;
      return ok;
    }, 120_000);
    const client = new Client(socket!);
    assert.deepEqual(await client.next(), { QMP: { version: { mirrorball: '0.1.0' }, capabilities: [] } });
    return client;
  }

  send(line: string): void {
    this.socket.write(line);
  }

  protected sendMessage(message: object): void {
    this.send(`${JSON.stringify(message)}\n`);
  }
}

/** A raw console connection: everything received so far. */
class Console {
  text = '';
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (t: string) => { this.text += t; });
    socket.on('close', () => { this.closed = true; });
    socket.on('error', () => {});
  }

  static async connect(path: string): Promise<Console> {
    const socket = createConnection(path);
    await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
    return new Console(socket);
  }

  async expect(pattern: RegExp, timeoutMs = 60_000): Promise<void> {
    await until(`${pattern} on the console`, () => pattern.test(this.text), timeoutMs, () => `console so far:\n${this.text.slice(-2000)}`);
  }
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'mb-up-'));
  for (const [name, program] of Object.entries(PROGRAMS)) writeFileSync(join(dir, `${name}.Image`), tinyKernel(program));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('mirrorball up: mistakes', () => {
  it('prints one line per mistake in the machine file and exits 2, starting nothing', () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'machine:\n  colour: red\nvms:\n  - name: a\n    memory: lots\n  - name: a\n    smp: 0\n');
    const runDir = join(dir, 'bad-run');
    const r = mirrorball(['up', file, '--run-dir', runDir]);
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stdout, '');
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 4, r.stderr);
    assert.match(lines[0]!, /bad\.yaml:2:3: machine: unknown key 'colour'/);
    assert.match(lines[1]!, /bad\.yaml:5:13: vms\[0\]\.memory: 'lots' is not a size/);
    assert.match(lines[2]!, /bad\.yaml:6:11: vms\[1\]\.name: 'a' is already the name of vms\[0\]/);
    assert.match(lines[3]!, /bad\.yaml:7:10: vms\[1\]\.smp must be an integer from 1 to 32/);
    assert.ok(!existsSync(runDir), 'no run directory was made');
  });

  it('refuses a missing file and a kernel that is not one, in one line each', () => {
    let r = mirrorball(['up', join(dir, 'nowhere.yaml')]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^mirrorball: cannot read machine file '.*nowhere\.yaml': no such file\n$/);

    const junk = join(dir, 'junk.yaml');
    writeFileSync(join(dir, 'junk.Image'), Buffer.alloc(4096, 0x41));
    writeFileSync(junk, 'vms:\n  - name: junk\n    memory: 32M\n    kernel: junk.Image\n');
    r = mirrorball(['up', junk, '--run-dir', join(dir, 'junk-run')]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^mirrorball: vm junk: .*not a RISC-V Linux Image.*\n$/);
  });

  it('refuses an elf: that is not an ELF, or whose segments are outside the VM\'s RAM, in one line', () => {
    const notElf = join(dir, 'not-elf.yaml');
    writeFileSync(join(dir, 'notes.txt'), 'not a program\n');
    writeFileSync(notElf, 'vms:\n  - name: thin\n    memory: 32M\n    elf: notes.txt\n');
    let r = mirrorball(['up', notElf, '--run-dir', join(dir, 'not-elf-run')]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^mirrorball: vm thin: ELF program '.*notes\.txt': not an ELF file \(no \\x7fELF magic\)\n$/);
    // An ELF at 0x80200000 of 32 MiB in memory reaches past a 16 MiB VM's RAM.
    const big = join(dir, 'big.yaml');
    writeFileSync(join(dir, 'big.elf'), makeElf([{ address: 0x8020_0000, data: Uint8Array.of(0x6f, 0, 0, 0), memorySize: 32 * MiB }]));
    writeFileSync(big, 'vms:\n  - name: big\n    memory: 16M\n    elf: big.elf\n');
    r = mirrorball(['up', big, '--run-dir', join(dir, 'big-run')]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^mirrorball: vm big: ELF program '.*big\.elf': segment 0 \(0x80200000, 33554432 bytes\) is outside RAM \(nothing at 0x81000000\)\n$/);
  });

  it('without a monitor, ps, stats, stop and console say to start one, in one line, exit 1', () => {
    const runDir = join(dir, 'nobody');
    const commands = [['ps'], ['stats', 'web'], ['stop', 'web'], ['console', 'web'], ['down']];
    // One process runs each command's main in turn (the CLI's start-up once); the other tests spawn each.
    const results = mirrorballEach(commands.map((args) => [...args, '--run-dir', runDir]), { MIRRORBALL_RUN_DIR: '' });
    for (const [i, args] of commands.entries()) {
      const r = results[i]!;
      assert.equal(r.status, 1, `${args[0]}: ${r.stderr}`);
      assert.equal(r.stderr, `mirrorball: no monitor is listening on '${join(runDir, 'control.sock')}': start one with \`mirrorball up machine.yaml\` (or pass --control or --run-dir)\n`);
    }
  });

  it('explains each command in --help', () => {
    const words: Record<string, RegExp> = {
      up: /machine file.*--run-dir.*--control.*--detach/s,
      ps: /List the VMs/,
      stop: /Stop one VM/,
      stats: /guest user and kernel cycles.*--json/s,
      console: /Ctrl-A d detaches/,
      down: /End a running `mirrorball up`/,
    };
    const results = mirrorballEach(Object.keys(words).map((command) => [command, '--help']), { MIRRORBALL_RUN_DIR: '' });
    for (const [i, [command, pattern]] of Object.entries(words).entries()) {
      const r = results[i]!;
      assert.equal(r.status, 0);
      assert.match(r.stdout.replace(/\s+/g, ' '), pattern, command);
    }
  });
});

describe('mirrorball up with tiny kernels', () => {
  const machineFile = (name: string, vms: string[], machineLines = ''): string => {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(file, `machine:\n  topology: uma\n  smp: 2\n  memory: 256M\n${machineLines}vms:\n${vms.map((v) => `  - name: ${v}\n    memory: 32M\n    kernel: ${v.replace(/[0-9]+$/, '')}.Image\n`).join('')}`);
    return file;
  };

  it('answers the monitor commands, survives garbage, reports VMs that end, and exits when none is left', async () => {
    const runDir = join(dir, 'tiny-run');
    const up = Running.start(['up', machineFile('tiny', ['echo', 'poweroff', 'idle']), '--run-dir', runDir]);
    const control = join(runDir, 'control.sock');
    let client: Client | undefined;
    try {
      client = await Client.connect(control, up);
      // Once the control socket answers, the console sockets are there to attach to (poweroff's may be gone already).
      for (const v of ['echo', 'idle']) assert.ok(existsSync(join(runDir, `${v}.console.sock`)), `${v}'s console socket when the control socket answers`);
      assert.equal((await client.execute('query-vms')).error !== undefined, true, 'nothing before qmp_capabilities');
      await client.ok('qmp_capabilities');
      const commands = (await client.ok<{ name: string }[]>('query-commands')).map((c) => c.name);
      for (const c of ['query-vms', 'vm-stop', 'query-vm-stats', 'query-monitor', 'set-mode', 'stats-dump', 'quit', 'query-commands']) assert.ok(commands.includes(c), c);

      const vms = await client.ok<Message[]>('query-vms');
      assert.deepEqual(vms.map((v) => [v.name, v.state, v.vcpus, v.memoryBytes]), [['echo', 'running', 1, 32 * MiB], ['poweroff', 'running', 1, 32 * MiB], ['idle', 'running', 1, 32 * MiB]]);
      assert.equal(vms[0]!.console, join(runDir, 'echo.console.sock'));
      type NodeReport = { id: number; cpus: number[]; memoryBytes: number; pagesInUse: number; pagesReserved: number; pagesMonitor: number; pagesFree: number };
      const monitor = await client.ok<{ cpus: number; nodes: NodeReport[]; memoryBytes: number; memoryFreeBytes: number; vms: { running: number } }>('query-monitor');
      assert.equal(monitor.cpus, 2);
      assert.deepEqual(monitor.nodes.map((n) => [n.id, n.cpus, n.memoryBytes]), [[0, [0, 1], 256 * MiB]]);
      const node = monitor.nodes[0]!;
      assert.ok(node.pagesInUse > 0, 'the kernels were loaded into machine pages');
      // Nothing is reserved at admission (overcommit): free is what is neither in use, nor held for large
      // pages, nor the monitor's own (the memmap: 16 bytes a page; three VMs' tables).
      assert.equal(node.pagesInUse + node.pagesReserved + node.pagesMonitor + node.pagesFree, (256 * MiB) / 4096, 'the node\'s pages do not add up');
      // The memmap of 65536 pages (256 pages) and per VM of 32 MiB: the G-stage root (4), a middle table, 16 leaf
      // tables, a vCPU state page and an 8-page second-level TLB.
      assert.equal(node.pagesMonitor, 256 + 3 * (4 + 1 + 16 + 1 + 8), 'the monitor\'s own pages');
      assert.equal(monitor.memoryFreeBytes, node.pagesFree * 4096);
      assert.equal(monitor.vms.running, 3);

      // Garbage: each line gets an error and the connection goes on; other clients are not disturbed.
      const errors = async (line: string): Promise<string> => {
        const before = client!.messages.length;
        client!.send(line);
        await until(`a reply to ${line.trim()}`, () => client!.messages.length > before);
        const reply = client!.messages.splice(before, 1)[0]!;
        assert.ok('error' in reply, `${line.trim()} → ${JSON.stringify(reply)}`);
        return (reply.error as { desc: string }).desc;
      };
      assert.match(await errors('this is not json\n'), /JSON parse error/);
      assert.match(await errors('[1, 2]\n'), /must be a JSON object/);
      assert.match(await errors('{"execute": 7}\n'), /must be a string/);
      assert.match(await client.error('reboot-the-world'), /The command reboot-the-world has not been found/);
      assert.equal(await client.error('vm-stop', { vm: 'nope' }), "no VM named 'nope' (the VMs are: echo, poweroff, idle)");
      assert.equal(await client.error('query-vm-stats', {}), "Parameter 'vm' is missing");
      assert.equal(await client.error('query-vm-stats', { vm: 3 }), "Parameter 'vm' must be a string");
      assert.equal(await client.error('vm-stop', { vm: 'idle', force: true }), "Parameter 'force' is unexpected");
      assert.equal(await client.error('set-mode', { mode: 'timing' }), 'this machine has no timing configuration: set timing: true in the machine file');
      assert.equal(await client.error('set-policy', { hotMisses: 64 }), 'the NUMA policy needs a timing configuration: it reads the miss counters of timing mode (or give it the TLB-miss signal)');
      const flooder = await Client.connect(control);
      flooder.send('x'.repeat(70_000));
      await until('the flooder to be cut off', () => flooder.closed);
      assert.match(JSON.stringify(flooder.messages), /longer than 65536 bytes/);
      assert.equal((await client.ok<Message[]>('query-vms')).length, 3, 'the monitor survived');

      // The echo VM's console: bytes both ways, every client gets the output, a late one the backlog.
      const first = await Console.connect(join(runDir, 'echo.console.sock'));
      first.socket.write('HAL');
      await first.expect(/IBM/);
      const second = await Console.connect(join(runDir, 'echo.console.sock'));
      await second.expect(/^IBM/);
      second.socket.write('`a');
      await first.expect(/IBMab$/);
      await second.expect(/IBMab$/);
      first.socket.destroy();
      second.socket.destroy();

      // ps and stats through the command line; MIRRORBALL_RUN_DIR finds the socket.
      const ps = mirrorball(['ps'], { env: { MIRRORBALL_RUN_DIR: runDir } });
      assert.equal(ps.status, 0, ps.stderr);
      const [vmTable, machineLines] = ps.stdout.split('\n\n');
      const rows = vmTable!.trimEnd().split('\n').map((l) => l.split(/\s+/));
      assert.deepEqual(rows[0], ['NAME', 'STATE', 'VCPUS', 'MEMORY', 'IN-USE', 'PRIVATE', 'SHARED', 'SHARERS', 'RESERVED', 'NODE']);
      assert.deepEqual(rows.slice(1).map((r) => [r[0], r[1], r[2], r[3], r[9]]), [['echo', 'running', '1', '32M', '0'], ['poweroff', 'running', '1', '32M', '0'], ['idle', 'running', '1', '32M', '0']]);
      // Nothing shares pages here: what is in use is private, and the machine's account says so.
      for (const r of rows.slice(1)) assert.deepEqual([r[5], r[6], r[7]], [r[4], '0', '-'], r.join(' '));
      assert.match(machineLines!, /^machine: \S+ in use by VMs = \S+ of guest pages − 0 saved by sharing \+ 0 held by the page cache alone\n/);
      const memory = await client.ok<{ machine: { inUse: number; mapped: number; saved: number; cacheOnly: number } }>('query-memory');
      assert.equal(memory.machine.mapped - memory.machine.saved + memory.machine.cacheOnly, memory.machine.inUse);
      const stats = mirrorball(['stats', 'echo', '--json', '--run-dir', runDir]);
      assert.equal(stats.status, 0, stats.stderr);
      const account = JSON.parse(stats.stdout) as {
        name: string; pagesInUse: number; pagesPrivate: number; exits: Record<string, number>; exitCauses: Record<string, number>;
        total: { guestKernelCycles: number; instructions: number }; perVcpu: unknown[];
      };
      assert.equal(account.name, 'echo');
      assert.ok(account.pagesInUse > 0);
      assert.equal(account.pagesPrivate, account.pagesInUse);
      // The loader's first touches and the tiny kernel's UART accesses reached the monitor as exits.
      assert.ok((account.exitCauses['guest-page-fault.dma.fill'] ?? 0) > 0 && (account.exitCauses['mmio.ns16550a'] ?? 0) > 0, JSON.stringify(account.exitCauses));
      assert.equal(account.exits.mmio, account.exitCauses['mmio.ns16550a']);
      assert.ok(account.total.guestKernelCycles > 0 && account.total.instructions > 0, JSON.stringify(account.total));
      assert.equal(account.perVcpu.length, 1);
      const table = mirrorball(['stats', 'idle', '--run-dir', runDir]);
      assert.equal(table.status, 0, table.stderr);
      assert.match(table.stdout, /^vm idle: running, 1 vCPU, 32M on node 0\n/);
      assert.match(table.stdout, /^guest kernel cycles +[\d,]+ +[\d,]+$/m);
      const unknown = mirrorball(['stats', 'nope', '--run-dir', runDir]);
      assert.equal(unknown.status, 1);
      assert.equal(unknown.stderr, "mirrorball: no VM named 'nope' (the VMs are: echo, poweroff, idle)\n");

      // statistics files
      const dumped = await client.ok<{ dir: string }>('stats-dump', { dir: 'dump1' });
      assert.equal(dumped.dir, join(runDir, 'dump1'));
      const json = JSON.parse(readFileSync(join(runDir, 'dump1', 'stats.json'), 'utf8')) as Record<string, { value?: number }>;
      assert.ok(json['monitor.vm0.pages_in_use']!.value! > 0, 'pages of vm0 in stats.json');
      // stats.json carries the machine's account, and it adds up there too.
      const stat = (name: string): number => (json[name] as { value?: number; total?: number }).value ?? (json[name] as { total: number }).total;
      assert.equal(stat('monitor.memory.mapped') - stat('monitor.memory.saved') + stat('monitor.memory.cache_only'), stat('monitor.pages_in_use'));
      assert.match(readFileSync(join(runDir, 'dump1', 'stats.txt'), 'utf8'), /^monitor\.memory\.saved_by::content +0\b/m);
      const config = JSON.parse(readFileSync(join(runDir, 'dump1', 'config.json'), 'utf8')) as { vms: { id: number; name: string }[] };
      assert.deepEqual(config.vms.map((v) => [v.id, v.name]), [[0, 'echo'], [1, 'poweroff'], [2, 'idle']]);
      writeFileSync(join(runDir, 'blocker'), '');
      assert.match(await client.error('stats-dump', { dir: 'blocker' }), /cannot write statistics to '.*blocker'/);

      // A VM that ends by itself: an event, a line from up, its console gone (`mirrorball console` says how it
      // ended and exits); the others go on.
      const poweroff = new Running(spawn(process.execPath, argv(['console', 'poweroff', '--run-dir', runDir]), { stdio: ['pipe', 'pipe', 'pipe'] }));
      await until('the console to attach', () => poweroff.stderr.includes('attached'), 60_000, () => poweroff.stderr);
      poweroff.child.stdin!.write('!');
      assert.deepEqual((await client.event('VM_STOPPED')).data, { vm: 'poweroff', state: 'off', reason: 'powered off (code 0)' });
      assert.equal(await poweroff.done, 0);
      assert.equal(poweroff.stderr, "mirrorball: attached to vm poweroff's console (Ctrl-A d detaches)\nmirrorball: vm poweroff: powered off (code 0)\n");
      await until('up to report it', () => up.stdout.includes('vm poweroff: powered off (code 0)\n'));
      assert.ok(!existsSync(join(runDir, 'poweroff.console.sock')), 'its console socket is removed');
      assert.equal((await client.ok<Message[]>('query-vms'))[1]!.console, null);

      // vm-stop: an event, and the VM is stopped; stopping it again is an error.
      assert.deepEqual(await client.ok('vm-stop', { vm: 'idle' }), { vm: 'idle', state: 'stopped', reason: 'vm-stop from the control socket' });
      assert.deepEqual((await client.event('VM_STOPPED')).data, { vm: 'idle', state: 'stopped', reason: 'vm-stop from the control socket' });
      assert.equal(await client.error('vm-stop', { vm: 'idle' }), "VM 'idle' is not running (stopped: vm-stop from the control socket)");
      const stopAgain = mirrorball(['stop', 'idle', '--run-dir', runDir]);
      assert.equal(stopAgain.status, 1);
      assert.match(stopAgain.stderr, /^mirrorball: VM 'idle' is not running/);

      // The last VM stopped from the command line: up ends by itself, exit 0, sockets gone.
      const stop = mirrorball(['stop', 'echo', '--run-dir', runDir]);
      assert.equal(stop.status, 0, stop.stderr);
      assert.equal(stop.stdout, 'vm echo: stopped (vm-stop from the control socket)\n');
      assert.deepEqual((await client.event('SHUTDOWN')).data, { reason: 'vms-ended' });
      assert.equal(await up.done, 0);
      assert.equal(up.stderr, '');
      assert.match(up.stdout, /^mirrorball: up: 2 CPUs, 1 node \(uma\), 256 MiB; control socket /);
      assert.deepEqual(up.stdout.split('\n').filter((l) => l.startsWith('vm ') && !l.includes('booting')), [
        'vm poweroff: powered off (code 0)',
        'vm idle: stopped (vm-stop from the control socket)',
        'vm echo: stopped (vm-stop from the control socket)',
      ]);
      for (const f of ['control.sock', 'echo.console.sock', 'idle.console.sock']) assert.ok(!existsSync(join(runDir, f)), `${f} removed`);
      assert.match(readFileSync(join(runDir, 'echo.console.log'), 'latin1'), /^IBMab/);
    } finally {
      client?.socket.destroy();
      up.stop();
    }
  });

  it('exits with status 1 when a guest powers off reporting a failure, after the other VMs end', async () => {
    const runDir = join(dir, 'fail-run');
    const up = Running.start(['up', machineFile('fail', ['fail', 'idle']), '--run-dir', runDir]);
    try {
      await until('the failing VM to end', () => up.stdout.includes('vm fail: powered off (code 1)\n'), 60_000, () => up.stdout + up.stderr);
      assert.equal(up.child.exitCode, null, 'up ended with a VM still running');
      const stop = mirrorball(['stop', 'idle', '--run-dir', runDir]);
      assert.equal(stop.status, 0, stop.stderr);
      assert.equal(await up.done, 1, up.stderr);
    } finally {
      up.stop();
    }
  });

  it('mirrorball fault fails a node of the running machine: the VM at home there ends saying why, the other runs on; bad faults are one line', async () => {
    const runDir = join(dir, 'fault-run');
    const file = join(dir, 'fault.yaml');
    writeFileSync(file, 'machine:\n  nodes: 2\n  smp: 2\n  memory: 256M\nvms:\n' +
      ['idle1', 'idle2'].map((name) => `  - name: ${name}\n    memory: 32M\n    kernel: idle.Image\n`).join(''));
    const up = Running.start(['up', file, '--run-dir', runDir]);
    try {
      await until('the VMs to boot', () => up.stdout.includes('vm idle2: booting'), 60_000, () => up.stdout + up.stderr);
      assert.match(up.stdout, /vm idle1: booting, 1 vCPU, 32 MiB on node 0;/);
      assert.match(up.stdout, /vm idle2: booting, 1 vCPU, 32 MiB on node 1;/);
      const bad = [
        [['node', '2'], 1, 'mirrorball: no node 2: the machine has nodes 0 to 1\n'],
        [['cpu', '9'], 1, 'mirrorball: no CPU 9: the machine has CPUs 0 to 1\n'],
        [['page', '0x1000'], 1, 'mirrorball: no memory at 0x1000: RAM is 0x80000000 to 0x90000000\n'],
        [['link', '0-2'], 1, 'mirrorball: no node 2: the machine has nodes 0 to 1\n'],
        [['disk', '1'], 2, "mirrorball: no fault kind 'disk': write node N, cpu N, link A-B, router N, page ADDR or line ADDR\n"],
        [['page', 'here'], 2, "mirrorball: 'here' is not an address: write it in hexadecimal (0x80200000) or decimal\n"],
      ] as const;
      // The bad faults through one process, in turn (the CLI's start-up once); the good one below is its own.
      const results = mirrorballEach(bad.map(([args]) => ['fault', ...args, '--run-dir', runDir]), { MIRRORBALL_RUN_DIR: '' });
      for (const [i, [args, status, message]] of bad.entries()) {
        const r = results[i]!;
        assert.deepEqual([r.status, r.stderr], [status, message], args.join(' '));
      }
      const fault = mirrorball(['fault', 'node', '1', '--run-dir', runDir]);
      assert.equal(fault.status, 0, fault.stderr);
      assert.match(fault.stdout, /^mirrorball: node 1 injected for cycle \d+\n$/);
      await until('idle2 to end', () => up.stdout.includes('vm idle2 stopped: hardware fault: node 1 failed: '), 30_000, () => up.stdout + up.stderr);
      assert.match(up.stdout, /vm idle2 stopped: hardware fault: node 1 failed: vCPU 0's state was on CPU 1; its home node 1 held its devices and the monitor's data for it; \d+ of its pages were there/);
      assert.match(up.stderr, /mirrorball: hardware: node 1 failed \(CPUs 1\)\n/);
      const client = await Client.connect(join(runDir, 'control.sock'), up);
      await client.ok('qmp_capabilities');
      const report = await client.ok<{ kind: string; text: string }[]>('query-failure-report');
      assert.deepEqual(report.map((r) => r.text), ['node 1 failed (CPUs 1)']);
      const vms = await client.ok<Message[]>('query-vms');
      assert.deepEqual(vms.map((v) => [v.name, v.state]), [['idle1', 'running'], ['idle2', 'stopped']]);
      const machine = await client.ok<{ nodes: { failed: boolean; pagesFree: number }[]; cpusFailed: number[] }>('query-monitor');
      assert.deepEqual(machine.nodes.map((n) => [n.failed, n.pagesFree === 0]), [[false, false], [true, true]]);
      assert.deepEqual(machine.cpusFailed, [1]);
      const save = await client.execute('snapshot-save', { file: 'after-fault.snap' });
      assert.deepEqual(save.error, { class: 'GenericError', desc: 'this machine has had hardware faults, which snapshots do not save yet' });
      const stop = mirrorball(['stop', 'idle1', '--run-dir', runDir]);
      assert.equal(stop.status, 0, stop.stderr);
      assert.equal(await up.done, 0, up.stderr);
    } finally {
      up.stop();
    }
  });

  it('with cells: 2 each VM goes to a cell, ps shows it, a cell\'s monitor node failing ends only the VMs of that cell, and repaired the cell rejoins', async () => {
    const runDir = join(dir, 'cells-run');
    const file = join(dir, 'cells.yaml');
    writeFileSync(file, 'machine:\n  nodes: 2\n  smp: 2\n  memory: 256M\n  cells: 2\nvms:\n' +
      ['idle1', 'idle2'].map((name) => `  - name: ${name}\n    memory: 32M\n    kernel: idle.Image\n`).join('') + '  - name: idle3\n    memory: 32M\n    kernel: idle.Image\n    cell: 1\n');
    const up = Running.start(['up', file, '--run-dir', runDir]);
    try {
      await until('the VMs to boot', () => up.stdout.includes('vm idle3: booting'), 60_000, () => up.stdout + up.stderr);
      assert.match(up.stdout, /vm idle1: booting, 1 vCPU, 32 MiB on node 0, cell 0;/);
      assert.match(up.stdout, /vm idle2: booting, 1 vCPU, 32 MiB on node 1, cell 1;/);
      assert.match(up.stdout, /vm idle3: booting, 1 vCPU, 32 MiB on node 1, cell 1;/);
      const ps = mirrorball(['ps', '--run-dir', runDir]);
      assert.equal(ps.status, 0, ps.stderr);
      const rows = ps.stdout.split('\n\n')[0]!.trimEnd().split('\n').map((l) => l.split(/\s+/));
      assert.deepEqual(rows.map((r) => [r[0], r[r.length - 1]]), [['NAME', 'CELLS'], ['idle1', '0'], ['idle2', '1'], ['idle3', '1']]);
      const stats = mirrorball(['stats', 'idle2', '--run-dir', runDir]);
      assert.match(stats.stdout.split('\n')[0]!, /on node 1, in cell 1$/);
      assert.equal(mirrorball(['fault', 'node', '1', '--run-dir', runDir]).status, 0);
      const why = 'hardware fault: cell 1 failed: node 1, which held its monitor state, failed';
      await until('idle2 and idle3 to end', () => up.stdout.includes(`vm idle3 stopped: ${why}`), 30_000, () => up.stdout + up.stderr);
      assert.match(up.stdout, new RegExp(`vm idle2 stopped: ${why}\n`));
      const client = await Client.connect(join(runDir, 'control.sock'), up);
      await client.ok('qmp_capabilities');
      assert.deepEqual((await client.ok<Message[]>('query-vms')).map((v) => [v.name, v.state, v.cells]), [['idle1', 'running', [0]], ['idle2', 'stopped', [1]], ['idle3', 'stopped', [1]]]);
      const machine = await client.ok<{ machineFailure: string | null; cells: { id: number; nodes: number[]; monitorNode: number; failure: string | null }[]; recoveries: { live: number[]; failedCells: number[]; total: number; detection: number; agreement: number; cleanup: number }[] }>('query-monitor');
      assert.equal(machine.machineFailure, null);
      assert.deepEqual(machine.cells.map((c) => [c.id, c.nodes, c.monitorNode, c.failure]), [[0, [0], 0, null], [1, [1], 1, 'node 1, which held its monitor state, failed']]);
      assert.deepEqual(machine.recoveries.map((r) => [r.live, r.failedCells, r.total === r.detection + r.agreement + r.cleanup]), [[[0], [1], true]]);
      // Repaired, node 1 comes back and cell 1 rejoins through the agreement; the VMs that ended stay ended.
      const repair = mirrorball(['repair', '--run-dir', runDir]);
      assert.deepEqual([repair.status, repair.stdout], [0, 'mirrorball: 1 part repaired\n'], repair.stderr);
      await until('cell 1 to rejoin', () => /hardware: cell 1 rejoined in /.test(up.stderr), 30_000, () => up.stdout + up.stderr);
      assert.match(up.stderr, /mirrorball: hardware: cell 1 rejoins \(it had failed: node 1, which held its monitor state, failed\)\n/);
      assert.match(up.stderr, /mirrorball: hardware: repaired node 1, CPU 1 taken back; the monitor goes on with nodes 0, 1 \(cells 0, 1\)\n/);
      assert.match(up.stderr, /mirrorball: hardware: cell 1 rejoined in 0\.\d+ ms \(detection 0\.010, agreement 0\.\d+, cleanup 0\.000\); cells 0, 1 go on\n/);
      const after = await client.ok<{ cells: { failure: string | null }[]; recoveries: { live: number[]; failedCells: number[] }[]; nodes: { failed: boolean }[] }>('query-monitor');
      assert.deepEqual(after.cells.map((c) => c.failure), [null, null]);
      assert.deepEqual(after.recoveries.map((r) => [r.live, r.failedCells]), [[[0], [1]], [[0, 1], []]]);
      assert.deepEqual(after.nodes.map((n) => n.failed), [false, false]);
      assert.deepEqual((await client.ok<Message[]>('query-vms')).map((v) => v.state), ['running', 'stopped', 'stopped']);
      assert.deepEqual([mirrorball(['repair', '--run-dir', runDir]).stdout], ['mirrorball: nothing had failed\n']);
      const stop = mirrorball(['stop', 'idle1', '--run-dir', runDir]);
      assert.equal(stop.status, 0, stop.stderr);
      assert.equal(await up.done, 0, up.stderr);
    } finally {
      up.stop();
    }
  });

  it('runs the VMs in timing mode with timing: true, charging the physical CPUs\' caches', async () => {
    const runDir = join(dir, 'timing-run');
    const up = Running.start(['up', machineFile('timing', ['echo', 'idle'], '  timing: true\n'), '--run-dir', runDir]);
    let client: Client | undefined;
    try {
      client = await Client.connect(join(runDir, 'control.sock'), up);
      await client.ok('qmp_capabilities');
      assert.equal((await client.ok<{ mode: string }>('query-monitor')).mode, 'timing');
      await client.ok('set-mode', { mode: 'fast' });
      assert.equal((await client.ok<{ mode: string }>('query-monitor')).mode, 'fast');
      await client.ok('set-mode', { mode: 'timing' });
      assert.equal((await client.ok<{ mode: string }>('query-monitor')).mode, 'timing');
      // The echo VM answers in timing mode too.
      const echo = await Console.connect(join(runDir, 'echo.console.sock'));
      echo.socket.write('HAL');
      await echo.expect(/IBM/);
      echo.socket.destroy();
      // Disco's NUMA policy: on with a parameter over the defaults, checked, and off again; config.json has it.
      const on = await client.ok<{ enabled: boolean; parameters: Record<string, number> }>('set-policy', { hotMisses: 64 });
      assert.deepEqual(on, { enabled: true, parameters: { ...DEFAULT_POLICY, hotMisses: 64 } });
      assert.equal(await client.error('set-policy', { migrateShare: 2 }), 'NUMA policy: migrateShare must be above 0.5 and at most 1, not 2');
      assert.equal(await client.error('set-policy', { hotMisses: 'many' }), "'hotMisses' must be a number");
      assert.equal(await client.error('set-policy', { trigger: 3 }), "Parameter 'trigger' is unexpected");
      await client.ok('stats-dump', { dir: 'dump-policy' });
      const withPolicy = JSON.parse(readFileSync(join(runDir, 'dump-policy', 'config.json'), 'utf8')) as { policy: Record<string, number> | null };
      assert.deepEqual(withPolicy.policy, { ...DEFAULT_POLICY, hotMisses: 64 });
      assert.deepEqual(await client.ok('set-policy', { enabled: false }), { enabled: false, parameters: { ...DEFAULT_POLICY, hotMisses: 64 } });
      await client.ok('stats-dump', { dir: 'dump' });
      const json = JSON.parse(readFileSync(join(runDir, 'dump', 'stats.json'), 'utf8')) as Record<string, { value?: number }>;
      assert.equal(typeof json['monitor.policy.cycles']?.value, 'number', 'the policy\'s statistics in stats.json');
      const accesses = [0, 1].map((cpu) => json[`machine.cpu${cpu}.cache.accesses`]?.value ?? -1);
      assert.ok(accesses.every((n) => n >= 0), `both physical CPUs' caches in stats.json: ${accesses.join(', ')}`);
      assert.ok(accesses[0]! + accesses[1]! > 0, 'the vCPUs charged the physical CPUs\' caches');
      assert.equal(json['machine.cpu2.cache.accesses'], undefined, 'no third CPU');
      const config = JSON.parse(readFileSync(join(runDir, 'dump', 'config.json'), 'utf8')) as { mode: string; timing: { latencies: unknown } | null };
      assert.equal(config.mode, 'timing');
      assert.ok(config.timing?.latencies !== undefined, 'the timing parameters in config.json');
      await client.ok('quit');
      assert.equal(await up.done, 0);
    } finally {
      client?.socket.destroy();
      up.stop();
    }
  });

  it('--detach returns once the monitor answers; a second up on the same socket is refused; down ends it', async () => {
    const runDir = join(dir, 'detach-run');
    mkdirSync(runDir);
    const control = join(runDir, 'control.sock');
    // A socket file nobody listens on, as a killed up leaves behind: replaced.
    assert.equal(spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(control)}, () => process.exit(0))`]).status, 0);
    assert.ok(existsSync(control));
    const file = machineFile('detach', ['idle', 'echo']);
    const started = mirrorball(['up', file, '--run-dir', runDir, '--detach']);
    assert.equal(started.status, 0, started.stderr);
    const pid = Number(/pid (\d+)/.exec(started.stdout)?.[1]);
    assert.ok(pid > 0, started.stdout);
    let client: Client | undefined;
    try {
      const again = mirrorball(['up', file, '--run-dir', runDir]);
      assert.equal(again.status, 2);
      assert.equal(again.stderr, `mirrorball: control socket '${control}' is in use by another process\n`);
      const againDetached = mirrorball(['up', file, '--run-dir', runDir, '--detach']);
      assert.equal(againDetached.status, 2);

      // `mirrorball console` from a pipe: what is typed goes in, Ctrl-A Ctrl-A is one Ctrl-A, Ctrl-A d detaches.
      const attach = new Running(spawn(process.execPath, argv(['console', 'echo', '--run-dir', runDir]), { stdio: ['pipe', 'pipe', 'pipe'] }));
      await until('the console to attach', () => attach.stderr.includes('attached'), 60_000, () => attach.stderr);
      attach.child.stdin!.write('HAL\x01\x01');
      await until('the echo', () => attach.stdout.includes('IBM\x02'), 60_000, () => JSON.stringify(attach.stdout));
      attach.child.stdin!.write('\x01d');
      assert.equal(await attach.done, 0);
      assert.match(attach.stderr, /detached from vm echo; it keeps running/);

      client = await Client.connect(control);
      await client.ok('qmp_capabilities');
      assert.equal((await client.ok<Message[]>('query-vms')).filter((v) => v.state === 'running').length, 2, 'both still run after detaching');
      const down = mirrorball(['down', '--run-dir', runDir]);
      assert.equal(down.status, 0, down.stderr);
      assert.equal(down.stdout, 'mirrorball: the monitor has quit\n');
      assert.ok(!existsSync(control), 'down returns once the monitor has closed its socket');
      const stopped = [(await client.event('VM_STOPPED')).data, (await client.event('VM_STOPPED')).data];
      assert.deepEqual(stopped, [{ vm: 'idle', state: 'stopped', reason: 'the monitor quit' }, { vm: 'echo', state: 'stopped', reason: 'the monitor quit' }]);
      assert.deepEqual((await client.event('SHUTDOWN')).data, { reason: 'host-quit' });
      await until('the detached monitor to exit', () => !alive(pid));
      assert.ok(!existsSync(control));
      assert.match(readFileSync(join(runDir, 'up.log'), 'utf8'), /vm echo: stopped \(the monitor quit\)\n/);
    } finally {
      client?.socket.destroy();
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
  });

  it('Ctrl-C (SIGINT) ends the monitor cleanly', async () => {
    const runDir = join(dir, 'sigint-run');
    const up = Running.start(['up', machineFile('sigint', ['idle']), '--run-dir', runDir]);
    try {
      const client = await Client.connect(join(runDir, 'control.sock'), up);
      await client.ok('qmp_capabilities');
      up.child.kill('SIGINT');
      assert.deepEqual((await client.event('SHUTDOWN')).data, { reason: 'host-signal' });
      client.socket.destroy();
      assert.equal(await up.done, 0);
      assert.match(up.stdout, /vm idle: stopped \(the monitor was interrupted\)\n/);
      assert.ok(!existsSync(join(runDir, 'control.sock')));
    } finally {
      up.stop();
    }
  });
});

describe('mirrorball up: shared and copy-on-write disks', () => {
  const vm = (name: string, drive: string): string => `  - name: ${name}\n    memory: 32M\n    kernel: idle.Image\n    drive: ${drive}\n`;

  it('refuses a writable disk in two VMs, in one line, exit 2, nothing started', () => {
    const disk = join(dir, 'shared-w.img');
    writeFileSync(disk, Buffer.alloc(MiB));
    const file = join(dir, 'shared-w.yaml');
    writeFileSync(file, `vms:\n${vm('a', `file=${disk}`)}${vm('b', `file=${disk}`)}`);
    const runDir = join(dir, 'shared-w-run');
    const r = mirrorball(['up', file, '--run-dir', runDir]);
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr, `mirrorball: vm b: disk image '${disk}' is already open writable by vm a: a writable disk may be open in one VM at a time (share it with snapshot=on, or readonly=on)\n`);
    assert.ok(!existsSync(runDir), 'no run directory was made');
    assert.ok(!existsSync(`${disk}.lock`), 'the first VM\'s lock went with it');
  });

  it('shares one base among VMs with snapshot=on; another up asking for a VM\'s overlay is refused; snapshot-save keeps their disks and up --restore brings them back', async () => {
    const base = join(dir, 'shared-base.img');
    writeFileSync(base, Buffer.alloc(MiB, 3));
    const file = join(dir, 'shared-cow.yaml');
    writeFileSync(file, `vms:\n${vm('a', `file=${base},snapshot=on`)}${vm('b', `file=${base},snapshot=on`)}${vm('c', `file=${base},overlay=c.overlay`)}`);
    const runDir = join(dir, 'shared-cow-run');
    const up = Running.start(['up', file, '--run-dir', runDir]);
    let client: Client | undefined;
    try {
      client = await Client.connect(join(runDir, 'control.sock'), up);
      await client.ok('qmp_capabilities');
      assert.deepEqual((await client.ok<Message[]>('query-vms')).map((v) => v.state), ['running', 'running', 'running']);
      assert.ok(existsSync(join(dir, 'c.overlay')), 'the overlay is made beside the machine file');

      const other = join(dir, 'shared-cow-2.yaml');
      writeFileSync(other, `vms:\n${vm('d', `file=${base},overlay=c.overlay`)}`);
      const r = mirrorball(['up', other, '--run-dir', join(dir, 'shared-cow-run-2')]);
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`^mirrorball: vm d: disk image '.*c\\.overlay' is open writable in another Mirrorball process \\(pid ${up.child.pid}; its lock is '.*c\\.overlay\\.lock'\\)\\n$`));

      // Saved with the disks: a's and b's changed clusters in the file, c's overlay by path and hash.
      const snap = join(dir, 'shared-cow.snap');
      await client.ok('snapshot-save', { file: snap });
      await client.ok('snapshot-save', { file: join(dir, 'shared-cow-a.snap'), vm: 'a' });
      await client.ok('quit');
      assert.equal(await up.done, 0);
      assert.ok(!existsSync(join(dir, 'c.overlay.lock')), 'released when up ends');
    } finally {
      client?.socket.destroy();
      up.stop();
    }

    // The machine again from the snapshot, its copy-on-write disks as they were.
    const runDir2 = join(dir, 'shared-cow-run-3');
    const up2 = Running.start(['up', file, '--run-dir', runDir2, '--restore', join(dir, 'shared-cow.snap')]);
    try {
      client = await Client.connect(join(runDir2, 'control.sock'), up2);
      await client.ok('qmp_capabilities');
      assert.deepEqual((await client.ok<Message[]>('query-vms')).map((v) => v.state), ['running', 'running', 'running']);
      await client.ok('quit');
      assert.equal(await up2.done, 0);
    } finally {
      client?.socket.destroy();
      up2.stop();
    }

    // VM a alone, from its own snapshot, beside a VM the file boots over the same base.
    const one = join(dir, 'shared-cow-one.yaml');
    writeFileSync(one, `vms:\n  - name: a\n    restore: shared-cow-a.snap\n${vm('e', `file=${base},snapshot=on`)}`);
    const runDir5 = join(dir, 'shared-cow-run-5');
    const up5 = Running.start(['up', one, '--run-dir', runDir5]);
    try {
      client = await Client.connect(join(runDir5, 'control.sock'), up5);
      await client.ok('qmp_capabilities');
      assert.deepEqual((await client.ok<Message[]>('query-vms')).map((v) => [v.name, v.state]), [['a', 'running'], ['e', 'running']]);
      await client.ok('quit');
      assert.equal(await up5.done, 0);
    } finally {
      client?.socket.destroy();
      up5.stop();
    }

    // The overlay written since the save: the snapshot no longer describes it, one line and nothing started.
    const fd = openSync(join(dir, 'c.overlay'), 'r+');
    writeSync(fd, Uint8Array.of(1), 0, 1, 3 * 4096);
    closeSync(fd);
    const r = mirrorball(['up', file, '--run-dir', join(dir, 'shared-cow-run-4'), '--restore', join(dir, 'shared-cow.snap')]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /^mirrorball: snapshot '.*shared-cow\.snap' cannot be restored: VM c: overlay '.*c\.overlay' changed since the snapshot was taken \(its SHA-256 differs\): a snapshot refers to an overlay file, it does not copy it\n$/);
    assert.ok(!existsSync(join(dir, 'shared-cow-run-4', 'control.sock')), 'nothing started');
  });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const guest = findBuiltGuest();
describe('mirrorball up: snapshots of VMs', () => {
  it('saves one VM or the whole machine; a VM entry\'s restore makes it again, its console going on; a bad file, a changed disk or a wrong entry is one line, exit 2, nothing started', async () => {
    const disk = join(dir, 'snap-disk.img');
    writeFileSync(disk, Buffer.alloc(MiB, 7));
    const file = join(dir, 'snap.yaml');
    writeFileSync(file, 'machine:\n  topology: uma\n  smp: 2\n  memory: 256M\nvms:\n' +
      `  - name: echo\n    memory: 32M\n    kernel: echo.Image\n    drive: file=${disk},readonly=on\n  - name: idle\n    memory: 32M\n    kernel: idle.Image\n`);
    const runDir = join(dir, 'snap-run');
    const up = Running.start(['up', file, '--run-dir', runDir]);
    let client: Client | undefined;
    try {
      client = await Client.connect(join(runDir, 'control.sock'), up);
      await client.ok('qmp_capabilities');
      const echo = await Console.connect(join(runDir, 'echo.console.sock'));
      echo.socket.write('HAL');
      await echo.expect(/IBM$/);
      const one = await client.ok<{ file: string; bytes: number; pages: number; milliseconds: number }>('snapshot-save', { file: 'echo.snap', vm: 'echo' });
      assert.equal(one.file, join(runDir, 'echo.snap'));
      assert.ok(one.bytes > 0 && one.pages > 0, JSON.stringify(one));
      await client.ok('snapshot-save', { file: join(dir, 'whole.snap') });
      assert.equal(await client.error('snapshot-save', { file: 'x.snap', vm: 'nobody' }), "no VM named 'nobody' (the VMs are: echo, idle)");
      assert.equal(await client.error('snapshot-save', {}), "Parameter 'file' is missing");
      echo.socket.write('x');
      await echo.expect(/IBMy$/);
      await client.ok('quit');
      assert.equal(await up.done, 0);
    } finally {
      client?.socket.destroy();
      up.stop();
    }

    // Both made again, from the VM's file and from the whole machine's: the echo goes on from where it was saved.
    const again = join(dir, 'again.yaml');
    writeFileSync(again, `vms:\n  - name: echo\n    restore: ${join(runDir, 'echo.snap')}\n  - name: idle\n    restore: whole.snap\n`);
    const runDir2 = join(dir, 'snap-run-2');
    const up2 = Running.start(['up', again, '--run-dir', runDir2]);
    try {
      client = await Client.connect(join(runDir2, 'control.sock'), up2);
      await client.ok('qmp_capabilities');
      const vms = await client.ok<Message[]>('query-vms');
      assert.deepEqual(vms.map((v) => [v.name, v.state, v.vcpus, v.memoryBytes]), [['echo', 'running', 1, 32 * MiB], ['idle', 'running', 1, 32 * MiB]]);
      const echo = await Console.connect(join(runDir2, 'echo.console.sock'));
      echo.socket.write('`');
      await echo.expect(/^a$/);
      await client.ok('quit');
      assert.equal(await up2.done, 0);
      assert.match(up2.stdout, /vm echo: restored from .*echo\.snap, 1 vCPU, 32 MiB on node 0/);
    } finally {
      client?.socket.destroy();
      up2.stop();
    }

    // Bad input: one line each, exit 2, nothing started. The cases that see the disk alike run in one process,
    // one after the other (the CLI's start-up once), each with its own files.
    const snap = readFileSync(join(runDir, 'echo.snap'));
    type Bad = [name: string, bytes: Buffer, expected: RegExp, entry?: string];
    const bad = (cases: Bad[]): void => {
      const commands = cases.map(([name, bytes, , entry]) => {
        const slug = name.replace(/ /g, '-');
        writeFileSync(join(dir, `bad-${slug}.snap`), bytes);
        writeFileSync(join(dir, `bad-${slug}.yaml`), `vms:\n  - ${(entry ?? 'name: echo\n    restore: SNAP').replace('SNAP', `bad-${slug}.snap`)}\n`);
        return ['up', join(dir, `bad-${slug}.yaml`), '--run-dir', join(dir, `bad-run-${slug}`)];
      });
      const results = mirrorballEach(commands, { MIRRORBALL_RUN_DIR: '' });
      for (const [i, [name, , expected]] of cases.entries()) {
        const r = results[i]!;
        assert.equal(r.status, 2, `${name}: ${r.stderr}`);
        assert.equal(r.stderr.trimEnd().split('\n').length, 1, `${name}: one line: ${r.stderr}`);
        assert.match(r.stderr, expected, name);
        assert.ok(!existsSync(join(commands[i]![3]!, 'control.sock')), `${name}: nothing started`);
      }
    };
    const flipped = Buffer.from(snap);
    flipped[Math.floor(snap.length / 2)]! ^= 0x40;
    const version = Buffer.from(snap);
    version.writeUInt32LE(99, 8);
    bad([
      ['truncated', snap.subarray(0, snap.length - 100), /corrupt or truncated/],
      ['corrupt', flipped, /corrupt or truncated/],
      ['version', version, /format version 99/],
      ['not a snapshot', Buffer.from('hello'), /is not a Mirrorball snapshot/],
      ['another VM', snap, /has no VM named 'nobody' \(it has echo\)/, 'name: nobody\n    restore: SNAP'],
    ]);
    writeFileSync(disk, Buffer.alloc(MiB, 8));
    bad([['changed disk', snap, /disk image '.*snap-disk\.img' changed since the snapshot was taken/]]);
    rmSync(disk);
    bad([
      ['missing disk', snap, /disk image '.*snap-disk\.img' is gone/],
      ['other keys', snap, /vms\[0\]\.smp: not with restore/, 'name: echo\n    restore: SNAP\n    smp: 2'],
    ]);
  });
});

describe('mirrorball up --restore: the whole machine', () => {
  it('continues every VM where the snapshot left it (an ended one stays ended); a snapshot of another machine, of one VM or a bad one is one line, exit 2, nothing started', async () => {
    const disk = join(dir, 'whole-disk.img');
    writeFileSync(disk, Buffer.alloc(MiB, 5));
    const machine = 'machine:\n  topology: uma\n  smp: 2\n  memory: 256M\n';
    const vms = (counterMemory = '32M', last = 'idle'): string => 'vms:\n' +
      `  - name: counter\n    memory: ${counterMemory}\n    kernel: counter.Image\n    drive: file=${disk},readonly=on\n    rng: 7\n` +
      `  - name: off\n    memory: 32M\n    kernel: poweroff.Image\n  - name: ${last}\n    memory: 32M\n    kernel: idle.Image\n`;
    const file = join(dir, 'whole.yaml');
    writeFileSync(file, machine + vms());
    const runDir = join(dir, 'whole-run');
    const snap = join(dir, 'whole-machine.snap');
    const up = Running.start(['up', file, '--run-dir', runDir]);
    let client: Client | undefined;
    try {
      client = await Client.connect(join(runDir, 'control.sock'), up);
      await client.ok('qmp_capabilities');
      const counter = await Console.connect(join(runDir, 'counter.console.sock'));
      counter.socket.write('xyz');
      await counter.expect(/abc$/);
      (await Console.connect(join(runDir, 'off.console.sock'))).socket.write('!');
      await client.event('VM_STOPPED');
      const saved = await client.ok<{ pages: number; diskPages: number }>('snapshot-save', { file: snap });
      assert.ok(saved.pages > 0 && saved.diskPages === 0, JSON.stringify(saved));
      await client.ok('snapshot-save', { file: join(dir, 'one-vm.snap'), vm: 'counter' });
      counter.socket.write('x');
      await counter.expect(/abcd$/);
      await client.ok('quit');
      assert.equal(await up.done, 0);
    } finally {
      client?.socket.destroy();
      up.stop();
    }

    // The machine again: the counter goes on from its saved count, the VM that had powered off is off.
    const runDir2 = join(dir, 'whole-run-2');
    const up2 = Running.start(['up', file, '--run-dir', runDir2, '--restore', snap]);
    try {
      client = await Client.connect(join(runDir2, 'control.sock'), up2);
      await client.ok('qmp_capabilities');
      const list = await client.ok<Message[]>('query-vms');
      assert.deepEqual(list.map((v) => [v.name, v.state]), [['counter', 'running'], ['off', 'off'], ['idle', 'running']]);
      const counter = await Console.connect(join(runDir2, 'counter.console.sock'));
      counter.socket.write('xx');
      await counter.expect(/^de$/);
      // A restored machine can be saved again.
      await client.ok('snapshot-save', { file: join(dir, 'again.snap') });
      await client.ok('quit');
      assert.equal(await up2.done, 0);
      assert.match(up2.stdout, /vm counter: restored from .*whole-machine\.snap, 1 vCPU, 32 MiB on node 0/);
    } finally {
      client?.socket.destroy();
      up2.stop();
    }

    // Bad input: one line each, exit 2, nothing started. The cases that see the disk alike run in one process,
    // one after the other (the CLI's start-up once).
    type Bad = [name: string, text: string, snapshot: string, expected: RegExp];
    const bad = (cases: Bad[]): void => {
      const commands = cases.map(([name, text, snapshot]) => {
        const badFile = join(dir, `whole-bad-${name}.yaml`);
        writeFileSync(badFile, text);
        return ['up', badFile, '--run-dir', join(dir, `whole-bad-run-${name}`), '--restore', snapshot];
      });
      const results = mirrorballEach(commands, { MIRRORBALL_RUN_DIR: '' });
      for (const [i, [name, , , expected]] of cases.entries()) {
        const r = results[i]!;
        assert.equal(r.status, 2, `${name}: ${r.stderr}`);
        assert.equal(r.stderr.trimEnd().split('\n').length, 1, `${name}: one line: ${r.stderr}`);
        assert.match(r.stderr, expected, name);
        assert.ok(!existsSync(join(commands[i]![3]!, 'control.sock')), `${name}: nothing started`);
      }
    };
    const bytes = readFileSync(snap);
    writeFileSync(join(dir, 'whole-truncated.snap'), bytes.subarray(0, bytes.length - 10));
    bad([
      ['memory', machine + vms('64M'), snap, /is not the machine of .*: vm counter: 64 MiB in the file, 32 MiB in the snapshot$/m],
      ['names', machine + vms('32M', 'other'), snap, /its VMs are counter, off, idle, the file's counter, off, other$/m],
      ['machine', machine.replace('smp: 2', 'smp: 4') + vms(), snap, /holds a machine made otherwise: its machine \(CPUs, nodes, memory, distances\) differs$/m],
      ['mmu', `${machine}monitor:\n  mmu: nested\n${vms()}`, snap, /holds a machine made otherwise: its mmu differs$/m],
      ['one VM', machine + vms(), join(dir, 'one-vm.snap'), /holds one VM, not a whole machine/],
      ['faults', `${machine}${vms()}faults:\n  - time: 1s\n    fault: node 0\n`, snap, /faults: a machine restored with --restore takes no fault script/],
      ['truncated', machine + vms(), join(dir, 'whole-truncated.snap'), /corrupt or truncated/],
      ['missing', machine + vms(), join(dir, 'nothing.snap'), /cannot read snapshot '.*nothing\.snap': no such file/],
    ]);
    writeFileSync(disk, Buffer.alloc(MiB, 6));
    bad([['changed disk', machine + vms(), snap, /disk image '.*whole-disk\.img' changed since the snapshot was taken/]]);
  });
});

const skip = guest === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : false;

describe('mirrorball up with two VMs of the built guest', { skip }, () => {
  it('boots both; console, stats, stop and quit work while the other VM goes on', { timeout: 15 * 60_000 }, async () => {
    const runDir = join(dir, 'guest-run');
    const file = join(dir, 'guests.yaml');
    writeFileSync(file, 'machine:\n  topology: uma\n  smp: 2\n  memory: 512M\nvms:\n  - name: web\n    memory: 96M\n  - name: db\n    memory: 96M\n    console-log: db.log\n');
    const up = Running.start(['up', file, '--run-dir', runDir]);
    const logs = { web: join(runDir, 'web.console.log'), db: join(dir, 'db.log') };
    const log = (path: string): string => (existsSync(path) ? readFileSync(path, 'latin1') : '');
    let client: Client | undefined;
    try {
      client = await Client.connect(join(runDir, 'control.sock'), up);
      await client.ok('qmp_capabilities');
      const ps = (): string[][] => {
        const r = mirrorball(['ps', '--run-dir', runDir]);
        assert.equal(r.status, 0, r.stderr);
        // The VMs' table, before the machine's lines.
        return r.stdout.split('\n\n')[0]!.trimEnd().split('\n').slice(1).map((l) => l.split(/\s+/));
      };
      assert.deepEqual(ps().map((r) => [r[0], r[1]]), [['web', 'running'], ['db', 'running']]);
      for (const path of Object.values(logs)) {
        await until(`the shell prompt in ${path}`, () => /Run \/init|mirrorball:\/# /.test(log(path)), 5 * 60_000, () => log(path).slice(-2000));
      }
      const inUse = ps().map((r) => r[4]);
      assert.ok(inUse.every((size) => /^[\d.]+M$/.test(size!) && parseFloat(size!) > 1), `in use: ${inUse}`);

      // Attach to web's console socket directly and run a command.
      const web = await Console.connect(join(runDir, 'web.console.sock'));
      await until('web\'s shell', () => log(logs.web).includes('mirrorball:/# '), 5 * 60_000);
      web.socket.write('echo hello-$((6*7))\n');
      await web.expect(/^hello-42\r?$/m, 120_000);

      // stats: the guest kernel ran and holds pages.
      const stats = mirrorball(['stats', 'web', '--json', '--run-dir', runDir]);
      assert.equal(stats.status, 0, stats.stderr);
      const account = JSON.parse(stats.stdout) as {
        pagesInUse: number; bytesInUse: number; monitorCalls: Record<string, number>; total: { guestKernelCycles: number; guestUserCycles: number };
        exits: Record<string, number>; exitCauses: Record<string, number>;
      };
      assert.ok(account.total.guestKernelCycles > 0, 'guest kernel cycles');
      assert.ok(account.total.guestUserCycles > 0, 'guest user cycles');
      assert.ok(account.pagesInUse > 0);
      assert.equal(account.bytesInUse, account.pagesInUse * 4096);
      assert.ok((account.monitorCalls.time ?? 0) > 0, 'the guest set timers through the monitor');
      // Every kind of exit a booted Linux makes reached the monitor: its devices, its calls, its first touches,
      // the interrupts delivered to it, its idle loop.
      for (const kind of ['mmio', 'sbi', 'guest-page-fault', 'interrupt', 'wfi']) assert.ok((account.exits[kind] ?? 0) > 0, `no ${kind} exits: ${JSON.stringify(account.exits)}`);
      assert.equal(account.exitCauses['sbi.time'], account.monitorCalls.time);

      // Stop web; db still answers on its console.
      const stop = mirrorball(['stop', 'web', '--run-dir', runDir]);
      assert.equal(stop.status, 0, stop.stderr);
      assert.deepEqual((await client.event('VM_STOPPED')).data, { vm: 'web', state: 'stopped', reason: 'vm-stop from the control socket' });
      await until('web\'s console to close', () => web.closed);
      assert.deepEqual(ps().map((r) => [r[0], r[1]]), [['web', 'stopped'], ['db', 'running']]);
      await until('db\'s shell', () => log(logs.db).includes('mirrorball:/# '), 5 * 60_000);
      const db = await Console.connect(join(runDir, 'db.console.sock'));
      db.socket.write('echo still-$((1+1))-after-web\n');
      await db.expect(/^still-2-after-web\r?$/m, 120_000);
      db.socket.destroy();

      assert.deepEqual(await client.ok('quit'), {});
      assert.deepEqual((await client.event('VM_STOPPED')).data, { vm: 'db', state: 'stopped', reason: 'the monitor quit' });
      assert.deepEqual((await client.event('SHUTDOWN')).data, { reason: 'host-quit' });
      assert.equal(await up.done, 0);
      assert.match(up.stdout, /^vm web: stopped \(vm-stop from the control socket\)$/m);
      assert.match(up.stdout, /^vm db: stopped \(the monitor quit\)$/m);
      assert.match(log(logs.db), /still-2-after-web/);
      assert.ok(!existsSync(join(runDir, 'control.sock')) && !existsSync(join(runDir, 'db.console.sock')));
    } catch (error) {
      throw new Error(`${(error as Error).message}\n--- up stdout ---\n${up.stdout}\n--- up stderr ---\n${up.stderr}\n--- web ---\n${log(logs.web).slice(-1500)}\n--- db ---\n${log(logs.db).slice(-1500)}`);
    } finally {
      client?.socket.destroy();
      up.stop();
    }
  });
});
