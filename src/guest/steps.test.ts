// Tests of build steps: a failing command names its step and log, and stops the other steps.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { StepError, StepRunner } from './steps.js';

const dir = mkdtempSync(join(tmpdir(), 'mb-steps-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const lines: string[] = [];
const quiet = { isTTY: false, write: (text: string) => lines.push(text) } as unknown as NodeJS.WriteStream;

describe('build steps', () => {
  it('logs a command and its output, and reports the step done', async () => {
    const runner = new StepRunner(join(dir, 'ok'), quiet);
    const out = await runner.step('greet', async (log) => {
      await log.run('sh', ['-c', 'echo to-the-log; echo err >&2']);
      return log.capture('sh', ['-c', 'echo captured']);
    });
    assert.equal(out, 'captured\n');
    const log = readFileSync(join(dir, 'ok', 'greet.log'), 'utf8');
    assert.match(log, /^\$ sh -c echo to-the-log/m);
    assert.match(log, /^to-the-log$/m);
    assert.match(log, /^err$/m);
    assert.ok(lines.some((l) => /greet done in/.test(l)));
    assert.match(readFileSync(runner.mainLog, 'utf8'), /greet done/);
  });

  it('a failing command fails its step with a one-line message naming the step and log, and later steps do not run', async () => {
    const runner = new StepRunner(join(dir, 'bad'), quiet);
    const failing = runner.step('compile', (log) => log.run('sh', ['-c', 'echo oops >&2; exit 3']));
    await assert.rejects(failing, (error: unknown) => {
      assert.ok(error instanceof StepError);
      assert.equal(error.step, 'compile');
      assert.equal(error.log, join(dir, 'bad', 'compile.log'));
      assert.match(error.message, /step "compile": sh exited with status 3 \(log: .*compile\.log\)/);
      assert.ok(!error.message.includes('\n'));
      return true;
    });
    assert.match(readFileSync(join(dir, 'bad', 'compile.log'), 'utf8'), /oops/);
    await assert.rejects(runner.step('next', async () => 1), /another step failed first/);
  });

  it('a command that cannot start is a step error too', async () => {
    const runner = new StepRunner(join(dir, 'missing'), quiet);
    await assert.rejects(runner.step('tool', (log) => log.run('no-such-tool-mirrorball', [])), /step "tool": cannot run no-such-tool-mirrorball/);
  });

  it('hands each line of a command\'s output to onLine and still logs it; a terminal shows the step\'s progress beside its name', async () => {
    const screen: string[] = [];
    const tty = { isTTY: true, columns: 100, write: (text: string) => screen.push(text) > 0 };
    const runner = new StepRunner(join(dir, 'progress'), tty);
    const seen: string[] = [];
    await runner.step('count', async (log) => {
      await log.run('sh', ['-c', 'printf "  CC      a.o\\n  LD      b\\n  CC      c.o"'], { onLine: (line) => seen.push(line) });
      log.progress('2/5 objects');
      runner.note('a note');
    });
    runner.finish();
    assert.deepEqual(seen, ['  CC      a.o', '  LD      b', '  CC      c.o'], 'the last line without a newline too');
    assert.match(readFileSync(join(dir, 'progress', 'count.log'), 'utf8'), /LD {6}b/);
    const afterNote = screen.slice(screen.indexOf('a note\n') + 1).join('');
    assert.match(afterNote, /guest: count \d+ s 2\/5 objects/);
  });

  it('without a terminal, prints no status line and no progress more than once a minute', async () => {
    const printed: string[] = [];
    const plain = { isTTY: false, write: (text: string) => printed.push(text) > 0 };
    const runner = new StepRunner(join(dir, 'plain'), plain);
    await runner.step('count', async (log) => {
      for (let i = 0; i < 100; i++) log.progress(`${i}/100 objects`);
    });
    assert.deepEqual(printed.filter((l) => /objects/.test(l)), []);
    assert.ok(printed.every((l) => !l.includes('\r')));
  });
});
