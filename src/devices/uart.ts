// The ns16550a UART of the virt board: enough of the National Semiconductor PC16550D for Linux's 8250 driver.

import type { AccessSize, Device, IrqLine } from '../memory/device.js';
import { StateError, StateReader } from '../memory/state.js';
import { ByteQueue } from './byte-queue.js';
import type { Pollable } from './pollable.js';

// Register offsets (PC16550D datasheet, table II; reg-shift 0 as on QEMU virt).
const RBR_THR_DLL = 0;
const IER_DLM = 1;
const IIR_FCR = 2;
const LCR = 3;
const MCR = 4;
const LSR = 5;
const MSR = 6;
const SCR = 7;

// Interrupt Enable Register bits.
const IER_RX_DATA = 0x01;
const IER_THR_EMPTY = 0x02;
const IER_LINE_STATUS = 0x04;
const IER_MODEM_STATUS = 0x08;
const IER_WRITABLE = 0x0f;

// Interrupt Identification Register values, highest priority first (datasheet table IV).
const IIR_NO_INTERRUPT = 0x01;
const IIR_LINE_STATUS = 0x06;
const IIR_RX_DATA = 0x04;
const IIR_RX_TIMEOUT = 0x0c;
const IIR_THR_EMPTY = 0x02;
const IIR_MODEM_STATUS = 0x00;
const IIR_FIFOS_ENABLED = 0xc0;

// FIFO Control Register bits.
const FCR_ENABLE = 0x01;
const FCR_CLEAR_RX = 0x02;
const FCR_TRIGGER_SHIFT = 6;
/** Receiver trigger levels selected by FCR bits 7:6. */
const RX_TRIGGER_LEVELS = [1, 4, 8, 14];

const LCR_DLAB = 0x80;

// Modem Control Register bits.
const MCR_DTR = 0x01;
const MCR_RTS = 0x02;
const MCR_OUT1 = 0x04;
const MCR_OUT2 = 0x08;
const MCR_LOOPBACK = 0x10;
const MCR_WRITABLE = 0x1f;

// Line Status Register bits.
const LSR_DATA_READY = 0x01;
const LSR_OVERRUN = 0x02;
const LSR_THR_EMPTY = 0x20;
const LSR_TRANSMITTER_EMPTY = 0x40;

// Modem Status Register bits: deltas in 3:0, lines in 7:4.
const MSR_CTS = 0x10;
const MSR_DSR = 0x20;
const MSR_RI = 0x40;
const MSR_DCD = 0x80;
const MSR_DELTAS = 0x0f;
/** Outside loopback the host side is always "connected": CTS, DSR and DCD asserted. */
const MSR_CONNECTED = MSR_CTS | MSR_DSR | MSR_DCD;

const FIFO_DEPTH = 16;

export interface UartOptions {
  /** Called with every byte the guest transmits (outside loopback mode). */
  onOutput?: (byte: number) => void;
  /** The interrupt line to the PLIC. */
  irq?: IrqLine;
}

/**
 * The transmitter is infinitely fast: a byte written to THR leaves at once, so THR and the shift register
 * always read empty. Received bytes wait in a host-side queue until `poll()` moves them into the 16-byte
 * FIFO, so input is never lost to overrun and arrives at a reproducible moment.
 */
export interface UartState {
  /** Bytes the host typed that have not reached the FIFO yet. */
  hostInput: Uint8Array;
  rxFifo: Uint8Array;
  ier: number;
  fcr: number;
  lcr: number;
  mcr: number;
  lsrErrors: number;
  msrDeltas: number;
  scratch: number;
  divisor: number;
  thrInterrupt: boolean;
  irqLevel: boolean;
}

export class Uart implements Device, Pollable {
  readonly name = 'ns16550a';
  private readonly onOutput: (byte: number) => void;
  private readonly irq: IrqLine;
  private readonly hostInput = new ByteQueue();
  private readonly rxFifo: number[] = [];
  private ier = 0;
  private fcr = 0;
  private lcr = 0;
  private mcr = 0;
  private lsrErrors = 0;
  private msrDeltas = 0;
  private scratch = 0;
  private divisor = 0;
  /** The THR-empty interrupt is latched: reading IIR while it is reported, or writing THR, clears it. */
  private thrInterrupt = false;
  private irqLevel = false;

  constructor(options: UartOptions = {}) {
    this.onOutput = options.onOutput ?? (() => {});
    this.irq = options.irq ?? (() => {});
  }

