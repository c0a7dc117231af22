import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Monitor } from '../monitor/monitor.js';
import { runMonitor } from './monitor-runner.js';

/**
 * A stand-in for the monitor and a driven guest: a command keeps the guest busy for 3 rounds, then it idles.
 * The host, like MonitorSession, hands over what it has at idle moments (a mode switch, then a command) from
 * `atIdle` or after a round. The trace says at which round each thing was handed over.
 */
async function drive(batchMs: number): Promise<string[]> {
  const trace: string[] = [];
  let rounds = 0;
  let busyRounds = 0;
  let commandsLeft = 6;
  const deferred: (() => void)[] = [];
  let release: (() => void) | undefined;
  const monitor = {
    idleSkipLimit: Infinity,
    cycles: 0,
    get running(): boolean { return commandsLeft > 0 || busyRounds > 0 || deferred.length > 0; },
    get idle(): boolean { return busyRounds === 0; },
    runRound(): void {
      rounds++;
      if (busyRounds > 0) busyRounds--;
      else trace.push(`empty round ${rounds}`);
    },
  };
  const waitingForHost = (): boolean => busyRounds === 0;
  const deliver = (): void => {
    for (const action of deferred.splice(0)) action();
  };
  const queue = (what: string, action: () => void): Promise<void> => new Promise((resolve) => {
    deferred.push(() => {
      trace.push(`${what} after round ${rounds}`);
      action();
      resolve();
    });
    const r = release;
    release = undefined;
    r?.();
  });
  const host = (async () => {
    while (commandsLeft > 0) {
      await queue('mode switch', () => {});
      await queue('command', () => {
        commandsLeft--;
        busyRounds = 3;
      });
    }
  })();
  await runMonitor(monitor as unknown as Monitor, {
    batchMs,
    idleHold: {
      waitingForHost,
      atIdle: () => {
        if (!waitingForHost()) return false;
        if (deferred.length === 0) return true;
        deliver();
        return false;
      },
      whenReleased: () => new Promise<void>((resolve) => { release = resolve; }),
    },
    afterRound: () => { if (monitor.idle && waitingForHost()) deliver(); },
  });
  await host;
  return trace;
}

test('a run held at idle does not depend on how long the runner goes between looks at the host', async () => {
  const short = await drive(0);
  const long = await drive(1000);
  assert.deepEqual(short, long);
  // Nothing runs between a delivery that leaves the guest idle and the host's next one: no empty rounds.
  assert.deepEqual(short.filter((line) => line.startsWith('empty')), []);
  assert.equal(short.filter((line) => line.startsWith('command')).length, 6);
});
