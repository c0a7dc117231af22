// What `run` connects to the outside besides the terminal: a network card (user network or socket segment) and
// console sockets (virtio-console, the UART). None of it is reproducible: it waits on the world (docs/networking.md).

import type { Machine } from '../board/machine.js';
import { VirtioConsole } from '../devices/virtio/console.js';
import { VirtioNet } from '../devices/virtio/net.js';
import { ConsoleSocket, SocketPathError } from '../host/console-socket.js';
import { SocketNet, SocketNetError } from '../host/socket-net.js';
import { UserNet, UserNetError } from '../host/user-net.js';
import { UsageError } from './options.js';
import type { NetSpec } from './net-options.js';

export interface RunDeviceFlags {
  net?: NetSpec;
  /** Unix socket paths of the virtio console and of the UART. */
  console?: string;
  serial?: string;
}

export interface RunDevices {
  /** Whether anything was attached: the run then waits on the outside world (paced, not reproducible). */
  readonly outside: boolean;
  /** The UART's socket, when --serial socket= gave one: the guest's console output goes there. */
  readonly serial: ConsoleSocket | undefined;
  /** Closes sockets and listeners (the machine stopped). */
  close(): Promise<void>;
}

/**
 * Plugs the flags' devices into `machine` (after the drives and the rng: the NIC, then the virtio console)
 * and opens their sockets; a socket that cannot be opened is a UsageError, everything opened so far closed.
 */
export async function attachRunDevices(machine: Machine, flags: RunDeviceFlags, log: (message: string) => void): Promise<RunDevices> {
  const closers: (() => Promise<void>)[] = [];
  const close = async (): Promise<void> => { for (const c of closers.splice(0).reverse()) await c(); };
  let serial: ConsoleSocket | undefined;
  try {
    const net = flags.net;
    if (net?.kind === 'user') {
      const user = await UserNet.start({ guestMac: net.mac, forwards: net.forwards, restrict: net.restrict, log });
      closers.push(() => user.close());
      machine.attachVirtio(new VirtioNet(user.network, { mac: net.mac }));
    } else if (net?.kind === 'socket') {
      const segment = net.mode === 'listen' ? await SocketNet.listen(net.host, net.port, log) : await SocketNet.connect(net.host, net.port, log);
      closers.push(() => segment.close());
      machine.attachVirtio(new VirtioNet(segment, { mac: net.mac }));
    }
    if (flags.console !== undefined) {
      let socket: ConsoleSocket | undefined;
      const device = new VirtioConsole({ onOutput: (bytes) => socket?.write(bytes) });
      socket = await ConsoleSocket.listen(flags.console, { onInput: (bytes) => device.input(bytes), queued: () => device.queuedInput });
      const opened = socket;
      closers.push(() => opened.close());
      machine.attachVirtio(device);
    }
    if (flags.serial !== undefined) {
      const socket = await ConsoleSocket.listen(flags.serial, { onInput: (bytes) => machine.uart.input(bytes), queued: () => machine.uart.queuedInput });
      closers.push(() => socket.close());
      serial = socket;
    }
  } catch (error) {
    await close();
    if (error instanceof UserNetError || error instanceof SocketNetError || error instanceof SocketPathError) throw new UsageError(error.message);
    throw error;
  }
  return { outside: closers.length > 0, serial, close };
}
