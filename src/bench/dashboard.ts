// `npm run bench -- --only dashboard`: what a dashboard client costs `up` (issue 26's bar: ≤ 5 % more CPU time).
//
// Each run starts `up --web` with two VMs of the built guest; each VM boots, runs `cpubench -n ROUNDS` from
// its console socket and leaves its shell, which powers it off; `up` then ends. The figure is `up`'s CPU time
// (user + system, every thread, from its start to its exit: cpu-report.ts), with no client; with a
// WebSocket client in this process that asks what the page asks, when it asks it (10 updates a second:
// web/dashboard/main.ts's poll, both consoles followed), which costs this machine's two cores next to
// nothing; and with one headless chromium showing the dashboard itself, whose drawing competes with `up`
// for the cores. So that drift on a shared machine falls on both sides, each run with a client is made at
// the same time as one without (dashboardBench).

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import WebSocket from 'ws';
import { BenchError } from './measure.js';
import { formatSpread } from './options.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const CLI = resolve(HERE, '../../bin/mirrorball.js');
const CPU_REPORT = join(HERE, 'cpu-report.js');
/** cpubench's rounds in each VM: a few seconds of guest work. */
export const WEB_ROUNDS = 150;
const RUN_TIMEOUT_MS = 10 * 60_000;
const VMS = ['web', 'db'];
/** As the page (web/dashboard/main.ts): the fast state every 100 ms, the rest every 5th time. */
const TICK_MS = 100;
const SLOW_EVERY = 5;

type ClientKind = 'none' | 'socket' | 'chromium';

/**
 * The page's requests without the page: negotiates with the token, follows both consoles, and every tick
 * asks query-vms, query-cpus and each running VM's query-vm-stats; every 5th tick also query-memory,
 * query-monitor and query-failure-report. A tick starts only when the last one was answered, as the page's
 * awaits make it. Resolves to the ticks answered per second once `stop` is called.
 */
function socketClient(url: string): { stop(): Promise<number> } {
  const page = new URL(url);
  const token = /token=([\w-]+)/.exec(page.hash)![1]!;
  const ws = new WebSocket(`ws://${page.host}/control`, { origin: `http://${page.host}` });
  let id = 0;
  const waiting = new Map<number, (m: Record<string, unknown>) => void>();
  const execute = (command: string, args?: object): Promise<Record<string, unknown>> => new Promise((done) => {
    const n = ++id;
    waiting.set(n, done);
    ws.send(JSON.stringify(args === undefined ? { execute: command, id: n } : { execute: command, arguments: args, id: n }));
  });
  let ticks = 0;
  let timer: NodeJS.Timeout | undefined;
  let busy = false;
  const started = performance.now();
  const tick = async (): Promise<void> => {
    if (busy || ws.readyState !== ws.OPEN) return;
    busy = true;
    try {
      if (ticks % SLOW_EVERY === 0) await Promise.all([execute('query-memory'), execute('query-monitor'), execute('query-failure-report', { from: 0 })]);
      const [vms] = await Promise.all([execute('query-vms'), execute('query-cpus')]);
      const running = ((vms.return ?? []) as { name: string; state: string }[]).filter((v) => v.state === 'running');
      await Promise.all(running.map((v) => execute('query-vm-stats', { vm: v.name })));
      ticks++;
    } finally {
      busy = false;
    }
  };
  ws.on('message', (data) => {
    const m = JSON.parse(data.toString()) as Record<string, unknown>;
    if ('QMP' in m) {
      void execute('qmp_capabilities', { token }).then(async () => {
        await Promise.all(VMS.map((vm) => execute('console-subscribe', { vm })));
        timer = setInterval(() => { void tick(); }, TICK_MS);
      });
      return;
    }
    const done = typeof m.id === 'number' ? waiting.get(m.id) : undefined;
    if (done !== undefined) {
      waiting.delete(m.id as number);
      done(m);
    }
  });
  ws.on('error', () => {});
  return {
    stop: async () => {
      clearInterval(timer);
      ws.terminate();
      return ticks / ((performance.now() - started) / 1000);
    },
  };
}

interface WebRun {
  cpuSeconds: number;
  wallSeconds: number;
  /** With a client: the updates it drew per second (its CPU charts' samples over the run). */
  updatesPerSecond?: number;
}

async function until(what: string, condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new BenchError(`web: waited ${timeoutMs / 1000} s for ${what}`);
    await sleep(20);
  }
}

/** Types `command` into VM's console once its shell prompts. */
async function runInConsole(socketPath: string, command: string): Promise<void> {
  const socket = createConnection(socketPath);
  let seen = '';
  socket.setEncoding('latin1').on('data', (t: string) => { seen = (seen + t).slice(-4096); });
  socket.on('error', () => {});
  await until(`the prompt on ${socketPath}`, () => seen.includes('mirrorball:/# '), RUN_TIMEOUT_MS);
  socket.write(`${command}\n`);
  socket.end();
}

