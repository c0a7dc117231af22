// The machine in a Web Worker: built, booted and run in the same rounds as `mirrorball run` (board/run-loop.ts),
// its console bytes and statistics posted to the page after each batch (statistics 10 times a second), typed bytes taken at the next yield.

import { bootLinux } from '../../board/boot.js';
import { layoutMachine, type MachineConfig } from '../../board/address-map.js';
import { MachineHardware } from '../../board/hardware.js';
import { Machine, type ExitReason } from '../../board/machine.js';
import { runMachineOn, type HostLoop } from '../../board/run-loop.js';
import { TIMEBASE_HZ } from '../../timing/clock.js';
import { PRIV_M, PRIV_S, PRIV_U } from '../../isa/opcodes.js';
import type { FromWorker, HartTime, ToWorker } from './protocol.js';

/** The worker's global scope, as far as this file uses it (the project compiles without the WebWorker lib). */
interface WorkerScope {
  postMessage(message: FromWorker, transfer?: Transferable[]): void;
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
}
const scope = globalThis as unknown as WorkerScope;

/**
 * The browser's clock and yields. setTimeout(0) is clamped to 4 ms once nested, a fifth of a 20 ms batch, so
 * the loop yields through a MessageChannel instead: its message is a task queued behind the page's input.
 */
function browserLoop(): HostLoop {
  const channel = new MessageChannel();
  const waiting: (() => void)[] = [];
  channel.port1.onmessage = () => waiting.shift()?.();
  return {
    now: () => performance.now(),
    yield: () => new Promise((resolve) => { waiting.push(resolve); channel.port2.postMessage(0); }),
    sleep: (ms) => new Promise((resolve) => { setTimeout(resolve, ms); }),
  };
}

/** Host milliseconds between two statistics reports to the page (10 a second). */
const STATS_EVERY_MS = 100;

let machine: Machine | undefined;
const pending: Uint8Array[] = [];
let pendingBytes = 0;

function post(message: FromWorker): void {
  if (message.type === 'output') scope.postMessage(message, [message.bytes.buffer as ArrayBuffer]);
  else scope.postMessage(message);
}

function flushOutput(): void {
  if (pendingBytes === 0) return;
  const bytes = new Uint8Array(pendingBytes);
  let at = 0;
  for (const chunk of pending) { bytes.set(chunk, at); at += chunk.length; }
  pending.length = 0;
  pendingBytes = 0;
  post({ type: 'output', bytes });
}

function describe(exit: ExitReason): string {
  switch (exit.kind) {
    case 'poweroff': return `the guest powered off (status ${exit.code})`;
    case 'reboot': return 'the guest asked for a reboot; stopped';
    case 'htif': return `the program exited (status ${exit.code})`;
    case 'limit': return 'instruction limit reached';
    case 'quit': return 'stopped';
  }
}

async function boot(request: Extract<ToWorker, { type: 'boot' }>): Promise<void> {
  // As `mirrorball run --smp N -m M`: one node with every hart and all the memory.
  const config: MachineConfig = { harts: request.harts, nodes: [{ memoryBytes: request.memoryBytes, harts: Array.from({ length: request.harts }, (_, h) => h) }] };
  const m = new Machine({
    config,
    builtinSbi: true,
    console: (bytes) => { pending.push(bytes.slice()); pendingBytes += bytes.length; },
    log: (message) => { const text = new TextEncoder().encode(`\r\nmirrorball: ${message}\r\n`); pending.push(text); pendingBytes += text.length; },
    hardware: new MachineHardware(layoutMachine(config)),
  });
  bootLinux(m, { kernel: new Uint8Array(request.kernel), initrd: new Uint8Array(request.initrd), append: request.append });
  machine = m;
  const started = performance.now();
  let reported = -Infinity;
  const report = (final = false): void => {
    flushOutput();
    // Console bytes go at once (typing echoes); statistics at most STATS_EVERY_MS apart: an idle paced
    // machine ends a batch every 2 ms, and the page need not redraw its table 500 times a second.
    const now = performance.now();
    if (!final && now - reported < STATS_EVERY_MS) return;
    reported = now;
    const busy = m.harts.filter((h) => !h.parked && !h.suspended && !(h.waiting && !h.wakeable)).length;
    const perHart: HartTime[] = m.harts.map((h) => ({
      user: h.cyclesAt(PRIV_U), kernel: h.cyclesAt(PRIV_S) + h.cyclesAt(PRIV_M), idle: h.idleCycles,
      state: h.parked || h.suspended ? 'off' : h.waiting && !h.wakeable ? 'wfi' : 'running',
    }));
    post({
      type: 'stats', instructions: m.instructions, guestSeconds: m.clock.now() / TIMEBASE_HZ, hostMs: performance.now() - started, harts: m.harts.length, busyHarts: busy,
      cycles: m.cycles, memoryBytes: request.memoryBytes, perHart,
    });
  };
  // Paced, as `run` is when someone may type: a guest waiting for the keyboard waits in host time.
  const exit = await runMachineOn(browserLoop(), m, { pace: true, onBatch: () => report() });
  report(true);
  post({ type: 'exit', reason: describe(exit) });
}

scope.onmessage = (event) => {
  const message = event.data;
  if (message.type === 'input') {
    machine?.uart.input(message.bytes);
    return;
  }
  if (machine !== undefined) return;
  boot(message).catch((error: unknown) => {
    flushOutput();
    post({ type: 'error', message: error instanceof Error ? error.message : String(error) });
  });
};
