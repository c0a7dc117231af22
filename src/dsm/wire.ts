// The hosts' wire (docs/giantvm.md, "The wire"): frames of an 8-byte header (magic, version, kind, body
// length) and a body laid out per kind. Encoding, and a reader that cuts a byte stream into messages
// and says in one line what was wrong with a bad one instead of throwing.

import { PAGE_BYTES, type DsmMessage } from './ivy.js';

/** 2: the forwarding of the built-in SBI (signal, hsm, fence with its hart, a round's next timer), mmio's access kinds. */
export const WIRE_VERSION = 2;
export const HEADER_BYTES = 8;
/** The largest body: a page and its fields, with room to spare. */
export const MAX_BODY = 8192;
const MAGIC0 = 0x4d; // 'M'
const MAGIC1 = 0x42; // 'B'
/** Most bytes of a refusal's or a stop's reason. */
export const MAX_REASON = 512;
export const NONCE_BYTES = 32;
export const MAC_BYTES = 32;
/** mmio's access kinds: 0 read, 1 write, 2 SBI reset, 3 SBI console bytes, 4 SBI control (the mailbox's kinds, board/forwarded-mmio.ts). */
export const MMIO_ACCESS_MAX = 4;

/** Messages of the handshake, the run's control and the forwarding (the DSM's are DsmMessage). */
export type HostMessage =
  | { kind: 'challenge'; nonce: Uint8Array }
  | { kind: 'hello'; mac: Uint8Array; nonce: Uint8Array }
  | { kind: 'welcome'; mac: Uint8Array }
  | { kind: 'refuse'; reason: string }
  | { kind: 'start'; host: number; hosts: number; config: string }
  | { kind: 'ready'; host: number }
  | { kind: 'stop'; status: number; reason: string }
  | { kind: 'heartbeat'; sent: number }
  | { kind: 'report'; host: number; json: string }
  | { kind: 'mmio'; id: number; hart: number; access: number; size: number; address: bigint; value: bigint }
  | { kind: 'mmio-reply'; id: number; ok: boolean; value: bigint }
  | { kind: 'lines'; hart: number; lines: number }
  | { kind: 'signal'; hart: number; bits: number; entry: bigint; opaque: bigint }
  | { kind: 'hsm'; hart: number; state: number }
  | { kind: 'fence'; id: number; hart: number; what: number }
  | { kind: 'fence-ack'; id: number; hart: number }
  | { kind: 'time'; round: number; end: bigint; mtime: bigint }
  | { kind: 'round-done'; round: number; host: number; instructions: bigint; waiting: boolean; timer: bigint }
  | { kind: 'via'; to: number; from: number; frame: Uint8Array };

export type WireMessage = HostMessage | DsmMessage;
export type WireKind = WireMessage['kind'];

/**
 * A field's type: unsigned integers (u64 as a bigint; `n64` a u64 read as a safe integer), `bool` a byte
 * 0 or 1, `nonce`/`mac` 32 raw bytes, `page` 4096, `reason` and `json` UTF-8 to the
 * end of the body (a reason at most MAX_REASON bytes), `frame` raw bytes to the end of the body.
 */
type FieldType = 'u8' | 'u16' | 'u32' | 'u64' | 'n64' | 'bool' | 'nonce' | 'mac' | 'page' | 'reason' | 'json' | 'frame';
type Layout = readonly (readonly [string, FieldType])[];

/** Each kind's number and body, in order (the table in docs/giantvm.md). */
const LAYOUTS: Record<WireKind, readonly [number, Layout]> = {
  'challenge': [1, [['nonce', 'nonce']]],
  'hello': [2, [['mac', 'mac'], ['nonce', 'nonce']]],
  'welcome': [3, [['mac', 'mac']]],
  'refuse': [4, [['reason', 'reason']]],
  'start': [5, [['host', 'u16'], ['hosts', 'u16'], ['config', 'json']]],
  'ready': [6, [['host', 'u16']]],
  'stop': [7, [['status', 'u32'], ['reason', 'reason']]],
  'heartbeat': [8, [['sent', 'n64']]],
  'report': [9, [['host', 'u16'], ['json', 'json']]],
  'read-request': [16, [['page', 'u32'], ['from', 'u16'], ['seq', 'u32']]],
  'write-request': [17, [['page', 'u32'], ['from', 'u16'], ['seq', 'u32']]],
  'forward': [18, [['page', 'u32'], ['txn', 'u32'], ['requester', 'u16'], ['write', 'bool']]],
  'invalidate': [19, [['page', 'u32'], ['txn', 'u32']]],
  'invalidate-ack': [20, [['page', 'u32'], ['txn', 'u32'], ['from', 'u16']]],
  'page-data': [21, [['page', 'u32'], ['txn', 'u32'], ['write', 'bool'], ['data', 'page']]],
  'grant': [22, [['page', 'u32'], ['txn', 'u32']]],
  'confirm': [23, [['page', 'u32'], ['txn', 'u32'], ['from', 'u16']]],
  'mmio': [32, [['id', 'u32'], ['hart', 'u16'], ['access', 'u8'], ['size', 'u8'], ['address', 'u64'], ['value', 'u64']]],
  'mmio-reply': [33, [['id', 'u32'], ['ok', 'bool'], ['value', 'u64']]],
  'lines': [34, [['hart', 'u16'], ['lines', 'u32']]],
  'signal': [35, [['hart', 'u16'], ['bits', 'u32'], ['entry', 'u64'], ['opaque', 'u64']]],
  'hsm': [36, [['hart', 'u16'], ['state', 'u32']]],
  'fence': [37, [['id', 'u32'], ['hart', 'u16'], ['what', 'u8']]],
  'fence-ack': [38, [['id', 'u32'], ['hart', 'u16']]],
  'time': [39, [['round', 'u32'], ['end', 'u64'], ['mtime', 'u64']]],
  'round-done': [40, [['round', 'u32'], ['host', 'u16'], ['instructions', 'u64'], ['waiting', 'bool'], ['timer', 'u64']]],
  'via': [41, [['to', 'u16'], ['from', 'u16'], ['frame', 'frame']]],
};

