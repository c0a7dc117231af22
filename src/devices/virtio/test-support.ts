// Shared fixtures for virtio device tests: a small RAM, a transport on it, and a mock driver.

import type { IrqLine } from '../../memory/device.js';
import { Bus } from '../../memory/bus.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import { RamRegion } from '../../memory/ram.js';
import type { VirtioDevice } from './device.js';
import { VirtioMmio } from './mmio.js';
import { GuestHeap, MockDriver } from './mock-driver.js';

export const RAM_BASE = 0x8000_0000;
export const RAM_SIZE = 0x40_0000;

export interface VirtioFixture {
  memory: GuestMemory;
  transport: VirtioMmio;
  driver: MockDriver;
  /** Every level the interrupt line was driven to, in order. */
  irq: boolean[];
  /** Messages the transport logged. */
  log: string[];
}

/** `device` behind a transport on a bus with 4 MiB of RAM at 0x8000_0000. */
export function virtioFixture(device: VirtioDevice): VirtioFixture {
  const bus = new Bus();
  bus.addRam(new RamRegion(0, RAM_BASE, RAM_SIZE));
  const memory = bus.guestMemory();
  const irq: boolean[] = [];
  const log: string[] = [];
  const line: IrqLine = (level) => irq.push(level);
  const transport = new VirtioMmio(device, memory, line, { log: (message) => log.push(message) });
  const driver = new MockDriver(transport, memory, new GuestHeap(RAM_BASE, RAM_BASE + RAM_SIZE));
  return { memory, transport, driver, irq, log };
}
