// Fuzz targets for the board's own devices (UART, PLIC, CLINT, control device): random loads and stores of every
// width at any offset of their windows, from any hart, between host input, interrupt lines and time moving on.
// Each case gets fresh devices on a bus laid out as the board's (board/address-map.ts), so a case stands alone.

import fc from 'fast-check';
import { CLINT, CONTROL_DEVICE, PLIC, UART0 } from '../../board/address-map.js';
import { Clint } from '../../devices/clint.js';
import { ControlDevice, CONTROL_ARGUMENT, CONTROL_REQUEST, CONTROL_RESULT, type ControlHandler } from '../../devices/control.js';
import { Plic } from '../../devices/plic.js';
import { Uart } from '../../devices/uart.js';
import { Bus, BusError } from '../../memory/bus.js';
import type { AccessSize } from '../../memory/device.js';
import type { FuzzSession, FuzzTarget } from '../harness.js';

const HARTS = 4;
const PLIC_SOURCES = 96;
const U32 = 2 ** 32;

interface Window { base: number; size: number; registers: readonly number[] }

const WINDOWS: Record<string, Window> = {
  uart: { ...UART0, registers: [0, 1, 2, 3, 4, 5, 6, 7] },
  plic: {
    ...PLIC,
    registers: [0, 4, 8, 4 * 10, 4 * 95, 4 * 96, 0x1000, 0x1004, 0x1008, 0x100c, 0x2000, 0x2004, 0x2080, 0x2100, 0x2180, 0x200000, 0x200004, 0x201000,
      0x201004, 0x202004, 0x203004, 0x207004, 0x208004, 0x23f004, 0x240004, 0x5ffffc],
  },
  clint: { ...CLINT, registers: [0, 4, 8, 12, 16, 0x4000, 0x4004, 0x4008, 0x400c, 0x4018, 0x401c, 0x4020, 0xbff0, 0xbff8, 0xbffc] },
  control: { ...CONTROL_DEVICE, registers: [0, 4, CONTROL_ARGUMENT, CONTROL_REQUEST, CONTROL_RESULT, 0x14, 0xffc] },
};

type Op =
  | { kind: 'store'; offset: number; size: AccessSize; value: number; hart: number }
  | { kind: 'load'; offset: number; size: AccessSize; hart: number }
  /** Time moves on (the CLINT's clock; the UART and PLIC are polled and updated). */
  | { kind: 'tick'; ticks: number }
  /** Host bytes for the UART; a device's interrupt line driven for the PLIC. */
  | { kind: 'input'; bytes: number; source: number; level: boolean };

export interface DeviceCase { ops: Op[] }

const sizeArb = fc.constantFrom<AccessSize>(1, 2, 4);
const valueArb = fc.oneof(
  { weight: 3, arbitrary: fc.nat({ max: 16 }) },
  { weight: 2, arbitrary: fc.constantFrom(0, 1, 0x80, 0xff, 0xffff, 0x7fff_ffff, U32 - 1, 7, 0x1f) },
  { weight: 3, arbitrary: fc.nat({ max: U32 - 1 }) },
);
const hartArb = fc.oneof({ weight: 9, arbitrary: fc.nat({ max: HARTS - 1 }) }, { weight: 1, arbitrary: fc.constantFrom(-1, HARTS, 31, 1000) });

function offsetArb(w: Window): fc.Arbitrary<number> {
  return fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...w.registers).chain((r) => fc.integer({ min: 0, max: 3 }).map((d) => Math.min(w.size - 1, r + d))) },
    { weight: 2, arbitrary: fc.nat({ max: w.size - 1 }) },
    // Past the end: the bus must refuse, never the device see it.
    { weight: 1, arbitrary: fc.integer({ min: w.size - 4, max: w.size + 8 }) },
  );
}

