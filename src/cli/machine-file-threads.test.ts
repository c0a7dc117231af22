// `machine.threads` and `up --threads`: the count read and checked, and what threads cannot run yet refused,
// one line each at its own place in the file.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MachineFileError, parseMachineFile } from './machine-file.js';
import { machineFileProblems as problems } from '../../test/helpers/machine-file.js';
import { parseUpThreads } from './machine-file-threads.js';
import { UsageError } from './options.js';

const file = (...lines: string[]): string => lines.join('\n');
const TWO = ['machine:', '  smp: 2', '  memory: 512M', '  threads: 2'];
const VMS = ['vms:', '  - name: a', '  - name: b'];

function flagProblems(text: string, threads: number): string[] {
  try {
    parseMachineFile(text, 'm.yaml', { threads });
    return [];
  } catch (error) {
    if (error instanceof MachineFileError) return error.problems;
    throw error;
  }
}

describe('machine.threads', () => {
  it('is 1 by default, keeping the page cache on; with 2 the page cache is off unless asked for, and then refused', () => {
    const one = parseMachineFile(file('machine:', '  smp: 2', ...VMS), 'm.yaml');
    assert.equal(one.machine.threads, 1);
    assert.equal(one.monitor.diskCache, true);
    const two = parseMachineFile(file(...TWO, ...VMS), 'm.yaml');
    assert.equal(two.machine.threads, 2);
    assert.equal(two.monitor.diskCache, false);
    assert.deepEqual(problems(file(...TWO, 'monitor:', '  diskCache: true', ...VMS)),
      ['m.yaml:6:14: monitor.diskCache: not with 2 threads yet: the page cache is the whole machine\'s, and each thread has its own memory (docs/threads.md)']);
  });

  it('says what is wrong with a count, in one line', () => {
    assert.deepEqual(problems(file('machine:', '  smp: 2', '  threads: 0', ...VMS)), ['m.yaml:3:12: machine.threads must be an integer from 1 to 64, not \'0\'']);
    assert.deepEqual(problems(file('machine:', '  smp: 2', '  threads: two', ...VMS)), ['m.yaml:3:12: machine.threads must be an integer from 1 to 64, not \'two\'']);
    assert.deepEqual(problems(file('machine:', '  smp: 2', '  threads: 4', ...VMS)),
      ['m.yaml:3:12: machine.threads: 4: 4 threads need 4 CPUs at least, and the machine has 2']);
    assert.deepEqual(problems(file('machine:', '  smp: 3', '  threads: 2', ...VMS)),
      ['m.yaml:3:12: machine.threads: 2: 2 threads must divide the machine\'s 3 CPUs (each thread gets as many)']);
    assert.deepEqual(problems(file(...TWO, 'vms:', '  - name: big', '    memory: 300M')),
      ['m.yaml:4:12: machine.threads: 2: vm big: 300 MiB is more than a thread\'s part of the machine (256 MiB with 2 threads)']);
    assert.throws(() => parseUpThreads('0'), new UsageError('--threads must be an integer from 1 to 64, not \'0\''));
    assert.equal(parseUpThreads('2'), 2);
  });

  it('refuses, one line each at its place, what threads cannot run yet', () => {
    assert.deepEqual(problems(file(
      'machine:', '  topology: numa4x2', '  memory: 1G', '  timing: true', '  threads: 2',
      'monitor:', '  policy: true', '  scan: true', '  shareBootImages: true', '  swap:', '    file: m.swap', '    size: 64M',
      'faults:', '  - time: 1s', '    fault: node 1',
      'vms:', '  - name: a', '    net: true', '  - name: b', '    net: user', '  - name: c', '    restore: c.snap',
    )), [
      'm.yaml:4:11: machine.timing: not with machine.threads: 2 yet: timing mode runs on one thread (docs/threads.md)',
      'm.yaml:7:11: monitor.policy: not with machine.threads: 2 yet: the NUMA policy moves pages between nodes that threads hold apart (docs/threads.md)',
      'm.yaml:8:9: monitor.scan: not with machine.threads: 2 yet: the content scanner merges pages of every VM, and each thread has its own memory (docs/threads.md)',
      'm.yaml:9:20: monitor.shareBootImages: not with machine.threads: 2 yet: boot images go through the page cache, which threads do not have (docs/threads.md)',
      'm.yaml:11:5: monitor.swap: not with machine.threads: 2 yet: the pager and its swap file are one machine\'s (docs/threads.md)',
      'm.yaml:14:3: faults: not with machine.threads: 2 yet: fault recovery reads one monitor\'s machine (docs/threads.md)',
      'm.yaml:18:10: vms[0].net: not with machine.threads: 2 yet: the VMs\' subnet and user networks live on the main thread (docs/threads.md)',
      'm.yaml:20:10: vms[1].net: not with machine.threads: 2 yet: the VMs\' subnet and user networks live on the main thread (docs/threads.md)',
      'm.yaml:22:14: vms[2].restore: not with machine.threads: 2 yet: snapshots are one monitor\'s (docs/threads.md)',
    ]);
    // Threads' refusals come once the rest of the file is right: cells, with no other option against them.
    assert.deepEqual(problems(file('machine:', '  topology: numa4x2', '  cells: 2', '  threads: 2', ...VMS)),
      ['m.yaml:3:10: machine.cells: not with machine.threads: 2 yet: cells are scheduled and recovered by one monitor (docs/threads.md)']);
  });

  it('takes up --threads over the file, and names the flag in what it refuses', () => {
    const text = file('machine:', '  smp: 2', '  memory: 512M', '  threads: 2', 'monitor:', '  scan: true', ...VMS);
    assert.deepEqual(flagProblems(text, 1), []);
    assert.equal(parseMachineFile(text, 'm.yaml', { threads: 1 }).machine.threads, 1);
    assert.deepEqual(flagProblems(file('machine:', '  smp: 2', 'monitor:', '  scan: true', ...VMS), 2),
      ['m.yaml:4:9: monitor.scan: not with --threads 2 yet: the content scanner merges pages of every VM, and each thread has its own memory (docs/threads.md)']);
  });
});
