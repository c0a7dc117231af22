// `--net`, `--console` and `--serial` of `run`: their specifications parsed, every mistake one line (docs/networking.md).

import { parseMac } from '../devices/virtio/net.js';
import type { HostForward } from '../host/user-net.js';
import { parseIpv4Address } from '../net/packet.js';
import { UsageError } from './options.js';

/** The guest NIC's MAC by default; the connecting side of a socket segment gets the next one, so two `run`s differ. */
export const DEFAULT_MAC = '52:54:00:12:34:56';
const CONNECT_MAC = '52:54:00:12:34:57';

export type NetSpec =
  | { kind: 'user'; mac: Uint8Array; restrict: boolean; forwards: HostForward[] }
  | { kind: 'socket'; mac: Uint8Array; mode: 'listen' | 'connect'; host: string; port: number };

function port(text: string, what: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > 65535) throw new UsageError(`--net: ${what} must be a port from 1 to 65535, not '${text}'`);
  return n;
}

function ipv4(text: string, what: string): string {
  if (parseIpv4Address(text) === undefined) throw new UsageError(`--net: ${what} must be an IPv4 address, not '${text}'`);
  return text;
}

/** hostfwd=tcp:[ADDRESS]:HOSTPORT-[GUESTADDRESS]:GUESTPORT (QEMU's form; the guest address, if given, must be 10.0.2.15). */
function parseForward(text: string): HostForward {
  const m = /^(tcp|udp)?:([^:]*):([^-]*)-([^:]*):(.*)$/.exec(text);
  if (m === null) throw new UsageError(`--net: hostfwd=${text} is not tcp:[ADDRESS]:HOSTPORT-:GUESTPORT (e.g. hostfwd=tcp::8080-:80)`);
  if (m[1] === 'udp') throw new UsageError('--net: hostfwd forwards TCP only (udp is not supported)');
  if (m[4] !== '' && m[4] !== '10.0.2.15') throw new UsageError(`--net: hostfwd's guest address is 10.0.2.15 (the guest's), not '${m[4]}'`);
  return { address: m[2] === '' ? '127.0.0.1' : ipv4(m[2], 'hostfwd\'s host address'), hostPort: port(m[3], 'hostfwd\'s host port'), guestPort: port(m[5], 'hostfwd\'s guest port') };
}

/** ADDRESS:PORT, the address defaulting to 127.0.0.1. */
function endpoint(text: string, key: string): { host: string; port: number } {
  const colon = text.lastIndexOf(':');
  if (colon < 0) throw new UsageError(`--net socket: ${key}= takes ADDRESS:PORT (e.g. ${key}=127.0.0.1:5555), not '${text}'`);
  const host = text.slice(0, colon);
  return { host: host === '' ? '127.0.0.1' : ipv4(host, `${key}'s address`), port: port(text.slice(colon + 1), `${key}'s port`) };
}

/**
 * `user[,restrict=on|off][,hostfwd=tcp::HOSTPORT-:GUESTPORT]...[,mac=MAC]` or
 * `socket,listen=[ADDRESS]:PORT[,mac=MAC]` or `socket,connect=ADDRESS:PORT[,mac=MAC]`.
 */
export function parseNet(text: string): NetSpec {
  const [kind, ...parts] = text.split(',');
  let mac: Uint8Array | undefined;
  const keyValue = (part: string): [string, string] => {
    const eq = part.indexOf('=');
    if (eq < 0) throw new UsageError(`--net ${kind}: '${part}' is not KEY=VALUE`);
    return [part.slice(0, eq), part.slice(eq + 1)];
  };
  const macOf = (value: string): Uint8Array => {
    try {
      const bytes = parseMac(value);
      if ((bytes[0] & 1) !== 0) throw new Error('multicast');
      return bytes;
    } catch {
      throw new UsageError(`--net: mac=${value} is not a unicast MAC address such as 52:54:00:12:34:56`);
    }
  };
  if (kind === 'user') {
    let restrict = false;
    const forwards: HostForward[] = [];
    for (const part of parts) {
      const [key, value] = keyValue(part);
      if (key === 'hostfwd') forwards.push(parseForward(value));
      else if (key === 'restrict') {
        if (value !== 'on' && value !== 'off') throw new UsageError(`--net user: restrict must be on or off, not '${value}'`);
        restrict = value === 'on';
      } else if (key === 'mac') mac = macOf(value);
      else throw new UsageError(`--net user: unknown key '${key}' (known: hostfwd, restrict, mac)`);
    }
    const taken = new Set<string>();
    for (const f of forwards) {
      const where = `${f.address}:${f.hostPort}`;
      if (taken.has(where)) throw new UsageError(`--net user: two hostfwd listen on ${where}`);
      taken.add(where);
    }
    return { kind, mac: mac ?? parseMac(DEFAULT_MAC), restrict, forwards };
  }
  if (kind === 'socket') {
    let mode: 'listen' | 'connect' | undefined;
    let at: { host: string; port: number } | undefined;
    for (const part of parts) {
      const [key, value] = keyValue(part);
      if (key === 'listen' || key === 'connect') {
        if (mode !== undefined) throw new UsageError('--net socket: give one of listen= and connect=');
        mode = key;
        at = endpoint(value, key);
      } else if (key === 'mac') mac = macOf(value);
      else throw new UsageError(`--net socket: unknown key '${key}' (known: listen, connect, mac)`);
    }
    if (mode === undefined || at === undefined) throw new UsageError('--net socket needs listen=ADDRESS:PORT or connect=ADDRESS:PORT');
    return { kind, mac: mac ?? parseMac(mode === 'listen' ? DEFAULT_MAC : CONNECT_MAC), mode, ...at };
  }
  throw new UsageError(`--net: '${kind}' is not a network (user or socket)`);
}

/** `socket=PATH` of --console and --serial: the Unix socket's path. */
export function parseConsoleSocket(text: string, flag: string): string {
  if (!text.startsWith('socket=') || text.length === 'socket='.length) throw new UsageError(`${flag} takes socket=PATH, not '${text}'`);
  return text.slice('socket='.length);
}