function cases(w: Window): fc.Arbitrary<DeviceCase> {
  const offset = offsetArb(w);
  return fc.record({
    ops: fc.array(fc.oneof(
      { weight: 5, arbitrary: fc.record({ kind: fc.constant('store' as const), offset, size: sizeArb, value: valueArb, hart: hartArb }) },
      { weight: 4, arbitrary: fc.record({ kind: fc.constant('load' as const), offset, size: sizeArb, hart: hartArb }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('tick' as const), ticks: fc.oneof(fc.nat({ max: 1000 }), fc.constantFrom(2 ** 32, 2 ** 52)) }) },
      {
        weight: 1,
        arbitrary: fc.record({
          kind: fc.constant('input' as const), bytes: fc.oneof(fc.nat({ max: 40 }), fc.constant(100_000)),
          source: fc.integer({ min: 1, max: PLIC_SOURCES - 1 }), level: fc.boolean(),
        }),
      },
    ), { minLength: 1, maxLength: 40 }),
  });
}

/** The requests a machine answers (statistics, mode switches) as a stand-in: any number in, any result out. */
const controlHandler: ControlHandler = (request, argument) => (request === 4 ? 0 : request > 4 ? -3 : argument & 1);

/** Runs one case on fresh devices; throws if a device throws, or a load returns a value wider than its access. */
export function runDeviceCase(which: keyof typeof WINDOWS, c: DeviceCase): void {
  const w = WINDOWS[which]!;
  let now = 0;
  const sink = { setPending: (hart: number, bit: number): void => {
    if (!Number.isInteger(hart) || hart < 0 || hart >= HARTS || bit < 0 || bit > 63) throw new Error(`interrupt for hart ${hart} bit ${bit}`);
  } };
  const uart = new Uart({ onOutput: () => {}, irq: () => {} });
  const plic = new Plic(HARTS, PLIC_SOURCES, sink);
  const clint = new Clint(HARTS, { now: () => now }, sink);
  let handlerOn = false;
  const control = new ControlDevice(() => (handlerOn ? controlHandler : undefined));
  const bus = new Bus();
  bus.addDevice(UART0.base, UART0.size, uart);
  bus.addDevice(PLIC.base, PLIC.size, plic);
  bus.addDevice(CLINT.base, CLINT.size, clint);
  bus.addDevice(CONTROL_DEVICE.base, CONTROL_DEVICE.size, control);
  for (const o of c.ops) {
    switch (o.kind) {
      case 'store':
      case 'load': {
        const address = w.base + o.offset - (o.offset % o.size); // the hart splits or faults on misaligned MMIO
        const inside = o.offset - (o.offset % o.size) + o.size <= w.size;
        try {
          if (o.kind === 'store') bus.mmioWrite(address, o.size, o.value, o.hart);
          else {
            const v = bus.mmioRead(address, o.size, o.hart);
            if (!Number.isInteger(v) || v < 0 || v >= 2 ** (8 * o.size)) throw new Error(`${o.size}-byte load at +0x${o.offset.toString(16)} returned ${v}`);
          }
        } catch (error) {
          if (!(error instanceof BusError) || inside) throw error;
        }
        break;
      }
      case 'tick':
        now += o.ticks;
        clint.update();
        uart.poll();
        handlerOn = !handlerOn;
        break;
      case 'input':
        uart.input(new Uint8Array(o.bytes).fill(0x41));
        uart.poll();
        plic.irqLine(o.source)(o.level);
        break;
    }
  }
}

function deviceTarget(which: keyof typeof WINDOWS, surface: string): FuzzTarget<DeviceCase> {
  return {
    name: which,
    surface,
    cases: cases(WINDOWS[which]!),
    open(): FuzzSession<DeviceCase> {
      return { run: (c) => runDeviceCase(which, c) };
    },
  };
}

export const deviceTargets: FuzzTarget<DeviceCase>[] = [
  deviceTarget('uart', 'the ns16550a UART\'s registers, with host input'),
  deviceTarget('plic', 'the PLIC\'s priorities, pending and enable bits, thresholds and claims of every context, with device lines'),
  deviceTarget('clint', 'the CLINT\'s msip, mtimecmp and mtime of every hart, with time moving'),
  deviceTarget('control', 'the control device\'s argument, request and result registers'),
];