const KINDS = new Map<number, WireKind>(Object.entries(LAYOUTS).map(([kind, [n]]) => [n, kind as WireKind]));
const FIXED: Partial<Record<FieldType, number>> = { u8: 1, u16: 2, u32: 4, u64: 8, n64: 8, bool: 1, nonce: NONCE_BYTES, mac: MAC_BYTES, page: PAGE_BYTES };

/** A message that cannot be put on the wire (a bug in this host, not a peer's fault). */
export class WireEncodeError extends Error {}

class BadFrame extends Error {}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** The kind's number on the wire. */
export function kindNumber(kind: WireKind): number {
  return LAYOUTS[kind][0];
}

/** One frame: header and body. */
export function encodeFrame(message: WireMessage): Uint8Array {
  const entry = LAYOUTS[message.kind];
  if (entry === undefined) throw new WireEncodeError(`no wire kind '${String(message.kind)}'`);
  const [number, layout] = entry;
  const record = message as unknown as Record<string, unknown>;
  const texts = new Map<string, Uint8Array>();
  let length = 0;
  for (const [name, type] of layout) {
    const fixed = FIXED[type];
    if (fixed !== undefined) { length += fixed; continue; }
    const value = record[name];
    if (type === 'frame' && !(value instanceof Uint8Array)) throw new WireEncodeError(`${message.kind}.${name} is not bytes`);
    const bytes = type === 'frame' ? value as Uint8Array : encoder.encode(String(value));
    if (type === 'reason' && bytes.length > MAX_REASON) throw new WireEncodeError(`${message.kind}: reason longer than ${MAX_REASON} bytes`);
    texts.set(name, bytes);
    length += bytes.length;
  }
  if (length > MAX_BODY) throw new WireEncodeError(`${message.kind}: body of ${length} bytes (at most ${MAX_BODY})`);
  const frame = new Uint8Array(HEADER_BYTES + length);
  const view = new DataView(frame.buffer);
  frame[0] = MAGIC0;
  frame[1] = MAGIC1;
  frame[2] = WIRE_VERSION;
  frame[3] = number;
  view.setUint32(4, length, true);
  let at = HEADER_BYTES;
  for (const [name, type] of layout) {
    const value = record[name];
    const bad = (): never => { throw new WireEncodeError(`${message.kind}.${name}: ${String(value)} is not a ${type}`); };
    switch (type) {
      case 'u8': case 'u16': case 'u32': {
        const bits = type === 'u8' ? 8 : type === 'u16' ? 16 : 32;
        if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value >= 2 ** bits) bad();
        const n = value as number;
        if (bits === 8) view.setUint8(at, n); else if (bits === 16) view.setUint16(at, n, true); else view.setUint32(at, n, true);
        break;
      }
      case 'u64':
        if (typeof value !== 'bigint' || value < 0n || value >= 2n ** 64n) bad();
        view.setBigUint64(at, value as bigint, true);
        break;
      case 'n64':
        if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) bad();
        view.setBigUint64(at, BigInt(value as number), true);
        break;
      case 'bool':
        if (typeof value !== 'boolean') bad();
        view.setUint8(at, value ? 1 : 0);
        break;
      case 'nonce': case 'mac': case 'page':
        if (!(value instanceof Uint8Array) || value.length !== FIXED[type]) bad();
        frame.set(value as Uint8Array, at);
        break;
      case 'reason': case 'json': case 'frame': {
        const bytes = texts.get(name) as Uint8Array;
        frame.set(bytes, at);
        at += bytes.length;
        continue;
      }
    }
    at += FIXED[type] as number;
  }
  return frame;
}