  /** Queues bytes from the host for the guest to receive (up to MAX_QUEUED_INPUT waiting); they enter the FIFO at the next `poll()`. */
  input(bytes: Uint8Array | readonly number[]): void {
    this.hostInput.push(bytes);
  }

  /** Bytes queued by `input()` and not yet moved into the FIFO. */
  get queuedInput(): number {
    return this.hostInput.length;
  }

  /** Bytes `input()` dropped because MAX_QUEUED_INPUT were already waiting. */
  get droppedInput(): number {
    return this.hostInput.dropped;
  }

  /** The registers, FIFO and waiting input as plain data (snapshots, docs/snapshots.md). */
  saveState(): UartState {
    return {
      hostInput: this.hostInput.contents(), rxFifo: Uint8Array.from(this.rxFifo), ier: this.ier, fcr: this.fcr, lcr: this.lcr,
      mcr: this.mcr, lsrErrors: this.lsrErrors, msrDeltas: this.msrDeltas, scratch: this.scratch, divisor: this.divisor,
      thrInterrupt: this.thrInterrupt, irqLevel: this.irqLevel,
    };
  }

  /** Puts saved state back, checked first; the interrupt wire does not move (the PLIC's state is restored too). */
  restoreState(state: unknown): void {
    const r = new StateReader(state, 'uart');
    const hostInput = r.typed('hostInput', Uint8Array);
    const rxFifo = r.typed('rxFifo', Uint8Array);
    if (rxFifo.length > FIFO_DEPTH) throw new StateError(`uart.rxFifo: ${rxFifo.length} bytes in a ${FIFO_DEPTH}-byte FIFO`);
    const byte = (key: string): number => r.number(key, 0, 0xff);
    const [ier, fcr, lcr, mcr, lsrErrors, msrDeltas, scratch] = ['ier', 'fcr', 'lcr', 'mcr', 'lsrErrors', 'msrDeltas', 'scratch'].map(byte);
    const divisor = r.number('divisor', 0, 0xffff);
    const thrInterrupt = r.boolean('thrInterrupt');
    const irqLevel = r.boolean('irqLevel');
    this.hostInput.clear();
    this.hostInput.push(hostInput);
    this.rxFifo.length = 0;
    this.rxFifo.push(...rxFifo);
    this.ier = ier!;
    this.fcr = fcr!;
    this.lcr = lcr!;
    this.mcr = mcr!;
    this.lsrErrors = lsrErrors!;
    this.msrDeltas = msrDeltas!;
    this.scratch = scratch!;
    this.divisor = divisor;
    this.thrInterrupt = thrInterrupt;
    this.irqLevel = irqLevel;
  }

  poll(): void {
    if (this.loopback) return; // in loopback the receiver listens only to the transmitter
    for (const byte of this.hostInput.take(this.rxCapacity - this.rxFifo.length)) this.rxFifo.push(byte);
    this.updateIrq();
  }

  read(offset: number, _size: AccessSize, _hart: number): number {
    const dlab = (this.lcr & LCR_DLAB) !== 0;
    switch (offset) {
      case RBR_THR_DLL:
        return dlab ? this.divisor & 0xff : this.receive();
      case IER_DLM:
        return dlab ? this.divisor >>> 8 : this.ier;
      case IIR_FCR:
        return this.readIir();
      case LCR:
        return this.lcr;
      case MCR:
        return this.mcr;
      case LSR: {
        const value = this.lsr();
        this.lsrErrors = 0; // error bits clear on read (datasheet, LSR description)
        this.updateIrq();
        return value;
      }
      case MSR: {
        const value = this.msrLines() | this.msrDeltas;
        this.msrDeltas = 0;
        this.updateIrq();
        return value;
      }
      case SCR:
        return this.scratch;
      default:
        return 0;
    }
  }

  write(offset: number, _size: AccessSize, value: number, _hart: number): void {
    const byte = value & 0xff;
    const dlab = (this.lcr & LCR_DLAB) !== 0;
    switch (offset) {
      case RBR_THR_DLL:
        if (dlab) this.divisor = (this.divisor & 0xff00) | byte;
        else this.transmit(byte);
        break;
      case IER_DLM:
        if (dlab) {
          this.divisor = (this.divisor & 0x00ff) | (byte << 8);
        } else {
          // Enabling the THR-empty interrupt while THR is empty raises it at once; Linux's THRE test
          // in serial8250_do_startup depends on this edge.
          if ((byte & IER_THR_EMPTY) !== 0 && (this.ier & IER_THR_EMPTY) === 0) this.thrInterrupt = true;
          this.ier = byte & IER_WRITABLE;
        }
        break;
      case IIR_FCR:
        this.writeFcr(byte);
        break;
      case LCR:
        this.lcr = byte;
        break;
      case MCR:
        this.writeMcr(byte & MCR_WRITABLE);
        break;
      case SCR:
        this.scratch = byte;
        break;
      default:
        break; // LSR and MSR are read-only; the rest of the window is unused
    }
    this.updateIrq();
  }

