// A booted guest driven through its console agent: what end-to-end tests and tools use to run commands in Linux.

import { statSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { bootLinux } from '../board/boot.js';
import { Machine, type ExitReason } from '../board/machine.js';
import { VirtioConsole } from '../devices/virtio/console.js';
import type { MachineConfig } from '../board/address-map.js';
import { AgentProtocol, type AgentResult } from './agent-protocol.js';
import { attachDrives, type DriveSpec, type OpenDrive } from '../host/drives.js';
import { runMachine } from '../host/runner.js';
import { decodeSnapshot, encodeSnapshot } from '../host/snapshot-file.js';
import { restoreMachine, saveMachine } from '../board/snapshot.js';
import { StateError, StateReader } from '../memory/state.js';
import { machineDisks } from '../board/disk-pages.js';
import { readSavedClusters } from '../devices/virtio/cow-block.js';

export interface GuestSessionOptions {
  kernel: Uint8Array;
  initrd?: Uint8Array;
  /** Kernel arguments added after `console=ttyS0 mb.agent=1`. */
  append?: string;
  config: MachineConfig;
  drives?: DriveSpec[];
  /** M-mode firmware; without it the built-in SBI. */
  firmware?: Uint8Array;
  /** Give up on the boot after this many instructions (all harts). Default 20 billion. */
  maxInstructions?: number;
  /**
   * Keep guest time from running ahead of host time while the guest idles. Needed when the guest waits on
   * something outside its machine (a network peer in another machine): otherwise an idle guest skips
   * ahead to its next timer and its timeouts expire before the peer has run at all. Default false.
   */
  pace?: boolean;
  /**
   * Which console the agent talks over: the ns16550a UART (`ttyS0`, default) or a virtio console (plugged in
   * after the drives). The virtio console is `hvc1`: the guest kernel's `hvc0` is the SBI console.
   */
  console?: 'uart' | 'virtio';
  /**
   * Host wall-clock milliseconds that booting to the agent, and then each command, may take before the
   * session gives up on it (a guest that never answers must fail a test, not hang it). Default 10 minutes.
   */
  timeoutMs?: number;
  /**
   * Give the guest commands, typed input and the power-off request only at moments when every hart idles
   * and no command is running, and hold guest time at such a moment while the host has nothing for it:
   * everything then reaches the guest at the same guest instant whatever the host's speed, so the whole
   * run (statistics included) reproduces exactly. A guest that never idles never gets its next command.
   * Not with `pace`, nor for a guest that must answer something else (a network peer). Default false.
   */
  holdIdle?: boolean;
  /** Called with the machine before it boots, to plug in more devices (after the drives). */
  configure?: (machine: Machine) => void;
  /** Called with every console line outside the agent protocol (kernel messages, shell output). */
  onConsoleLine?: (line: string) => void;
  /**
   * Continue a session saved by `snapshot()` instead of booting: the same options must be given again
   * (kernel and initrd are then unused). An agent that was ready when saved is ready at once, nothing said to
   * the guest, so a restored session goes on exactly as the saved one would have; one that was not is asked
   * to announce itself.
   */
  restore?: Uint8Array;
}

export class GuestSessionError extends Error {}

const AGENT_APPEND = { uart: 'console=ttyS0 mb.agent=1', virtio: 'console=hvc1 mb.agent=1' } as const;
const DEFAULT_MAX_INSTRUCTIONS = 20e9;
const DEFAULT_TIMEOUT_MS = 10 * 60_000;
const encoder = new TextEncoder();

/** `drives` as a session's snapshot `saved` left them: each snapshot=on disk with its changed clusters. Throws StateError. */
function withSavedClusters(drives: readonly DriveSpec[], saved: StateReader | undefined): DriveSpec[] {
  if (saved === undefined || !saved.has('disks')) return [...drives];
  const clusters = saved.array('disks', (v) => v, drives.length);
  return drives.map((drive, k) => {
    const value = clusters[k];
    if ((value === null) !== (drive.snapshot !== true || drive.overlay !== undefined)) throw new StateError(`session snapshot.disks[${k}]: saved as another kind of disk`);
    return value === null ? drive : { ...drive, clusters: readSavedClusters(value, statSync(drive.file).size, `session snapshot.disks[${k}]`) };
  });
}
/** How much of the console the session keeps for error messages. */
const TRANSCRIPT_BYTES = 64 * 1024;

/**
 * One machine running Linux with the guest agent. `exec` runs a shell command in the guest and resolves
 * with its output and status; `poweroff` stops the guest cleanly. The console transcript is kept for
 * error messages. Everything runs in this process, on the event loop, deterministically.
 */
export class GuestSession {
  readonly machine: Machine;
  private readonly agent: AgentProtocol;
  private readonly disks: OpenDrive[];
  private readonly running: Promise<ExitReason>;
  private transcript = '';
  /** Where typed bytes go: the UART, or the virtio console when the session uses it. */
  private typeBytes: (bytes: Uint8Array) => void = (bytes) => this.machine.uart.input(bytes);
  private stopped: ExitReason | undefined;
  private readonly timeoutMs: number;
  private readonly holdIdle: boolean;
  /** holdIdle: what the host has for the guest, given at the next idle moment, one at a time. */
  private readonly deferred: (() => void)[] = [];
  /** Wakes a runner holding an idle guest (holdIdle) when the host has something for it. */
  private release: (() => void) | undefined;
  /** Instructions executed (counted at the start of the round) when the agent's READY arrived. */
  bootInstructions: number | undefined;
  /** Every console line before READY: the boot, byte for byte reproducible. */
  bootConsole = '';
  readonly started = performance.now();
  private readonly config: MachineConfig;

  private constructor(options: GuestSessionOptions) {
    if (options.holdIdle === true && options.pace === true) throw new GuestSessionError('holdIdle and pace exclude each other');
    let machine!: Machine;
    const consoleKind = options.console ?? 'uart';
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.agent = new AgentProtocol({
      send: (bytes) => this.typeBytes(bytes),
      onOther: (line) => {
        this.transcript = `${this.transcript}${line}\n`.slice(-TRANSCRIPT_BYTES);
        if (this.bootInstructions === undefined) this.bootConsole += `${line}\n`;
        options.onConsoleLine?.(line);
      },
    });
    machine = new Machine({
      config: options.config,
      builtinSbi: options.firmware === undefined,
      // MIRRORBALL_TRANSLATE=0 interprets every instruction, to bisect the block translator.
      translate: process.env.MIRRORBALL_TRANSLATE !== '0',
      console: (bytes) => this.consoleOutput(bytes),
    });
    this.machine = machine;
    const saved = options.restore === undefined ? undefined : new StateReader(decodeSnapshot(options.restore), 'session snapshot');
    this.disks = attachDrives(machine, withSavedClusters(options.drives ?? [], saved));
    if (consoleKind === 'virtio') {
      const virtioConsole = new VirtioConsole({ onOutput: (bytes) => this.consoleOutput(bytes) });
      machine.attachVirtio(virtioConsole);
      this.typeBytes = (bytes) => virtioConsole.input(bytes);
    }
    options.configure?.(machine);
    this.config = options.config;
    if (saved !== undefined) {
      restoreMachine(machine, saved.value('machine'));
      const session = saved.object('session');
      this.agent.continueFrom(session.number('nextCommandId', 1));
      // The boot happened in the saved session: its console is not this one's.
      this.bootInstructions = machine.instructions;
      if (session.has('ready') && session.boolean('ready')) this.agent.readyAgain();
      else this.agent.ping();
    } else {
      bootLinux(machine, {
        kernel: options.kernel,
        initrd: options.initrd,
        append: options.append === undefined ? AGENT_APPEND[consoleKind] : `${AGENT_APPEND[consoleKind]} ${options.append}`,
        firmware: options.firmware,
      });
    }
    this.holdIdle = options.holdIdle === true;
    const waitingForHost = (): boolean => this.agent.ready && !this.agent.busy;
    const idleHold = this.holdIdle ? {
      waitingForHost,
      atIdle: (): boolean => {
        if (!waitingForHost()) return false;
        const next = this.deferred.shift();
        if (next === undefined) return true;
        next();
        machine.pollDevices(); // the input is there at once, not after a skip to the next timer
        return false;
      },
      whenReleased: () => new Promise<void>((resolve) => { this.release = resolve; }),
    } : undefined;
    this.running = runMachine(machine, { maxInstructions: options.maxInstructions ?? DEFAULT_MAX_INSTRUCTIONS, pace: options.pace, idleHold }).then((exit) => {
      this.stopped = exit;
      for (const disk of this.disks) disk.close();
      for (const action of this.deferred.splice(0)) action(); // into the agent, which fails them just below
      this.agent.abort(`the guest stopped (${describeExit(exit)}) before answering; console ends with:\n${this.tail()}`);
      return exit;
    });
  }

  private consoleOutput(bytes: Uint8Array): void {
    this.agent.feed(bytes);
    if (this.bootInstructions === undefined && this.agent.ready) this.bootInstructions = this.machine.instructions;
  }

  /** Boots and waits for the agent's READY. */
  static async boot(options: GuestSessionOptions): Promise<GuestSession> {
    const session = new GuestSession(options);
    const ready = session.agent.whenReady();
    const exit = session.running.then((e) => e);
    const first = await session.withTimeout(Promise.race([ready.then(() => undefined), exit]), 'its agent to be ready').catch(async (error) => {
      await session.kill();
      throw error;
    });
    if (first !== undefined) {
      throw new GuestSessionError(`the guest stopped (${describeExit(first)}) before its agent was ready; console ends with:\n${session.tail()}`);
    }
    return session;
  }

  /** Runs `command` with sh in the guest. */
  exec(command: string): Promise<AgentResult> {
    if (this.stopped !== undefined) return Promise.reject(new GuestSessionError(`the guest has stopped (${describeExit(this.stopped)})`));
    const result = new Promise<AgentResult>((resolve, reject) => this.deliver(() => this.agent.exec(command).then(resolve, reject)));
    return this.withTimeout(result, `command ${JSON.stringify(command.slice(0, 60))}`);
  }

  /**
   * Runs `action` on the machine at the guest's next idle moment with no command running (with holdIdle;
   * at once without): a host-side change (a mode switch) or reading counters then lands at the same guest
   * instant in every run, whatever the host's speed.
   */
  atIdle<T>(action: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => this.deliver(settle(action, resolve, reject)));
  }

  /** Does `action` now, or with holdIdle at the guest's next idle moment (and wakes a held runner). */
  private deliver(action: () => void): void {
    if (!this.holdIdle) {
      action();
      return;
    }
    this.deferred.push(action);
    this.wake();
  }

  /** Lets a held guest run on (holdIdle). */
  private wake(): void {
    const release = this.release;
    this.release = undefined;
    release?.();
  }

  /** Rejects (and fails the agent's commands) when `promise` has not settled within the session's timeout. */
  private withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const message = `waited ${this.timeoutMs / 1000} s for ${what}; console ends with:\n${this.tail()}`;
        reject(new GuestSessionError(message)); // first, so that the race settles with this error
        this.agent.abort(message);
      }, this.timeoutMs);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }

  /** Types raw bytes on the console (outside the agent protocol). */
  type(text: string): void {
    const bytes = encoder.encode(text);
    this.deliver(() => this.typeBytes(bytes));
  }

  /** Asks the guest to power off and waits for the machine to stop. */
  async poweroff(): Promise<ExitReason> {
    if (this.stopped === undefined) {
      // The agent answers nothing once the machine is gone: the command's own failure is expected.
      this.deliver(() => { this.agent.exec('sync; poweroff -f').catch(() => {}); });
    }
    return this.running;
  }

  /** Stops the machine at once (like pulling the plug), for a test that failed midway. */
  async kill(): Promise<void> {
    if (this.stopped === undefined) this.machine.stopWith({ kind: 'quit' });
    this.wake();
    await this.running;
  }

  /** The last lines the console printed outside the protocol. */
  tail(lines = 30): string {
    return this.transcript.trimEnd().split('\n').slice(-lines).join('\n');
  }

  /**
   * The whole session as bytes (the machine, and the agent's next command id), for `restore`: taken at the
   * guest's next idle moment with no command running (with holdIdle; at once, between rounds, without).
   * Disk images are not in it: a restore opens the same images, which must not have changed; a snapshot=on
   * disk's changed clusters are (`disks`, per drive, null for another).
   */
  snapshot(): Promise<Uint8Array> {
    return this.atIdle(() => {
      if (this.agent.busy) throw new GuestSessionError('a command is running');
      const disks = machineDisks(this.machine).slice(0, this.disks.length).map((d) => d.savedClusters() ?? null);
      return encodeSnapshot({ machine: saveMachine(this.machine, this.config), session: { nextCommandId: this.agent.nextCommandId, ready: this.agent.ready }, disks });
    });
  }

  /** Instructions executed so far by all harts. */
  get instructions(): number {
    return this.machine.instructions;
  }
}

function describeExit(exit: ExitReason): string {
  switch (exit.kind) {
    case 'poweroff': return `powered off with code ${exit.code}`;
    case 'htif': return `HTIF exit ${exit.code}`;
    case 'reboot': return 'reboot';
    case 'limit': return 'instruction limit reached';
    case 'quit': return 'stopped by the host';
  }
}

/** `action` to run later, its value or error handed to a promise's resolve or reject. */
export function settle<T>(action: () => T, resolve: (value: T) => void, reject: (error: unknown) => void): () => void {
  return () => {
    try {
      resolve(action());
    } catch (error) {
      reject(error);
    }
  };
}
