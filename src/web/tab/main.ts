// The page: fetches the guest, starts the machine's worker, and shows its console in a terminal, a boot
// progress line, a small statistics table, and the dashboard's views of where time goes and the NUMA map
// (views.ts, drawn by the modules the dashboard uses: src/web/views/).

import { Terminal } from '@xterm/xterm';
import type { FromWorker, StatsMessage, ToWorker } from './protocol.js';
import { LastLine, RateWindow } from './progress.js';
import { TabViews } from './views.js';

/** What `mirrorball web build` writes next to the page: where the guest's files are and how to boot them. */
interface GuestManifest {
  kernel: string;
  initrd: string;
  append: string;
}

const MIB = 1024 * 1024;

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`the page has no #${id}`);
  return found as T;
}

/** A whole number from the page's address (?smp=2&mem=256), within bounds, or the default. */
function queryNumber(name: string, fallback: number, min: number, max: number): number {
  const text = new URLSearchParams(location.search).get(name);
  if (text === null) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) throw new Error(`?${name}=${text}: a whole number from ${min} to ${max}, please`);
  return value;
}

async function fetchBytes(url: string, what: string, progress: (text: string) => void): Promise<ArrayBuffer> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`cannot fetch the ${what} (${url}): ${response.status} ${response.statusText}`);
  if (response.body === null) return response.arrayBuffer();
  const total = Number(response.headers.get('content-length') ?? 0);
  const reader = response.body.getReader();
  const parts: Uint8Array[] = [];
  let length = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    length += value.length;
    progress(`loading the ${what}: ${(length / MIB).toFixed(1)}${total > 0 ? ` of ${(total / MIB).toFixed(1)}` : ''} MiB`);
  }
  const bytes = new Uint8Array(length);
  let at = 0;
  for (const part of parts) { bytes.set(part, at); at += part.length; }
  return bytes.buffer;
}

const progressLine = element('progress');
const statsView = element('stats');
const notice = element('notice');
const decoder = new TextDecoder();
let transcript = '';
let latest: StatsMessage | undefined;
const lastLine = new LastLine();
const rate = new RateWindow(1000);
const views = new TabViews({ machineCharts: element('machine-charts'), hartCharts: element('hart-charts'), map: element('numa-map'), note: element('numa-note') });

const terminal = new Terminal({ convertEol: false, cursorBlink: true, scrollback: 5000, fontSize: 14 });
terminal.open(element('terminal'));
terminal.focus();

function showStats(stats: StatsMessage): void {
  latest = stats;
  views.update(stats, Date.now() / 1000);
  rate.add(stats.hostMs, stats.instructions);
  const mips = rate.perSecond() / 1e6;
  progressLine.textContent = `${stats.instructions.toLocaleString('en')} instructions · guest ${stats.guestSeconds.toFixed(2)} s · ${lastLine.text || '…'}`;
  const rows: [string, string][] = [
    ['instructions per second', `${mips.toFixed(1)} M`],
    ['guest time', `${stats.guestSeconds.toFixed(3)} s`],
    ['host time', `${(stats.hostMs / 1000).toFixed(1)} s`],
    ['harts', `${stats.harts} (${stats.busyHarts} busy)`],
  ];
  statsView.replaceChildren(...rows.map(([name, value]) => {
    const row = document.createElement('tr');
    const th = document.createElement('th');
    th.textContent = name;
    const td = document.createElement('td');
    td.textContent = value;
    row.append(th, td);
    return row;
  }));
}

async function start(): Promise<void> {
  const harts = queryNumber('smp', 1, 1, 32);
  const memoryBytes = queryNumber('mem', 512, 64, 2048) * MIB;
  if (!crossOriginIsolated) {
    notice.textContent = 'This page is not cross-origin isolated (its server sends no COOP/COEP headers): machine RAM falls back to ' +
      'a plain ArrayBuffer. One thread still works; see docs/browser.md.';
  }
  const status = (text: string): void => { progressLine.textContent = text; };
  const manifestResponse = await fetch('guest/manifest.json');
  if (!manifestResponse.ok) throw new Error(`cannot fetch guest/manifest.json: ${manifestResponse.status} (was the page made by \`mirrorball web build\`?)`);
  const manifest = await manifestResponse.json() as GuestManifest;
  const kernel = await fetchBytes(manifest.kernel, 'kernel', status);
  const initrd = await fetchBytes(manifest.initrd, 'initramfs', status);
  status('starting the machine');
  const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  const send = (message: ToWorker, transfer: Transferable[] = []): void => worker.postMessage(message, transfer);
  const encoder = new TextEncoder();
  terminal.onData((data) => send({ type: 'input', bytes: encoder.encode(data) }));
  worker.onmessage = (event: MessageEvent<FromWorker>) => {
    const message = event.data;
    switch (message.type) {
      case 'output': {
        terminal.write(message.bytes);
        const text = decoder.decode(message.bytes, { stream: true });
        transcript += text;
        lastLine.add(text);
        break;
      }
      case 'stats': showStats(message); break;
      case 'exit': progressLine.textContent = `${message.reason} · ${latest?.instructions.toLocaleString('en') ?? 0} instructions`; break;
      case 'error': fail(message.message); break;
    }
  };
  worker.onerror = (event) => fail(`the machine's worker failed: ${event.message}`);
  send({ type: 'boot', kernel, initrd, append: manifest.append, harts, memoryBytes }, [kernel, initrd]);
}

function fail(message: string): void {
  progressLine.textContent = `error: ${message}`;
  progressLine.classList.add('error');
}

/** For tests and the benchmark: what the console printed, and the last statistics. */
(globalThis as unknown as { mirrorballTab: unknown }).mirrorballTab = {
  transcript: () => transcript,
  stats: () => latest,
  /** How many intervals the charts of where time goes have drawn: the machine's and each hart's. */
  samples: () => views.samples,
};

start().catch((error: unknown) => fail(error instanceof Error ? error.message : String(error)));
