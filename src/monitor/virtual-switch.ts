// The VMs' subnet: a learning Ethernet switch with one port per VM's virtio-net, all in the monitor.

import type { FrameInfo, NetBackend } from '../devices/virtio/net.js';

const MAC_BYTES = 6;

/** The MAC address of VM `id`'s network card: locally administered, QEMU's 52:54:00 prefix, then the id. */
export function vmMac(id: number): string {
  if (!Number.isInteger(id) || id < 0 || id > 0xffff) throw new Error(`no MAC address for VM id ${id}`);
  return `52:54:00:4d:${(id >> 8).toString(16).padStart(2, '0')}:${(id & 0xff).toString(16).padStart(2, '0')}`;
}

/**
 * A frame goes to the port that last sent from its destination MAC, or, for broadcast, multicast and
 * addresses not seen yet, to every other port, as a switch floods. Frames are copied: a VM never sees
 * another VM's buffer. (Disco's subnet moved page-aligned data by remapping pages. Measured with Linux
 * guests, no sender's page ever lands on a whole page of the receiver's buffers, so there is nothing to
 * remap: docs/monitor.md, "The subnet".)
 */
export class VirtualSwitch {
  private readonly ports: ((frame: Uint8Array, info?: FrameInfo) => void)[] = [];
  /** Learned: MAC (as 12 hex digits) → port. */
  private readonly where = new Map<string, number>();
  private readonly indexOf = new Map<NetBackend, number>();
  private readonly unplugs = new Map<number, () => void>();
  frames = 0;
  flooded = 0;
  /** Bytes of frames copied to ports (a flooded frame once per port). */
  bytes = 0;

  /** A new port; plug its backend into a VM's VirtioNet. */
  port(): NetBackend {
    const index = this.ports.length;
    this.ports.push(() => {});
    let plugged = true;
    const backend: NetBackend = {
      send: (frame, info) => { if (plugged) this.forward(index, frame, info); },
      attach: (receive) => { this.ports[index] = (frame, info) => { if (plugged) receive(frame, info); }; },
    };
    this.indexOf.set(backend, index);
    this.unplugs.set(index, () => { plugged = false; });
    return backend;
  }

  /** What it has learned and counted (snapshots): MAC addresses as 12 hex digits, each with its port. */
  saveState(): { learned: [string, number][]; frames: number; flooded: number; bytes: number } {
    return { learned: [...this.where], frames: this.frames, flooded: this.flooded, bytes: this.bytes };
  }

  /** Puts back what `saveState` returned, into a switch with the same ports (the caller checked the port numbers). */
  restoreState(s: { learned: readonly (readonly [string, number])[]; frames: number; flooded: number; bytes: number }): void {
    this.where.clear();
    for (const [mac, port] of s.learned) this.where.set(mac, port);
    this.frames = s.frames;
    this.flooded = s.flooded;
    this.bytes = s.bytes;
  }

  /** Ports made so far (unplugged ones included). */
  get portCount(): number {
    return this.ports.length;
  }

  /** Disconnects a port (its VM ended): nothing goes to it or comes from it any more. */
  unplug(backend: NetBackend): void {
    const index = this.indexOf.get(backend);
    if (index === undefined) return;
    this.unplugs.get(index)!();
    for (const [mac, port] of this.where) if (port === index) this.where.delete(mac);
  }

  private forward(from: number, frame: Uint8Array, info?: FrameInfo): void {
    if (frame.length < 2 * MAC_BYTES) return; // not Ethernet: dropped
    this.frames++;
    const source = hex(frame, MAC_BYTES);
    this.where.set(source, from);
    const destination = hex(frame, 0);
    const group = (frame[0]! & 1) !== 0;
    const to = group ? undefined : this.where.get(destination);
    if (to !== undefined) {
      if (to !== from) this.deliver(to, frame, info);
      return;
    }
    this.flooded++;
    for (let i = 0; i < this.ports.length; i++) if (i !== from) this.deliver(i, frame, info);
  }

  private deliver(port: number, frame: Uint8Array, info: FrameInfo | undefined): void {
    this.bytes += frame.length;
    this.ports[port]!(frame.slice(), info);
  }
}

function hex(frame: Uint8Array, at: number): string {
  let s = '';
  for (let i = at; i < at + MAC_BYTES; i++) s += frame[i]!.toString(16).padStart(2, '0');
  return s;
}
