import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { findBuiltGuest } from './src/guest/artifacts.js';
import { MonitorSession } from './src/guest/monitor-session.js';
import { GuestSession } from './src/guest/session.js';
import { accountVm } from './src/monitor/accounting.js';
const g = findBuiltGuest()!;
const MiB = 2 ** 20;
const config = { harts: 2, nodes: [{ memoryBytes: 256 * MiB, harts: [0, 1] }] };
const cmds = (process.argv[2] ?? 'cpubench -n 2|pmake -j 2 -n 8 -l 100').split('|');
const kernel = readFileSync(g.kernel), initrd = readFileSync(g.initramfs);
let t = performance.now();
const bare = await GuestSession.boot({ kernel, initrd, config });
console.log('bare boot', ((performance.now() - t) / 1000).toFixed(1), 'instr', bare.instructions);
for (const c of cmds) { t = performance.now(); const r = await bare.exec(c); console.log('bare', c, ((performance.now() - t) / 1000).toFixed(2), r.output.match(/RESULT.*/)?.[0]); }
await bare.kill();
t = performance.now();
const mon = await MonitorSession.boot({ kernel, initrd, config, vms: [{ name: 'a', vcpus: 2, memoryBytes: 256 * MiB }] });
console.log('vm boot', ((performance.now() - t) / 1000).toFixed(1), 'cycles', mon.monitor.cycles);
const vm = mon.vm('a');
for (const c of cmds) {
  const a0 = accountVm(mon.monitor, vm).total;
  t = performance.now(); const r = await mon.exec('a', c);
  const a1 = accountVm(mon.monitor, vm).total;
  const d = Object.fromEntries(Object.entries(a1).map(([k, v]) => [k, v - (a0 as any)[k]]));
  console.log('vm', c, ((performance.now() - t) / 1000).toFixed(2), r.output.match(/RESULT.*/)?.[0], JSON.stringify(d));
}
await mon.kill();
