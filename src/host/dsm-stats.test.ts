// The DSM's counters as statistics (dsm-stats.ts): the round trips' buckets, and dsm.* in stats.json.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatStatsJson, StatsRegistry } from '../timing/stats.js';
import type { HostReport } from './dsm-host.js';
import { registerDsmStats, RTT_BUCKETS, rttBucket, rttHistogram, rttLabels } from './dsm-stats.js';

test('round trips fall in power-of-two buckets of microseconds, the last open', () => {
  assert.deepEqual([0, 1.9, 2, 3.9, 4, 127, 128, 2 ** 40].map(rttBucket), [0, 0, 1, 1, 2, 6, 7, RTT_BUCKETS - 1]);
  assert.equal(rttLabels()[0], 'us_0_2');
  assert.equal(rttLabels()[7], 'us_128_256');
  assert.equal(rttLabels()[RTT_BUCKETS - 1], `us_${2 ** (RTT_BUCKETS - 1)}_up`);
  assert.deepEqual(rttHistogram([1, 130, 140, 5000]).filter((n) => n > 0), [1, 2, 1]);
});

test('two hosts\' reports become dsm.* statistics; the most-bounced pages are named by address, most first', () => {
  const report = (host: number, bounces: [number, number][]): HostReport => ({
    host, readFaults: 3 + host, writeFaults: 2, upgradeFaults: 1, bytesSent: 8192, held: 0, roundTripsUs: [100, 120, 900], roundTripCount: 3,
    rttHistogram: rttHistogram([100, 120, 900]), pages: [1, 2, 3], bounces, instructions: 10,
    ...(host === 0 ? { linesSent: 4, dma: { readPages: 5, writePages: 6, waits: 7, bytesRead: 100, bytesWritten: 200 } } : {}),
  });
  const stats = new StatsRegistry();
  registerDsmStats(stats, [report(0, [[2, 5]]), report(1, [[0x10, 9], [1, 1]])], 0x8000_0000);
  const json = JSON.parse(formatStatsJson(stats.snapshot())) as Record<string, { value?: number; values?: Record<string, number>; total?: number }>;
  assert.deepEqual(json['dsm.host1.faults']?.values, { read: 4, write: 2, upgrade: 1 });
  assert.equal(json['dsm.host0.roundTripMedian']?.value, 120);
  assert.equal(json['dsm.host0.roundTripHistogram']?.total, 3);
  assert.equal(json['dsm.host0.roundTripHistogram']?.values?.us_64_128, 2);
  assert.deepEqual(json['dsm.host0.dmaPages']?.values, { read: 5, write: 6 });
  assert.equal(json['dsm.host0.dmaWaits']?.value, 7);
  assert.equal(json['dsm.host0.linesSent']?.value, 4);
  assert.equal(json['dsm.host1.dmaPages'], undefined, 'only host 0 has devices');
  assert.deepEqual(Object.keys(json['dsm.bounced']?.values ?? {}), ['p0x80010000', 'p0x80002000', 'p0x80001000']);
});
