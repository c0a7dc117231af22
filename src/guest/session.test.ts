// GuestSession without a real guest: a "kernel" that never answers must fail the session after its
// timeout, not hang the caller (an e2e test that waits forever stalls the whole suite).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GuestSession, GuestSessionError } from './session.js';

const JUMP_TO_SELF = 0x0000006f; // jal x0, 0
const ECALL = 0x00000073;
const addi = (rd: number, imm: number): number => ((imm << 20) | (rd << 7) | 0x13) >>> 0;

/**
 * A Linux Image whose code prints `text` with the legacy SBI console call, one ecall per byte, then spins
 * with `j .` for ever. The header's first word jumps over the header, as a real kernel's does.
 */
function spinningKernel(text = ''): Uint8Array {
  const code = [addi(17, 1)]; // a7 = 1: console_putchar
  for (const byte of new TextEncoder().encode(text)) code.push(addi(10, byte), ECALL);
  code.push(JUMP_TO_SELF);
  const bytes = new Uint8Array(64 + code.length * 4);
  const v = new DataView(bytes.buffer);
  v.setUint32(0, 0x0400006f, true); // jal x0, 64
  code.forEach((word, i) => v.setUint32(64 + i * 4, word, true));
  v.setBigUint64(8, 0x200000n, true);
  v.setBigUint64(16, BigInt(bytes.length), true);
  v.setUint32(32, 2, true);
  bytes.set([0x52, 0x53, 0x43, 0x05], 56);
  return bytes;
}

test('a guest whose agent never answers fails the boot after the timeout and stops the machine', async () => {
  const started = GuestSession.boot({
    kernel: spinningKernel(),
    config: { harts: 1, nodes: [{ memoryBytes: 64 * 1024 * 1024, harts: [0] }] },
    timeoutMs: 300,
  });
  await assert.rejects(started, (error: Error) => {
    assert.ok(error instanceof GuestSessionError);
    assert.match(error.message, /^waited 0\.3 s for its agent to be ready/);
    return true;
  });
});

test('a command the agent never answers fails after the timeout instead of waiting for ever', async () => {
  const session = await GuestSession.boot({
    kernel: spinningKernel('booted\n@@MB READY 1@@\n'),
    config: { harts: 1, nodes: [{ memoryBytes: 64 * 1024 * 1024, harts: [0] }] },
    timeoutMs: 300,
  });
  try {
    await assert.rejects(session.exec('true'), (error: Error) => {
      assert.ok(error instanceof GuestSessionError);
      assert.equal(error.message, 'waited 0.3 s for command "true"; console ends with:\nbooted');
      return true;
    });
  } finally {
    await session.kill();
  }
});

test('holdIdle and pace are refused together, before any machine exists', async () => {
  await assert.rejects(
    GuestSession.boot({ kernel: new Uint8Array(0), config: { harts: 1, nodes: [{ memoryBytes: 64 * 2 ** 20, harts: [0] }] }, holdIdle: true, pace: true }),
    (error: unknown) => error instanceof GuestSessionError && error.message === 'holdIdle and pace exclude each other',
  );
});