  private get loopback(): boolean {
    return (this.mcr & MCR_LOOPBACK) !== 0;
  }

  private get fifoEnabled(): boolean {
    return (this.fcr & FCR_ENABLE) !== 0;
  }

  /** Without FIFOs the receiver holds one byte (the 16450 mode). */
  private get rxCapacity(): number {
    return this.fifoEnabled ? FIFO_DEPTH : 1;
  }

  private receive(): number {
    const byte = this.rxFifo.shift() ?? 0;
    this.updateIrq();
    return byte;
  }

  private transmit(byte: number): void {
    if (this.loopback) {
      if (this.rxFifo.length < this.rxCapacity) this.rxFifo.push(byte);
      else this.lsrErrors |= LSR_OVERRUN;
    } else {
      this.onOutput(byte);
    }
    // The byte left at once, so THR is empty again and the interrupt re-arms.
    this.thrInterrupt = true;
  }

  private writeFcr(byte: number): void {
    if (((byte ^ this.fcr) & FCR_ENABLE) !== 0) this.rxFifo.length = 0; // toggling FIFO mode clears them
    if ((byte & FCR_CLEAR_RX) !== 0) this.rxFifo.length = 0;
    this.fcr = byte & ~FCR_CLEAR_RX & 0xff;
  }

  private writeMcr(byte: number): void {
    const before = this.msrLines();
    this.mcr = byte;
    const after = this.msrLines();
    // Delta bits (datasheet, MSR description); TERI is set only on the trailing edge of RI.
    const changed = before ^ after;
    if (changed & MSR_CTS) this.msrDeltas |= 0x01;
    if (changed & MSR_DSR) this.msrDeltas |= 0x02;
    if (before & MSR_RI && !(after & MSR_RI)) this.msrDeltas |= 0x04;
    if (changed & MSR_DCD) this.msrDeltas |= 0x08;
  }

  /** In loopback the modem inputs are wired to the modem outputs (datasheet, MCR bit 4). */
  private msrLines(): number {
    if (!this.loopback) return MSR_CONNECTED;
    let lines = 0;
    if (this.mcr & MCR_RTS) lines |= MSR_CTS;
    if (this.mcr & MCR_DTR) lines |= MSR_DSR;
    if (this.mcr & MCR_OUT1) lines |= MSR_RI;
    if (this.mcr & MCR_OUT2) lines |= MSR_DCD;
    return lines;
  }

  private lsr(): number {
    return (this.rxFifo.length > 0 ? LSR_DATA_READY : 0) | LSR_THR_EMPTY | LSR_TRANSMITTER_EMPTY | this.lsrErrors;
  }

  /** The highest-priority pending interrupt, as IIR bits 3:0. */
  private pendingInterrupt(): number {
    if (this.ier & IER_LINE_STATUS && this.lsrErrors !== 0) return IIR_LINE_STATUS;
    if (this.ier & IER_RX_DATA && this.rxFifo.length > 0) {
      // Below the trigger level the FIFO reports a character timeout; we raise it at once rather than
      // after four character times, which Linux handles the same way.
      const trigger = this.fifoEnabled ? RX_TRIGGER_LEVELS[this.fcr >>> FCR_TRIGGER_SHIFT] : 1;
      return this.rxFifo.length >= trigger ? IIR_RX_DATA : IIR_RX_TIMEOUT;
    }
    if (this.ier & IER_THR_EMPTY && this.thrInterrupt) return IIR_THR_EMPTY;
    if (this.ier & IER_MODEM_STATUS && this.msrDeltas !== 0) return IIR_MODEM_STATUS;
    return IIR_NO_INTERRUPT;
  }

  private readIir(): number {
    const id = this.pendingInterrupt();
    if (id === IIR_THR_EMPTY) this.thrInterrupt = false; // reading IIR acknowledges THRE
    this.updateIrq();
    return id | (this.fifoEnabled ? IIR_FIFOS_ENABLED : 0);
  }

  private updateIrq(): void {
    const level = this.pendingInterrupt() !== IIR_NO_INTERRUPT;
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      this.irq(level);
    }
  }
}
