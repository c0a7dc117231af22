// The messages between the page (main.ts) and the worker that runs the machine (worker.ts).

/** The page asks the worker to build a machine and boot Linux on it. */
export interface BootRequest {
  type: 'boot';
  kernel: ArrayBuffer;
  initrd: ArrayBuffer;
  append: string;
  harts: number;
  memoryBytes: number;
}

/** Bytes typed into the terminal, for the UART. */
export interface InputMessage {
  type: 'input';
  bytes: Uint8Array;
}

export type ToWorker = BootRequest | InputMessage;

/** What the worker reports, at most every 100 ms of host time, and when the machine stops. */
export interface StatsMessage {
  type: 'stats';
  /** Instructions of every hart together since power-on. */
  instructions: number;
  /** Guest time in seconds (the 10 MHz timebase). */
  guestSeconds: number;
  /** Host milliseconds since the worker's machine started running (performance.now()). */
  hostMs: number;
  harts: number;
  /** Harts doing work now (not parked, not waiting in WFI). */
  busyHarts: number;
  /** The machine's time in cycles (a hart's idle cycles are part of it). */
  cycles: number;
  memoryBytes: number;
  /** Per hart, where its time went so far, in cycles, and what it does now: the dashboard's views draw them. */
  perHart: HartTime[];
}

export interface HartTime {
  user: number;
  /** S and M mode: the guest's kernel and the built-in SBI. */
  kernel: number;
  idle: number;
  state: 'running' | 'wfi' | 'off';
}

export type FromWorker =
  | { type: 'output'; bytes: Uint8Array }
  | StatsMessage
  | { type: 'exit'; reason: string }
  | { type: 'error'; message: string };
