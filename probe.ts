import { Monitor } from './src/monitor/monitor.js';
import { MemorySwapStore } from './src/monitor/swap-store.js';
import { RAM_BASE } from './src/board/address-map.js';
import { ACCESS_WRITE } from './src/memory/bus.js';
const MiB = 2 ** 20;
const quiet = () => {};
const config = { harts: 1, nodes: [{ memoryBytes: 16 * MiB, harts: [0] }] };
const m0 = new Monitor({ config, log: quiet });
for (let i = 0; i < 3; i++) m0.createVm({ name: `vm${i}`, vcpus: 1, memoryBytes: 16 * MiB, console: quiet, log: quiet, secondLevelEntries: 64 });
const free = m0.memory.pagesFree(0);
console.log('free', free);
const store = new MemorySwapStore(4096);
const monitor = new Monitor({ config, log: quiet, swap: { store, reservePages: free - 30, batchPages: 2 } });
const vm = monitor.createVm({ name: `vm0`, vcpus: 1, memoryBytes: 16 * MiB, console: quiet, log: quiet, secondLevelEntries: 64 });
console.log('free now', monitor.memory.pagesFree(0), monitor.pager!.reservePages);
for (let g = 0; g < 60; g++) {
  const a = vm.handleExit(0, { kind: 'guest-page-fault', cause: 23, gpa: RAM_BASE + g * 4096, va: 0, access: ACCESS_WRITE, needs: ACCESS_WRITE, implicit: false });
  const r = vm.machine.bus.resolveRam(RAM_BASE + g * 4096, ACCESS_WRITE);
  if (r) r.u8[vm.machine.bus.resolvedOffset] = g + 1;
  if (g % 10 === 0) console.log(g, a, monitor.memory.pagesFree(0), monitor.memory.pagesReserved(), monitor.pager!.totals, monitor.pager!.fifo().length);
}
