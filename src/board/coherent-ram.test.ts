// A host's coherent RAM: what a hart thread may do with each page, its faults taken by the host, and the
// shootdown handshake (a running thread must acknowledge; one between rounds counts as done and empties
// its TLB when it runs again). The blocking wait itself runs on a worker.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { ACCESS_EXEC, ACCESS_READ, ACCESS_WRITE, PERM_RWX, PERM_RX } from '../memory/bus.js';
import { CoherentPages, CoherentRam, coherentMemory, HOLDS_NONE, HOLDS_READ, HOLDS_WRITE } from './coherent-ram.js';

const BASE = 0x8000_0000;

function setup(): { pages: CoherentPages; ram: CoherentRam; flushes: () => number; doorbell: SharedArrayBuffer } {
  const memory = coherentMemory(BASE, 16 * 4096, 2);
  const doorbell = new SharedArrayBuffer(4);
  const pages = new CoherentPages(memory, [1]);
  const ram = new CoherentRam(memory, 1, doorbell);
  let count = 0;
  ram.flushing([{ flushFirstLevel: () => { count++; } }]);
  return { pages, ram, flushes: () => count, doorbell };
}

test('coherent RAM: a page held answers at once with the permission its state gives', () => {
  const { pages, ram } = setup();
  pages.raise(3, HOLDS_WRITE);
  pages.raise(4, HOLDS_READ);
  assert.equal(ram.page(3, ACCESS_WRITE), ram.region);
  assert.equal(ram.pageOffset, 3 * 4096);
  assert.equal(ram.pageAllows, PERM_RWX);
  ram.page(4, ACCESS_READ);
  assert.equal(ram.pageAllows, PERM_RX);
  assert.deepEqual(pages.takeFaults(), []);
});

test('coherent RAM: a running thread holds the host\'s replies until it emptied its TLB', () => {
  const { pages, ram, flushes } = setup();
  pages.raise(2, HOLDS_WRITE);
  ram.enter();
  pages.lower(2, HOLDS_READ);
  assert.equal(pages.shotDown(), false, 'asked, not yet done');
  ram.serveShootdowns();
  assert.equal(flushes(), 1);
  assert.equal(pages.shotDown(), true);
  ram.serveShootdowns();
  assert.equal(flushes(), 1, 'nothing more asked, nothing more flushed');
  // Between rounds the thread runs no guest code: done at once, and it flushes when it enters again.
  ram.leave();
  pages.lower(2, HOLDS_NONE);
  assert.equal(pages.shotDown(), true);
  ram.enter();
  assert.equal(flushes(), 2);
});

test('coherent RAM: a fault waits on its thread until the host installs the page', { timeout: 60_000 }, async () => {
  const { pages, doorbell } = setup();
  const url = new URL('./coherent-ram.ts', import.meta.url).href;
  // The worker faults on page 5 for a write, then on page 6 for a fetch, and reports what it got.
  const body = `const { CoherentRam } = await import(${JSON.stringify(url)});
    const { workerData, parentPort } = await import('node:worker_threads');
    const ram = new CoherentRam(workerData.memory, 1, workerData.doorbell);
    ram.page(5, ${ACCESS_WRITE}); const a = ram.pageAllows; ram.page(6, ${ACCESS_EXEC}); parentPort.postMessage([a, ram.pageAllows]);`;
  const bootstrap = `import('tsx/esm/api').then(async (tsx) => { tsx.register(); ${body} });`;
  const worker = new Worker(bootstrap, { eval: true, workerData: { memory: pages.memory, doorbell } });
  // A failed check must not leave the worker asleep and the test process with it.
  worker.unref();
  let failed: Error | undefined;
  const result = new Promise<number[]>((resolve, reject) => { worker.on('message', resolve); worker.on('error', (e) => { failed = e; reject(e); }); });
  const bell = new Int32Array(doorbell);
  const nextFault = async (): Promise<{ hart: number; page: number; write: boolean }> => {
    for (;;) {
      if (failed !== undefined) throw failed;
      const seen = Atomics.load(bell, 0);
      // A thread posts its fault again at each wake, before it looks at the page: the post of a wake that
      // installed the page may come after the page is in, and the host ignores it (DsmHost.service). So
      // does this test, or it would flake when that post beats the next fault.
      const [f] = pages.takeFaults().filter((x) => pages.holds(x.page) < (x.write ? HOLDS_WRITE : HOLDS_READ));
      if (f !== undefined) return f;
      const wait = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number, t: number): { async: boolean; value: Promise<string> | string } }).waitAsync(bell, 0, seen, 1000);
      if (wait.async) await wait.value;
    }
  };
  try {
    assert.deepEqual(await nextFault(), { hart: 1, page: 5, write: true });
    // A read permission does not answer a write: the thread posts the fault again when woken.
    pages.raise(5, HOLDS_READ);
    assert.deepEqual(await nextFault(), { hart: 1, page: 5, write: true });
    pages.raise(5, HOLDS_WRITE);
    assert.deepEqual(await nextFault(), { hart: 1, page: 6, write: false });
    pages.raise(6, HOLDS_READ);
    assert.deepEqual(await result, [PERM_RWX, PERM_RX]);
  } finally {
    await worker.terminate();
  }
});
