// The machine file of `mirrorball up`: what a good file gives, and one clear line per mistake in a bad one.

import assert from 'node:assert/strict';
import { DEFAULT_POLICY } from '../monitor/numa-policy.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MachineFileError, parseMachineFile, type MachineFileSpec } from './machine-file.js';
import { machineFileProblems } from '../../test/helpers/machine-file.js';

const MiB = 2 ** 20;

const problems = machineFileProblems;

describe('machine file', () => {
  it('reads net: user with run\'s --net words, and says what is wrong with one', () => {
    const spec = parseMachineFile(['vms:', '  - name: web', '    net: user,restrict=on,hostfwd=tcp::8080-:80'].join('\n'), 'm.yaml');
    assert.equal(spec.vms[0].net, false);
    assert.deepEqual(spec.vms[0].userNet?.forwards, [{ address: '127.0.0.1', hostPort: 8080, guestPort: 80 }]);
    assert.equal(spec.vms[0].userNet?.restrict, true);
    assert.deepEqual(problems(['vms:', '  - name: web', '    net: user,hostfwd=tcp::8080'].join('\n')),
      ['m.yaml:3:10: vms[0].net: hostfwd=tcp::8080 is not tcp:[ADDRESS]:HOSTPORT-:GUESTPORT (e.g. hostfwd=tcp::8080-:80)']);
  });

  it('reads the machine and its VMs with the command-line words, and fills the defaults', () => {
    const spec = parseMachineFile([
      'machine:',
      '  topology: numa4x2',
      '  memory: 2G',
      '  timing: true',
      'vms:',
      '  - name: web',
      '    smp: 2',
      '    memory: 256M',
      '    append: "quiet"',
      '    drive: file=disks/web.img,readonly=on',
      '    console-log: logs/web.log',
      '    rng: 7',
      '    net: true',
      '  - name: db',
      '    drive: [disks/db.img, "file=/abs/scratch.img"]',
    ].join('\n'), 'conf/m.yaml');
    assert.equal(spec.machine.name, 'numa4x2');
    assert.equal(spec.machine.config.nodes.length, 4);
    assert.equal(spec.machine.config.harts, 8);
    assert.equal(spec.machine.memoryBytes, 2048 * MiB);
    assert.equal(spec.machine.timing, true);
    assert.deepEqual(spec.vms[0], {
      name: 'web', smp: 2, memoryBytes: 256 * MiB, kernel: undefined, initrd: undefined, append: 'quiet',
      drives: [{ file: resolve('conf/disks/web.img'), readOnly: true }], consoleLog: resolve('conf/logs/web.log'), rng: 7, net: true, share: true, balloon: false,
    });
    assert.deepEqual(spec.vms[1], {
      name: 'db', smp: 1, memoryBytes: 128 * MiB, kernel: undefined, initrd: undefined, append: undefined,
      drives: [{ file: resolve('conf/disks/db.img'), readOnly: false }, { file: '/abs/scratch.img', readOnly: false }],
      consoleLog: undefined, rng: undefined, net: false, share: true, balloon: false,
    });
  });

  it('takes copy-on-write drives, the overlay\'s path from the file\'s directory too', () => {
    const spec = parseMachineFile([
      'vms:',
      '  - name: a',
      '    drive: file=root.img,snapshot=on',
      '  - name: b',
      '    drive: file=root.img,overlay=b.overlay',
    ].join('\n'), 'conf/m.yaml');
    assert.deepEqual(spec.vms[0]!.drives, [{ file: resolve('conf/root.img'), readOnly: false, snapshot: true }]);
    assert.deepEqual(spec.vms[1]!.drives, [{ file: resolve('conf/root.img'), readOnly: false, snapshot: true, overlay: resolve('conf/b.overlay') }]);
    assert.deepEqual(problems('vms:\n  - name: a\n    drive: file=r.img,snapshot=on,readonly=on\n'),
      ['m.yaml:3:12: vms[0].drive: readonly=on and snapshot=on exclude each other (a copy-on-write disk is written; its base never is)']);
  });

  it('a machine section is optional: 1 GiB, one hart, one node', () => {
    const spec = parseMachineFile('vms:\n  - name: a\n', 'm.yaml');
    assert.equal(spec.machine.memoryBytes, 1024 * MiB);
    assert.equal(spec.machine.config.harts, 1);
    assert.equal(spec.machine.config.nodes.length, 1);
    assert.equal(spec.machine.timing, false);
  });

  it('reports every mistake, each on one line with its place and the option as written in the file', () => {
    const found = problems([
      'machine:',
      '  smp: 40',
      '  colour: blue',
      'vms:',
      '  - name: a',
      '    memory: lots',
      '  - name: a',
      '    smp: 0',
      '    drive: file=x.img,readonly=maybe',
      '    net: yes',
      '  - smp: 2',
      '  - name: -bad',
    ].join('\n'));
    assert.deepEqual(found, [
      "m.yaml:3:3: machine: unknown key 'colour' (known: memory, smp, nodes, topology, distances, timing, cells, threads)",
      'm.yaml:2:3: machine.smp must be an integer from 1 to 32, not \'40\'',
      "m.yaml:6:13: vms[0].memory: 'lots' is not a size (try 512M or 2G)",
      "m.yaml:7:11: vms[1].name: 'a' is already the name of vms[0]",
      "m.yaml:8:10: vms[1].smp must be an integer from 1 to 32, not '0'",
      "m.yaml:9:12: vms[1].drive: readonly must be on or off, not 'maybe'",
      "m.yaml:10:10: vms[1].net: must be true (the VMs' subnet), false, or user[,hostfwd=tcp::HOSTPORT-:GUESTPORT...], not 'yes'",
      "m.yaml:11:5: vms[2]: needs a 'name'",
      "m.yaml:12:11: vms[3].name: '-bad' is not a VM name (letters, digits, '-' and '_', at most 32, not starting with '-' or '_')",
    ]);
    for (const line of found) assert.ok(!line.includes('\n'));
  });

  it('takes VMs that need more memory together than the machine has (overcommit), but not one that alone does', () => {
    assert.deepEqual(problems('machine:\n  memory: 256M\nvms:\n  - name: a\n    memory: 200M\n  - name: b\n    memory: 100M\n'), []);
    assert.deepEqual(problems('machine:\n  memory: 256M\nvms:\n  - name: a\n    memory: 512M\n'),
      ['m.yaml:4:3: vms[0].memory: 512 MiB is more than machine.memory (256 MiB)']);
  });

  it('takes the monitor\'s mmu, software by default, and refuses anything else', () => {
    const spec = (text: string): MachineFileSpec => parseMachineFile(text, 'm.yaml');
    assert.equal(spec('vms:\n  - name: a\n').monitor.mmu, 'software');
    assert.equal(spec('monitor:\n  mmu: nested\nvms:\n  - name: a\n').monitor.mmu, 'nested');
    assert.deepEqual(problems('monitor:\n  mmu: shadow\n  tlb: 9\nvms:\n  - name: a\n'), [
      "m.yaml:3:3: monitor: unknown key 'tlb' (known: mmu, placement, policy, policySignal, diskCache, shareBootImages, scan, gang, idleBalance, balancePeriodRounds, borrow, swap)",
      "m.yaml:2:8: monitor.mmu: must be software or nested, not 'shadow'",
    ]);
  });

  it('takes gang scheduling and the balancers between cells, off by default, and refuses what is not of their kind', () => {
    const spec = (text: string): MachineFileSpec => parseMachineFile(text, 'm.yaml');
    assert.equal(spec('vms:\n  - name: a\n').monitor.gang, false);
    assert.equal(spec('monitor:\n  gang: true\nvms:\n  - name: a\n').monitor.gang, true);
    assert.deepEqual(problems('monitor:\n  gang: yes\nvms:\n  - name: a\n'), ["m.yaml:2:9: monitor.gang: must be true or false, not 'yes'"]);
    assert.deepEqual([spec('vms:\n  - name: a\n').monitor.idleBalance, spec('vms:\n  - name: a\n').monitor.balancePeriodRounds], [false, 0]);
    const balanced = spec('monitor:\n  idleBalance: true\n  balancePeriodRounds: 256\nvms:\n  - name: a\n').monitor;
    assert.deepEqual([balanced.idleBalance, balanced.balancePeriodRounds], [true, 256]);
    assert.deepEqual(problems('monitor:\n  balancePeriodRounds: -3\nvms:\n  - name: a\n'), ["m.yaml:2:24: monitor.balancePeriodRounds: must be a whole number of rounds (0: off), not '-3'"]);
  });

  it('takes memory borrowing between cells: off by default, true for the defaults scaled to the machine, or sizes; one line per mistake', () => {
    const spec = (text: string): MachineFileSpec => parseMachineFile(text, 'm.yaml');
    const cells = 'machine:\n  topology: numa4x2\n  memory: 2G\n  cells: 4\n';
    assert.equal(spec(`${cells}vms:\n  - name: a\n`).monitor.borrow, undefined);
    assert.equal(spec(`${cells}monitor:\n  borrow: false\nvms:\n  - name: a\n`).monitor.borrow, undefined);
    // 2 GiB in 4 cells: 512 MiB a cell, twice the paper's 256 MiB.
    assert.deepEqual(spec(`${cells}monitor:\n  borrow: true\nvms:\n  - name: a\n`).monitor.borrow, { lowFree: 32 * MiB, keep: 8 * MiB, chunk: 8 * MiB, lenderMinFree: 64 * MiB });
    assert.deepEqual(spec(`${cells}monitor:\n  borrow: {chunk: 2M, lenderMinFree: 0}\nvms:\n  - name: a\n`).monitor.borrow, { lowFree: 32 * MiB, keep: 8 * MiB, chunk: 2 * MiB, lenderMinFree: 0 });
    assert.deepEqual(problems(`${cells}monitor:\n  borrow: {chunk: lots, keep: 0, colour: red}\nvms:\n  - name: a\n`), [
      "m.yaml:6:34: monitor.borrow: unknown key 'colour' (known: lowFree, keep, chunk, lenderMinFree)",
      "m.yaml:6:19: monitor.borrow.chunk: 'lots' is not a size (try 512M or 2G)",
      'm.yaml:6:31: monitor.borrow.keep: must be a whole number of 4 KiB pages (at least one), not 0 bytes',
    ]);
    assert.deepEqual(problems(`${cells}monitor:\n  borrow: 4M\nvms:\n  - name: a\n`), ['m.yaml:6:11: monitor.borrow: must be true, false or a mapping of sizes (lowFree, keep, chunk, lenderMinFree)']);
    assert.deepEqual(problems('monitor:\n  borrow: true\nvms:\n  - name: a\n'), ['m.yaml:2:11: monitor.borrow: memory borrowing is between cells: it needs machine.cells of 2 or more']);
  });

  it('takes a swap file for paging: off by default, a file beside the machine file and a size; a VM larger than the machine then fits', () => {
    const spec = (text: string): MachineFileSpec => parseMachineFile(text, 'conf/m.yaml');
    assert.equal(spec('vms:\n  - name: a\n').monitor.swap, undefined);
    assert.deepEqual(spec('machine:\n  memory: 256M\nmonitor:\n  swap: {file: m.swap, size: 512M}\nvms:\n  - name: a\n    memory: 512M\n').monitor.swap,
      { file: resolve('conf/m.swap'), bytes: 512 * MiB });
    assert.deepEqual(problems('monitor:\n  swap: {file: s, size: 0, colour: red}\nvms:\n  - name: a\n'), [
      "m.yaml:2:28: monitor.swap: unknown key 'colour' (known: file, size)",
      "m.yaml:2:25: monitor.swap.size: must be a whole number of 4 KiB pages, not '0'",
    ]);
    assert.deepEqual(problems('monitor:\n  swap: s.swap\nvms:\n  - name: a\n'), ['m.yaml:2:9: monitor.swap: must be a mapping of file and size']);
    assert.deepEqual(problems('monitor:\n  swap: {size: 1G}\nvms:\n  - name: a\n'), ['m.yaml:2:9: monitor.swap: needs both a file and a size']);
    assert.deepEqual(problems('machine:\n  memory: 256M\nmonitor:\n  swap: {file: s, size: 128M}\nvms:\n  - name: a\n    memory: 512M\n'),
      ['m.yaml:6:3: vms[0].memory: 512 MiB is more than machine.memory (256 MiB) and monitor.swap.size (128 MiB)']);
  });

  it('takes the sharing options: the disk cache (on by default), boot images through it, the scanner, and share per VM', () => {
    const spec = (text: string): MachineFileSpec => parseMachineFile(text, 'm.yaml');
    const plain = spec('vms:\n  - name: a\n');
    assert.deepEqual([plain.monitor.diskCache, plain.monitor.shareBootImages, plain.monitor.scan, plain.vms[0]!.share], [true, false, undefined, true]);
    const on = spec('monitor:\n  diskCache: false\n  shareBootImages: true\n  scan: {pagesPerSecond: 500, cpu: 3}\nvms:\n  - name: a\n    share: false\n');
    assert.deepEqual([on.monitor.diskCache, on.monitor.shareBootImages, on.monitor.scan, on.vms[0]!.share], [false, true, { pagesPerSecond: 500, cpu: 3 }, false]);
    assert.deepEqual(spec('monitor:\n  scan: true\nvms:\n  - name: a\n').monitor.scan, { pagesPerSecond: 2000, cpu: 0 });
    assert.deepEqual(spec('monitor:\n  scan: {idlePagesPerSecond: 0, mergeOnFirstMatch: true}\nvms:\n  - name: a\n').monitor.scan,
      { pagesPerSecond: 2000, idlePagesPerSecond: 0, mergeOnFirstMatch: true, cpu: 0 });
    assert.deepEqual(problems('monitor:\n  scan: {idlePagesPerSecond: -1, mergeOnFirstMatch: 1}\nvms:\n  - name: a\n'), [
      "m.yaml:2:53: monitor.scan.mergeOnFirstMatch: must be true or false, not '1'",
      "m.yaml:2:30: monitor.scan.idlePagesPerSecond: must be 0 (off) or a positive number of pages, not '-1'",
    ]);
    assert.deepEqual(problems('monitor:\n  scan: {pagesPerSecond: 0, cpu: x, rate: 1}\n  diskCache: maybe\nvms:\n  - name: a\n    share: no\n'), [
      "m.yaml:3:14: monitor.diskCache: must be true or false, not 'maybe'",
      "m.yaml:2:37: monitor.scan: unknown key 'rate' (known: pagesPerSecond, idlePagesPerSecond, mergeOnFirstMatch, cpu)",
      "m.yaml:2:26: monitor.scan.pagesPerSecond: must be a positive number of pages, not '0'",
      "m.yaml:2:34: monitor.scan.cpu: must be a CPU number, not 'x'",
      "m.yaml:6:12: vms[0].share: must be true or false, not 'no'",
    ]);
  });

  it('takes elf: a bare S-mode program from the file\'s directory, and refuses it with a kernel, initrd or append', () => {
    const spec = parseMachineFile(['vms:', '  - name: thin', '    smp: 4', '    elf: programs/thin-os.elf', '  - name: linux'].join('\n'), '/etc/m/m.yaml');
    assert.equal(spec.vms[0].elf, resolve('/etc/m/programs/thin-os.elf'));
    assert.equal(spec.vms[0].kernel, undefined);
    assert.equal(spec.vms[1].elf, undefined, 'a VM without it boots Linux');
    assert.deepEqual(problems(['vms:', '  - name: thin', '    elf: t.elf', '    kernel: Image', '    initrd: i.cpio', '    append: quiet'].join('\n')), [
      'm.yaml:4:13: vms[0].kernel: not with elf: the VM boots that program instead of Linux',
      'm.yaml:5:13: vms[0].initrd: not with elf: the VM boots that program instead of Linux',
      'm.yaml:6:13: vms[0].append: not with elf: the VM boots that program instead of Linux',
    ]);
    assert.deepEqual(problems(['vms:', '  - name: thin', '    elf: ""'].join('\n')), ['m.yaml:3:10: vms[0].elf: is empty']);
    assert.deepEqual(problems(['vms:', '  - name: thin', '    elf: t.elf', '    restore: t.snap'].join('\n')), ['m.yaml:3:5: vms[0].elf: not with restore: the snapshot says what the VM is']);
  });

  it('takes balloon per VM (off by default), and nothing but true or false', () => {
    const spec = (text: string): MachineFileSpec => parseMachineFile(text, 'm.yaml');
    assert.deepEqual(spec('vms:\n  - name: a\n  - name: b\n    balloon: true\n').vms.map((v) => v.balloon), [false, true]);
    assert.deepEqual(problems('vms:\n  - name: a\n    balloon: 4096\n'), ["m.yaml:3:14: vms[0].balloon: must be true or false, not '4096'"]);
  });

  it('takes the placement and the NUMA policy (its defaults, or parameters over them), which needs timing mode', () => {
    const spec = (text: string): MachineFileSpec => parseMachineFile(text, 'm.yaml');
    const timed = 'machine:\n  timing: true\n';
    assert.deepEqual([spec('vms:\n  - name: a\n').monitor.placement, spec('vms:\n  - name: a\n').monitor.policy], ['home', undefined]);
    assert.equal(spec('monitor:\n  placement: round-robin\nvms:\n  - name: a\n').monitor.placement, 'round-robin');
    assert.deepEqual(spec(`${timed}monitor:\n  policy: true\nvms:\n  - name: a\n`).monitor.policy, DEFAULT_POLICY);
    assert.equal(spec(`${timed}monitor:\n  policy: false\nvms:\n  - name: a\n`).monitor.policy, undefined);
    assert.deepEqual(spec(`${timed}monitor:\n  policy:\n    hotMisses: 64\n    migrateShare: 0.9\nvms:\n  - name: a\n`).monitor.policy,
      { ...DEFAULT_POLICY, hotMisses: 64, migrateShare: 0.9 });
    assert.deepEqual(problems(`${timed}monitor:\n  placement: first-touch\n  policy:\n    hotMisses: lots\n    moveLimit: 0\n    decay: 2\nvms:\n  - name: a\n`), [
      "m.yaml:4:14: monitor.placement: must be home or round-robin, not 'first-touch'",
      "m.yaml:8:5: monitor.policy: unknown key 'decay' (known: hotMisses, tlbHotMisses, sharedHotMisses, tlbSharedHotMisses, migrateShare, writeSharedWrites, intervalRounds, moveLimit, freezeIntervals, blockPages, coalescePages, replicateGroupPages)",
      "m.yaml:6:16: monitor.policy.hotMisses: must be a number, not 'lots'",
      'm.yaml:6:5: monitor.policy: moveLimit must be a whole number of at least 1, not 0',
    ]);
    assert.deepEqual(problems('monitor:\n  policy: true\nvms:\n  - name: a\n'),
      ['m.yaml:2:11: monitor.policy: needs machine.timing: true (the policy reads the miss counters of timing mode), or policySignal: tlb-misses']);
    // On the TLB-miss signal it needs no timing mode; the signal is one of two.
    const tlb = spec('monitor:\n  policy: true\n  policySignal: tlb-misses\nvms:\n  - name: a\n').monitor;
    assert.deepEqual([tlb.policySignal, tlb.policy], ['tlb-misses', DEFAULT_POLICY]);
    assert.equal(spec(`${timed}monitor:\n  policy: true\nvms:\n  - name: a\n`).monitor.policySignal, 'cache-misses');
    assert.deepEqual(problems('monitor:\n  policySignal: page-faults\nvms:\n  - name: a\n'),
      ["m.yaml:2:17: monitor.policySignal: must be cache-misses or tlb-misses, not 'page-faults'"]);
    assert.deepEqual(problems('monitor:\n  policy: 3\nvms:\n  - name: a\n'),
      ['m.yaml:2:11: monitor.policy: must be true, false or a mapping of parameters (hotMisses, tlbHotMisses, sharedHotMisses, tlbSharedHotMisses, migrateShare, writeSharedWrites, intervalRounds, moveLimit, freezeIntervals, blockPages, coalescePages, replicateGroupPages)']);
  });

  it('takes a campaign script of faults, in the file or in a JSON file beside it, each checked against the machine', () => {
    const spec = (text: string, name = 'm.yaml'): MachineFileSpec => parseMachineFile(text, name);
    assert.deepEqual(spec('vms:\n  - name: a\n').faults, []);
    const machine = 'machine:\n  topology: numa4x2\n  memory: 1G\n';
    assert.deepEqual(spec(`${machine}faults:\n  - time: 20ms\n    fault: node 2\n  - { time: 1s, fault: link 0-1 }\nvms:\n  - name: a\n`).faults, [
      { time: 2_000_000, fault: { kind: 'node', node: 2 } }, { time: 100_000_000, fault: { kind: 'link', a: 0, b: 1 } },
    ]);
    assert.deepEqual(problems(`${machine}faults:\n  - time: 20ms\n    fault: node 4\n  - time: 5\n    fault: link 0-1\n  - { time: 1ms, fault: link 0-3 }\nvms:\n  - name: a\n`), [
      'm.yaml:5:3: faults: fault 1: no node 4: the machine has nodes 0 to 3',
      "m.yaml:5:3: faults: fault 2: '5' is not a simulated time: write a number with a unit, as 20ms, 150us or 1.5s",
      'm.yaml:5:3: faults: fault 3: no link 0-3: the links are 0-1, 0-2, 1-3, 2-3',
    ]);
    assert.deepEqual(problems('faults: node 2\nvms:\n  - name: a\n'), ["m.yaml:1:9: faults: cannot read the fault script 'node 2': ENOENT"]);
    // A machine that cannot be laid out (found by the fuzzer: it threw) leaves the faults checked for form only.
    assert.deepEqual(problems('machine:\n  memory: 999999999999G\nfaults:\n  - { time: soon, fault: node 1 }\nvms:\n  - name: a\n'),
      ["m.yaml:4:3: faults: fault 1: 'soon' is not a simulated time: write a number with a unit, as 20ms, 150us or 1.5s"]);
    const dir = mkdtempSync(join(tmpdir(), 'mb-faults-'));
    try {
      writeFileSync(join(dir, 'campaign.json'), JSON.stringify([{ time: '150us', fault: 'cpu 7' }, { time: '1ms', fault: 'page 0x80001000' }]));
      const file = join(dir, 'm.yaml');
      assert.deepEqual(spec(`${machine}faults: campaign.json\nvms:\n  - name: a\n`, file).faults, [
        { time: 15_000, fault: { kind: 'cpu', cpu: 7 } }, { time: 100_000, fault: { kind: 'page', address: 0x8000_1000 } },
      ]);
      writeFileSync(join(dir, 'bad.json'), '[{"time": "1ms", "fault": "cpu 8"}]');
      assert.throws(() => spec(`${machine}faults: bad.json\nvms:\n  - name: a\n`, file),
        (e: unknown) => e instanceof MachineFileError && e.problems.join() === `${file}:4:9: faults: fault 1: no CPU 8: the machine has CPUs 0 to 7`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names the machine options as the file spells them in topology errors', () => {
    assert.deepEqual(problems('machine:\n  topology: numa4x2\n  nodes: 2\nvms:\n  - name: a\n'),
      ['m.yaml:2:3: machine.topology and machine.nodes cannot be used together: the topology fixes the nodes']);
  });

  it('gives a YAML syntax error as one line with its position', () => {
    const found = problems('vms:\n  - name: a\n    smp: [1,\n');
    assert.equal(found.length >= 1, true);
    assert.match(found[0]!, /^m\.yaml:\d+:\d+: \S/);
  });

  it('rejects a file that is not a mapping, a missing or empty VM list, and duplicated keys', () => {
    assert.match(problems('- a\n- b\n')[0]!, /^m\.yaml:1:1: the machine file must be a mapping/);
    assert.deepEqual(problems('machine:\n  memory: 1G\n'), ["m.yaml:1:1: no 'vms': list the virtual machines to start (at least one)"]);
    assert.deepEqual(problems('vms: []\n'), ['m.yaml:1:6: vms: must be a list of virtual machines (at least one)']);
    assert.match(problems('vms:\n  - name: a\n    name: b\n')[0]!, /^m\.yaml:3:\d+: .*[Mm]ap keys must be unique/);
  });

  it('any text gives a spec or MachineFileError lines, never another exception', () => {
    fc.assert(fc.property(fc.string({ maxLength: 200 }), (text) => {
      const found = problems(text);
      for (const line of found) assert.match(line, /^m\.yaml(:\d+:\d+)?: /);
    }), { numRuns: 300 });
    const yamlish = fc.array(fc.constantFrom('vms:', '  - name: a', '    smp: 3', 'machine:', '  memory: 1G', '  - x', ': :', '    drive: [', '  nodes: 2', '\t', '"'), { maxLength: 12 });
    fc.assert(fc.property(yamlish, (lines) => {
      for (const line of problems(lines.join('\n'))) assert.match(line, /^m\.yaml(:\d+:\d+)?: /);
    }), { numRuns: 300 });
  });
});