async function oneRun(kind: ClientKind, browser: Browser, rounds: number): Promise<WebRun> {
  const dir = mkdtempSync(join(tmpdir(), 'mb-bench-web-'));
  try {
    const file = join(dir, 'two.yaml');
    writeFileSync(file, `machine:\n  topology: uma\n  smp: 2\n  memory: 512M\nvms:\n${VMS.map((v) => `  - name: ${v}\n    memory: 96M\n`).join('')}`);
    const report = join(dir, 'cpu.json');
    const runDir = join(dir, 'run');
    const started = performance.now();
    const up = spawn(process.execPath, ['--import', CPU_REPORT, CLI, 'up', file, '--run-dir', runDir, '--web', '0'],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, MIRRORBALL_CPU_REPORT: report } });
    let output = '';
    up.stdout.setEncoding('utf8').on('data', (t: string) => { output += t; });
    up.stderr.setEncoding('utf8').on('data', (t: string) => { output += t; });
    const exited = new Promise<number | null>((done) => up.once('exit', (code) => done(code)));
    const timer = setTimeout(() => up.kill('SIGKILL'), RUN_TIMEOUT_MS);
    try {
      await until('the dashboard\'s address', () => /dashboard \S+/.test(output) || up.exitCode !== null, 60_000);
      const url = /dashboard (\S+)/.exec(output)?.[1];
      if (url === undefined) throw new BenchError(`web: up did not start: ${output.trim()}`);
      const page = kind === 'chromium' ? await browser.newPage() : undefined;
      if (page !== undefined) await page.goto(url);
      const socket = kind === 'socket' ? socketClient(url) : undefined;
      const pageStart = performance.now();
      // `up` names each VM once its console socket listens.
      await until('the VMs\' console sockets', () => VMS.every((vm) => output.includes(`vm ${vm}: booting`)) || up.exitCode !== null, 60_000);
      await Promise.all(VMS.map((vm) => runInConsole(join(runDir, `${vm}.console.sock`), `cpubench -n ${rounds} > /dev/null; exit`)));
      const code = await exited;
      if (code !== 0) throw new BenchError(`web: up exited with ${code}: ${output.trim().split('\n').slice(-3).join(' / ')}`);
      const wallSeconds = (performance.now() - started) / 1000;
      const usage = JSON.parse(readFileSync(report, 'utf8')) as { user: number; system: number };
      const run: WebRun = { cpuSeconds: (usage.user + usage.system) / 1e6, wallSeconds };
      if (socket !== undefined) run.updatesPerSecond = await socket.stop();
      if (page !== undefined) {
        const samples = await page.evaluate(() => (globalThis as unknown as { mirrorball: { samples(): { cpus: Record<string, number> } } }).mirrorball.samples());
        run.updatesPerSecond = (samples.cpus['0'] ?? 0) / ((performance.now() - pageStart) / 1000);
        await page.close();
      }
      return run;
    } finally {
      clearTimeout(timer);
      if (up.exitCode === null) up.kill('SIGKILL');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The bench's table: per client kind, `repeat` pairs of runs made at the same time, one `up` with the client
 * and one without, so that whatever else loads the host's cores (other users, the browser itself) falls on
 * both; which one starts first alternates. Runs one after the other on a shared machine varied by tens of
 * per cent from drift alone, far more than the effect measured.
 */
export async function dashboardBench(repeat: number, rounds = WEB_ROUNDS): Promise<string> {
  const browser = await chromium.launch({ executablePath: process.env.MIRRORBALL_CHROMIUM ?? '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });
  const kinds: Exclude<ClientKind, 'none'>[] = ['socket', 'chromium'];
  const pairs = new Map(kinds.map((k) => [k, [] as { none: WebRun; client: WebRun }[]]));
  try {
    for (let i = 0; i < repeat; i++) {
      for (const kind of kinds) {
        process.stderr.write(`bench: web pair ${i + 1}/${repeat}, no client and client ${kind} at once...\n`);
        const clientFirst = i % 2 === 1;
        const first = oneRun(clientFirst ? kind : 'none', browser, rounds);
        await sleep(200);
        const second = oneRun(clientFirst ? 'none' : kind, browser, rounds);
        const [a, b] = await Promise.all([first, second]);
        const pair = clientFirst ? { client: a, none: b } : { none: a, client: b };
        pairs.get(kind)!.push(pair);
        process.stderr.write(`bench: web pair ${i + 1}, ${kind}: ${pair.none.cpuSeconds.toFixed(2)} s without, ${pair.client.cpuSeconds.toFixed(2)} s with ` +
          `(${(100 * (pair.client.cpuSeconds / pair.none.cpuSeconds - 1)).toFixed(1)} %), ${(pair.client.updatesPerSecond ?? 0).toFixed(1)} updates/s\n`);
      }
    }
  } finally {
    await browser.close();
  }
  const label: Record<Exclude<ClientKind, 'none'>, string> = { socket: 'a WebSocket client making the page\'s requests', chromium: 'the page in headless chromium' };
  const rows = [
    `| \`up\`, two VMs each running cpubench -n ${rounds}; pairs at once | CPU s, no client | CPU s, one client | client over none (per pair) | wall s (none / client) | updates/s |`,
    '|---|---|---|---|---|---|',
  ];
  for (const kind of kinds) {
    const list = pairs.get(kind)!;
    rows.push(`| ${label[kind]} | ${formatSpread(list.map((p) => p.none.cpuSeconds), 2)} | ${formatSpread(list.map((p) => p.client.cpuSeconds), 2)} | ` +
      `${formatSpread(list.map((p) => 100 * (p.client.cpuSeconds / p.none.cpuSeconds - 1)), 1)} % | ` +
      `${formatSpread(list.map((p) => p.none.wallSeconds), 0)} / ${formatSpread(list.map((p) => p.client.wallSeconds), 0)} | ${formatSpread(list.map((p) => p.client.updatesPerSecond ?? 0), 1)} |`);
  }
  rows.push('', `(medians of ${repeat} pair${repeat === 1 ? '' : 's'} with the range; the bar of issue 26: ≤ 5 % more CPU time with one client)`);
  return rows.join('\n');
}
