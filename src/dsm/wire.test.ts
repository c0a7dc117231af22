// The wire's codec: every message comes back as it went, however the stream is cut; and garbage from a
// peer (random bytes, flipped bits, wrong lengths, another version) ends the stream with one line and
// never throws.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { PAGE_BYTES } from './ivy.js';
import { decodeFrame, encodeFrame, FrameReader, HEADER_BYTES, MAX_BODY, MAX_REASON, WIRE_VERSION, WireEncodeError, type WireMessage } from './wire.js';

const LONG = process.env.MIRRORBALL_LONG === '1';
const u16 = fc.nat(0xffff);
const u32 = fc.nat(0xffffffff);
const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const text = (max: number) => fc.string({ unit: 'grapheme', maxLength: max }).filter((s) => new TextEncoder().encode(s).length <= max);

const message: fc.Arbitrary<WireMessage> = fc.oneof(
  fc.record({ kind: fc.constant('challenge' as const), nonce: bytes(32) }),
  fc.record({ kind: fc.constant('hello' as const), mac: bytes(32), nonce: bytes(32) }),
  fc.record({ kind: fc.constant('welcome' as const), mac: bytes(32) }),
  fc.record({ kind: fc.constant('refuse' as const), reason: text(100) }),
  fc.record({ kind: fc.constant('start' as const), host: u16, hosts: u16, config: text(300) }),
  fc.record({ kind: fc.constant('ready' as const), host: u16 }),
  fc.record({ kind: fc.constant('stop' as const), status: u32, reason: text(100) }),
  fc.record({ kind: fc.constant('heartbeat' as const), sent: fc.maxSafeNat() }),
  fc.record({ kind: fc.constant('report' as const), host: u16, json: text(300) }),
  fc.record({ kind: fc.constantFrom('read-request' as const, 'write-request' as const), page: u32, from: u16, seq: u32 }),
  fc.record({ kind: fc.constant('forward' as const), page: u32, txn: u32, requester: u16, write: fc.boolean() }),
  fc.record({ kind: fc.constant('invalidate' as const), page: u32, txn: u32 }),
  fc.record({ kind: fc.constant('invalidate-ack' as const), page: u32, txn: u32, from: u16 }),
  fc.record({ kind: fc.constant('page-data' as const), page: u32, txn: u32, write: fc.boolean(), data: bytes(PAGE_BYTES) }),
  fc.record({ kind: fc.constant('grant' as const), page: u32, txn: u32 }),
  fc.record({ kind: fc.constant('confirm' as const), page: u32, txn: u32, from: u16 }),
  fc.record({ kind: fc.constant('mmio' as const), id: u32, hart: u16, access: fc.constantFrom(0, 1), size: fc.constantFrom(1, 2, 4, 8), address: u64, value: u64 }),
  fc.record({ kind: fc.constant('mmio' as const), id: u32, hart: u16, access: fc.constantFrom(2, 3, 4), size: fc.integer({ min: 1, max: 8 }), address: u64, value: u64 }),
  fc.record({ kind: fc.constant('mmio-reply' as const), id: u32, ok: fc.boolean(), value: u64 }),
  fc.record({ kind: fc.constant('lines' as const), hart: u16, lines: u32 }),
  fc.record({ kind: fc.constant('signal' as const), hart: u16, bits: u32, entry: u64, opaque: u64 }),
  fc.record({ kind: fc.constant('hsm' as const), hart: u16, state: u32 }),
  fc.record({ kind: fc.constant('fence' as const), id: u32, hart: u16, what: fc.nat(255) }),
  fc.record({ kind: fc.constant('fence-ack' as const), id: u32, hart: u16 }),
  fc.record({ kind: fc.constant('time' as const), round: u32, end: u64, mtime: u64 }),
  fc.record({ kind: fc.constant('round-done' as const), round: u32, host: u16, instructions: u64, waiting: fc.boolean(), timer: u64 }),
  fc.record({ kind: fc.constant('via' as const), to: u16, from: u16, frame: fc.uint8Array({ maxLength: 4200 }) }),
);

/** The stream of frames cut at the given points. */
function cut(stream: Uint8Array, points: number[]): Uint8Array[] {
  const at = [...new Set(points.map((p) => p % (stream.length + 1)))].sort((a, b) => a - b);
  const pieces: Uint8Array[] = [];
  let from = 0;
  for (const p of [...at, stream.length]) { pieces.push(stream.subarray(from, p)); from = p; }
  return pieces;
}

function join(frames: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
  let at = 0;
  for (const f of frames) { out.set(f, at); at += f.length; }
  return out;
}

test('wire: every message comes back equal, however the stream is cut', () => {
  fc.assert(fc.property(fc.array(message, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 12 }), (messages, points) => {
    const reader = new FrameReader();
    const got = cut(join(messages.map(encodeFrame)), points).flatMap((piece) => reader.push(piece));
    assert.equal(reader.error, undefined);
    assert.deepEqual(got, messages.map((m) => ({ ...m })));
    assert.equal(reader.pendingBytes, 0);
  }), { numRuns: LONG ? 5000 : 300 });
});

test('wire: the header is magic, version, kind and a little-endian body length', () => {
  const frame = encodeFrame({ kind: 'invalidate', page: 0x01020304, txn: 7 });
  assert.deepEqual([...frame], [0x4d, 0x42, WIRE_VERSION, 19, 8, 0, 0, 0, 4, 3, 2, 1, 7, 0, 0, 0]);
  assert.equal(encodeFrame({ kind: 'page-data', page: 1, txn: 1, write: true, data: new Uint8Array(PAGE_BYTES) }).length, HEADER_BYTES + 9 + PAGE_BYTES);
});