/** One frame's body, decoded by its kind's layout; a BadFrame says what was wrong. */
function decodeBody(kind: WireKind, body: Uint8Array): WireMessage {
  const layout = LAYOUTS[kind][1];
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const out: Record<string, unknown> = { kind };
  let at = 0;
  for (const [name, type] of layout) {
    const fixed = FIXED[type];
    if (fixed !== undefined && at + fixed > body.length) throw new BadFrame(`${kind} frame of ${body.length} bytes is too short`);
    switch (type) {
      case 'u8': out[name] = view.getUint8(at); break;
      case 'u16': out[name] = view.getUint16(at, true); break;
      case 'u32': out[name] = view.getUint32(at, true); break;
      case 'u64': out[name] = view.getBigUint64(at, true); break;
      case 'n64': {
        const n = view.getBigUint64(at, true);
        if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new BadFrame(`${kind}.${name} ${n} is out of range`);
        out[name] = Number(n);
        break;
      }
      case 'bool': {
        const b = view.getUint8(at);
        if (b > 1) throw new BadFrame(`${kind}.${name} is ${b}, not 0 or 1`);
        out[name] = b === 1;
        break;
      }
      case 'nonce': case 'mac': case 'page': out[name] = body.slice(at, at + (fixed as number)); break;
      case 'frame':
        out[name] = body.slice(at);
        at = body.length;
        continue;
      case 'reason': case 'json': {
        const bytes = body.subarray(at);
        if (type === 'reason' && bytes.length > MAX_REASON) throw new BadFrame(`${kind}.${name} is longer than ${MAX_REASON} bytes`);
        try {
          out[name] = decoder.decode(bytes);
        } catch {
          throw new BadFrame(`${kind}.${name} is not UTF-8`);
        }
        at = body.length;
        continue;
      }
    }
    at += fixed as number;
  }
  if (at !== body.length) throw new BadFrame(`${kind} frame has ${body.length - at} bytes too many`);
  if (kind === 'mmio') {
    // Reads and writes of a device register; the built-in SBI's reset, console bytes and control requests.
    const access = out.access as number;
    if (access > MMIO_ACCESS_MAX) throw new BadFrame(`mmio of access kind ${access}`);
    if (access <= 1 ? ![1, 2, 4, 8].includes(out.size as number) : !((out.size as number) >= 1 && (out.size as number) <= 8)) throw new BadFrame(`mmio of size ${String(out.size)}`);
  }
  return out as unknown as WireMessage;
}

/**
 * Cuts a peer's byte stream into messages. The first bad frame sets `error` (one line, without the
 * peer's name, which the caller adds), and from then on everything is ignored: the caller closes the
 * connection. Nothing a peer sends makes it throw.
 */
export class FrameReader {
  error: string | undefined;
  /** The version of the peer's first frame when it was not ours (so the caller can say both). */
  peerVersion: number | undefined;
  private buffered: Uint8Array = new Uint8Array(0);

  push(chunk: Uint8Array): WireMessage[] {
    if (this.error !== undefined) return [];
    const data = this.buffered.length === 0 ? chunk : concat(this.buffered, chunk);
    const messages: WireMessage[] = [];
    let at = 0;
    try {
      while (data.length - at >= HEADER_BYTES) {
        if (data[at] !== MAGIC0 || data[at + 1] !== MAGIC1) throw new BadFrame('not a mirrorball host (bad magic)');
        const version = data[at + 2];
        if (version !== WIRE_VERSION) {
          this.peerVersion = version;
          throw new BadFrame(`speaks wire version ${version}, this host speaks ${WIRE_VERSION}`);
        }
        const number = data[at + 3];
        const kind = KINDS.get(number);
        if (kind === undefined) throw new BadFrame(`unknown message kind ${number}`);
        const length = new DataView(data.buffer, data.byteOffset + at + 4, 4).getUint32(0, true);
        if (length > MAX_BODY) throw new BadFrame(`${kind} frame of ${length} bytes (at most ${MAX_BODY})`);
        if (data.length - at - HEADER_BYTES < length) break;
        const body = data.subarray(at + HEADER_BYTES, at + HEADER_BYTES + length);
        messages.push(decodeBody(kind, body));
        at += HEADER_BYTES + length;
      }
    } catch (error) {
      // Anything else would be a bug of this reader; it still only ends the connection.
      this.error = error instanceof BadFrame ? error.message : `malformed frame (${error instanceof Error ? error.message : String(error)})`;
      this.buffered = new Uint8Array(0);
      return messages;
    }
    this.buffered = data.slice(at);
    return messages;
  }

  /** Bytes of an incomplete frame held back. */
  get pendingBytes(): number {
    return this.buffered.length;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const c = new Uint8Array(a.length + b.length);
  c.set(a);
  c.set(b, a.length);
  return c;
}

/** The one frame `bytes` holds (a `via`'s), or a line saying what is wrong with it. */
export function decodeFrame(bytes: Uint8Array): WireMessage | string {
  const reader = new FrameReader();
  const messages = reader.push(bytes);
  if (reader.error !== undefined) return reader.error;
  if (messages.length !== 1 || reader.pendingBytes !== 0) return 'not one whole frame';
  return messages[0]!;
}
