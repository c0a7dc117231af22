// The monitor's kinds of work: the named ids are the table's, and every exit cause the monitor charges has one.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as kinds from './monitor-kinds.js';

test('each KIND_ constant is its name\'s index in MONITOR_KINDS', () => {
  const names: Record<string, string> = {
    KIND_WORLD_SWITCH: 'world-switch', KIND_REFILL_L2: 'tlb-refill.l2', KIND_REFILL_WALK: 'tlb-refill.walk',
    KIND_FAULT_FILL: 'guest-page-fault.fill', KIND_FAULT_COPY: 'guest-page-fault.copy-on-write', KIND_FAULT_PROTECTION: 'guest-page-fault.protection',
    KIND_SBI_TIME: 'sbi.time', KIND_SBI_IPI: 'sbi.ipi', KIND_SBI_RFENCE: 'sbi.rfence', KIND_SBI_OTHER: 'sbi.other', KIND_MMIO: 'mmio',
    KIND_WFI: 'wfi', KIND_INTERRUPT: 'interrupt', KIND_CELL_MIGRATION: 'cell-migration', KIND_NUMA_POLICY: 'numa-policy',
    KIND_SCANNER: 'scanner', KIND_PAGING: 'paging', KIND_BALLOON: 'balloon', KIND_LENT_MEMORY: 'lent-memory', KIND_RESTORED: 'restored',
  };
  const constants = Object.entries(kinds).filter(([k]) => k.startsWith('KIND_'));
  assert.equal(constants.length, kinds.MONITOR_KIND_COUNT, 'a kind without a constant, or the reverse');
  for (const [constant, id] of constants) assert.equal(kinds.MONITOR_KINDS[id as number], names[constant], constant);
});

test('causeKind: exit causes by kind and detail; an unknown cause is an error', () => {
  const of = (cause: string): string => kinds.MONITOR_KINDS[kinds.causeKind(cause)]!;
  assert.equal(of('guest-page-fault.fill'), 'guest-page-fault.fill');
  assert.equal(of('guest-page-fault.copy-on-write'), 'guest-page-fault.copy-on-write');
  for (const c of ['protection', 'reference', 'collapse', 'wait', 'swap-in']) assert.equal(of(`guest-page-fault.${c}`), 'guest-page-fault.protection');
  assert.equal(of('sbi.time'), 'sbi.time');
  assert.equal(of('sbi.ipi'), 'sbi.ipi');
  assert.equal(of('sbi.rfence'), 'sbi.rfence');
  assert.equal(of('sbi.hsm'), 'sbi.other');
  assert.equal(of('mmio.ns16550a'), 'mmio');
  assert.equal(of('interrupt.timer'), 'interrupt');
  assert.equal(of('wfi'), 'wfi');
  assert.equal(of('world-switch'), 'world-switch');
  assert.equal(of('tlb-refill.l2'), 'tlb-refill.l2');
  assert.equal(of('tlb-refill.walk'), 'tlb-refill.walk');
  assert.throws(() => kinds.causeKind('bus-error.poison'), /no monitor kind/);
});

test('kindRecord: the kinds with cycles, in the table\'s order', () => {
  const cycles = new Float64Array(kinds.MONITOR_KIND_COUNT);
  cycles[kinds.KIND_MMIO] = 5;
  cycles[kinds.KIND_WORLD_SWITCH] = 7;
  assert.deepEqual(Object.entries(kinds.kindRecord(cycles)), [['world-switch', 7], ['mmio', 5]]);
});
