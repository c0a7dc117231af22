// Tests of the ns16550a UART through its registers, as Linux's 8250 driver uses them.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Uart } from './uart.js';

const THR = 0, RBR = 0, IER = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7;
const HART = 0;

function setup() {
  const output: number[] = [];
  const irq: boolean[] = [];
  const uart = new Uart({ onOutput: (byte) => output.push(byte), irq: (level) => irq.push(level) });
  const rd = (offset: number) => uart.read(offset, 1, HART);
  const wr = (offset: number, value: number) => uart.write(offset, 1, value, HART);
  const level = () => irq.at(-1) ?? false;
  return { uart, output, irq, rd, wr, level };
}

describe('Uart', () => {
  it('transmits THR bytes to the backend and always reads THR empty', () => {
    const { output, rd, wr } = setup();
    for (const c of 'hi\n') wr(THR, c.charCodeAt(0));
    assert.deepEqual(output, [0x68, 0x69, 0x0a]);
    assert.equal(rd(LSR) & 0x60, 0x60);
  });

  it('keeps the divisor latch apart from THR and IER while DLAB is set', () => {
    const { output, rd, wr } = setup();
    wr(LCR, 0x83);
    wr(0, 0x01);
    wr(1, 0x02);
    assert.equal(rd(0), 0x01);
    assert.equal(rd(1), 0x02);
    wr(LCR, 0x03);
    assert.equal(rd(IER), 0);
    assert.deepEqual(output, []);
    assert.equal(rd(LCR), 0x03);
  });

  it('stores the scratch register', () => {
    const { rd, wr } = setup();
    wr(SCR, 0xa5);
    assert.equal(rd(SCR), 0xa5);
  });

  it('passes the THRE test of serial8250_do_startup', () => {
    const { rd, wr, level } = setup();
    wr(IER, 0x02);
    const iir1 = rd(IIR);
    wr(IER, 0);
    wr(IER, 0x02);
    const iir2 = rd(IIR);
    wr(IER, 0);
    assert.equal(iir1 & 0x0f, 0x02);
    assert.equal(iir2 & 0x0f, 0x02);
    assert.equal(level(), false);
  });

  it('raises THRE after each transmitted byte and clears it on an IIR read', () => {
    const { rd, wr, level } = setup();
    wr(IER, 0x02);
    assert.equal(level(), true);
    assert.equal(rd(IIR) & 0x0f, 0x02);
    assert.equal(level(), false);
    assert.equal(rd(IIR) & 0x0f, 0x01);
    wr(THR, 0x41);
    assert.equal(level(), true);
    wr(IER, 0);
    assert.equal(level(), false);
  });

  it('delivers host input at poll() only, up to the FIFO depth, without losing bytes', () => {
    const { uart, rd, wr, level } = setup();
    wr(FCR, 0x07); // enable and clear FIFOs, trigger level 1
    wr(IER, 0x01);
    uart.input(Array.from({ length: 20 }, (_, i) => i));
    assert.equal(rd(LSR) & 0x01, 0, 'nothing before poll');
    uart.poll();
    assert.equal(level(), true);
    assert.equal(rd(IIR), 0xc4);
    assert.equal(uart.queuedInput, 4);
    const got: number[] = [];
    while (rd(LSR) & 0x01) got.push(rd(RBR));
    assert.equal(level(), false);
    uart.poll();
    while (rd(LSR) & 0x01) got.push(rd(RBR));
    assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => i));
    assert.equal(rd(LSR) & 0x02, 0, 'no overrun');
  });

  it('reports a character timeout below the trigger level', () => {
    const { uart, rd, wr } = setup();
    wr(FCR, 0xc1); // trigger level 14
    wr(IER, 0x01);
    uart.input([1, 2, 3]);
    uart.poll();
    assert.equal(rd(IIR) & 0x0f, 0x0c);
  });

  it('holds one byte when FIFOs are disabled', () => {
    const { uart, rd } = setup();
    uart.input([7, 8]);
    uart.poll();
    assert.equal(rd(IIR) & 0xc0, 0);
    assert.equal(rd(RBR), 7);
    assert.equal(rd(LSR) & 0x01, 0);
    uart.poll();
    assert.equal(rd(RBR), 8);
  });

  it('loops THR back to RBR and modem outputs to inputs in loopback mode', () => {
    const { output, rd, wr } = setup();
    wr(FCR, 0x01);
    rd(MSR);
    wr(MCR, 0x10 | 0x0f);
    assert.equal(rd(MSR) & 0xf0, 0xf0);
    wr(THR, 0x55);
    assert.deepEqual(output, []);
    assert.equal(rd(RBR), 0x55);
    wr(MCR, 0x10);
    assert.equal(rd(MSR), 0x0f, 'all four deltas, TERI from the RI trailing edge');
  });

  it('flags overrun when loopback overfills the FIFO, and clears it on an LSR read', () => {
    const { rd, wr, level } = setup();
    wr(FCR, 0x01);
    wr(MCR, 0x10);
    wr(IER, 0x04);
    for (let i = 0; i < 17; i++) wr(THR, i);
    assert.equal(level(), true);
    assert.equal(rd(IIR) & 0x0f, 0x06);
    assert.equal(rd(LSR) & 0x02, 0x02);
    assert.equal(rd(LSR) & 0x02, 0);
    assert.equal(level(), false);
  });

  it('clears the receive FIFO on FCR bit 1', () => {
    const { uart, rd, wr } = setup();
    wr(FCR, 0x01);
    uart.input([1, 2]);
    uart.poll();
    wr(FCR, 0x03);
    assert.equal(rd(LSR) & 0x01, 0);
  });
});
