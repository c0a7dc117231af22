// A worker thread running one hart of a VM spanning hosts (board/coherent-hart.ts) in the rounds its host
// starts (dsm-host.ts, docs/giantvm.md). The control block is the threaded runner's (threaded-control.ts).

import { workerData } from 'node:worker_threads';
import { CoherentHart, type CoherentHartSpec } from '../board/coherent-hart.js';
import { ring } from '../board/forwarded-mmio.js';
import { CONTROL, NUMBERS } from './threaded-control.js';

export interface DsmWorkerData {
  index: number;
  spec: CoherentHartSpec;
  control: SharedArrayBuffer;
  numbers: SharedArrayBuffer;
}

const data = workerData as DsmWorkerData;
const hart = new CoherentHart(data.spec);
const control = new Int32Array(data.control);
const numbers = new Float64Array(data.numbers);
const doorbell = new Int32Array(data.spec.forwarding.doorbell);
const mine = NUMBERS.WORKERS + data.index * NUMBERS.PER_WORKER;
let generation = 0;
for (;;) {
  // Between rounds the thread sleeps on its wake word, which a round's start bumps too: what other harts
  // ask of this one (a remote fence, an IPI, an HSM start) is served meanwhile.
  const wake = hart.ram.wakeValue();
  if (Atomics.load(control, CONTROL.GENERATION) === generation) {
    hart.serve();
    hart.ram.sleep(wake);
    continue;
  }
  generation = Atomics.load(control, CONTROL.GENERATION);
  if (Atomics.load(control, CONTROL.STOP) !== 0) break;
  const round = hart.runRound(numbers[NUMBERS.START]!, numbers[NUMBERS.END]!);
  numbers[mine] = round.instructions;
  numbers[mine + 1] = round.idle ? 1 : 0;
  Atomics.add(control, CONTROL.DONE, 1);
  ring(doorbell);
}
