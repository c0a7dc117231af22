// Loaded with `node --import` into a process a bench measures: at exit it writes the process's CPU time
// (user and system, all threads, microseconds) to the file $MIRRORBALL_CPU_REPORT names.

import { writeFileSync } from 'node:fs';

const path = process.env.MIRRORBALL_CPU_REPORT;
if (path !== undefined && path !== '') {
  process.on('exit', () => writeFileSync(path, JSON.stringify(process.cpuUsage())));
}