test('wire: garbage from a peer sets one line and never throws', () => {
  const frames = fc.array(message, { minLength: 1, maxLength: 4 }).map((ms) => join(ms.map(encodeFrame)));
  const mutated = fc.tuple(frames, fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 6 }), fc.nat())
    .map(([stream, flips, keep]) => {
      const copy = stream.slice(0, Math.max(1, keep % (stream.length + 1)));
      for (const [at, value] of flips) copy[at % copy.length] = value;
      return copy;
    });
  const garbage = fc.oneof(fc.uint8Array({ maxLength: 2000 }), mutated);
  fc.assert(fc.property(garbage, fc.array(fc.nat(), { maxLength: 6 }), (stream, points) => {
    const reader = new FrameReader();
    for (const piece of cut(stream, points)) {
      const messages = reader.push(piece);
      // What comes out is well-formed: it encodes again to the same bytes' kind.
      for (const m of messages) assert.doesNotThrow(() => encodeFrame(m));
    }
    if (reader.error !== undefined) {
      assert.ok(reader.error.length > 0 && !reader.error.includes('\n'), 'one line');
      assert.deepEqual(reader.push(encodeFrame({ kind: 'ready', host: 1 })), [], 'nothing is read after a bad frame');
    }
  }), { numRuns: LONG ? 50_000 : 2000 });
});

test('wire: each way a frame can be wrong has its line', () => {
  const lineOf = (bytes: number[] | Uint8Array): string | undefined => {
    const reader = new FrameReader();
    reader.push(Uint8Array.from(bytes));
    return reader.error;
  };
  const good = encodeFrame({ kind: 'ready', host: 3 });
  assert.match(lineOf([0x47, 0x45, 0x54, 0x20, 0x2f, 0x20, 0x48, 0x54]) ?? '', /bad magic/);
  const other = good.slice(); other[2] = 9;
  const reader = new FrameReader();
  reader.push(other);
  assert.equal(reader.error, `speaks wire version 9, this host speaks ${WIRE_VERSION}`);
  assert.equal(reader.peerVersion, 9);
  const kind = good.slice(); kind[3] = 99;
  assert.equal(lineOf(kind), 'unknown message kind 99');
  const long = good.slice(); new DataView(long.buffer).setUint32(4, MAX_BODY + 1, true);
  assert.match(lineOf(long) ?? '', /at most 8192/);
  const short = good.slice(0, HEADER_BYTES + 1); new DataView(short.buffer).setUint32(4, 1, true);
  assert.match(lineOf(short) ?? '', /too short/);
  const extra = [...good, 0]; extra[4] = 3;
  assert.match(lineOf(extra) ?? '', /1 bytes too many/);
  const forward = encodeFrame({ kind: 'forward', page: 1, txn: 2, requester: 0, write: true }); forward[forward.length - 1] = 2;
  assert.match(lineOf(forward) ?? '', /forward.write is 2/);
  const mmio = encodeFrame({ kind: 'mmio', id: 1, hart: 0, access: 0, size: 4, address: 0x1000_0000n, value: 0n }); mmio[HEADER_BYTES + 7] = 3;
  assert.equal(lineOf(mmio), 'mmio of size 3');
  const access = encodeFrame({ kind: 'mmio', id: 1, hart: 0, access: 3, size: 3, address: 0n, value: 0x414243n }); access[HEADER_BYTES + 6] = 5;
  assert.equal(lineOf(access), 'mmio of access kind 5');
  const refuse = encodeFrame({ kind: 'refuse', reason: 'x' }); refuse[HEADER_BYTES] = 0xff;
  assert.equal(lineOf(refuse), 'refuse.reason is not UTF-8');
  // An incomplete frame is held, not an error.
  const half = new FrameReader();
  assert.deepEqual(half.push(good.subarray(0, 5)), []);
  assert.equal(half.error, undefined);
  assert.deepEqual(half.push(good.subarray(5)), [{ kind: 'ready', host: 3 }]);
});

test('wire: this host refuses to encode what does not fit its layout', () => {
  assert.throws(() => encodeFrame({ kind: 'page-data', page: 1, txn: 1, write: false, data: new Uint8Array(8) }), WireEncodeError);
  assert.throws(() => encodeFrame({ kind: 'ready', host: 70000 }), /not a u16/);
  assert.throws(() => encodeFrame({ kind: 'refuse', reason: 'x'.repeat(MAX_REASON + 1) }), /longer than 512/);
  assert.throws(() => encodeFrame({ kind: 'start', host: 0, hosts: 2, config: 'x'.repeat(MAX_BODY) }), /at most 8192/);
});

test('wire: a via frame carries one whole frame; anything else inside it is one line', () => {
  const inner = encodeFrame({ kind: 'grant', page: 9, txn: 2 });
  assert.deepEqual(decodeFrame(inner), { kind: 'grant', page: 9, txn: 2 });
  assert.equal(decodeFrame(inner.subarray(0, inner.length - 1)), 'not one whole frame');
  assert.equal(decodeFrame(new Uint8Array([...inner, ...inner])), 'not one whole frame');
  assert.equal(decodeFrame(new Uint8Array(12)), 'not a mirrorball host (bad magic)');
});
