// Host-facing fuzz targets: the control socket (malformed JSON, huge lines, unknown commands, random arguments,
// clients that connect and drop), machine files, and command-line flags. A host user's bad input must get one
// line of error, never a crash, a hang or a wedged server.

import fc from 'fast-check';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { createProgram } from '../../cli/program.js';
import { MachineFileError, parseMachineFile } from '../../cli/machine-file.js';
import { UsageError } from '../../cli/options.js';
import { monitorCommands } from '../../control/monitor-commands.js';
import { ConsoleHub } from '../../control/console-commands.js';
import { QmpError } from '../../control/qmp.js';
import { MAX_LINE_BYTES } from '../../control/qmp.js';
import { ControlServer } from '../../control/server.js';
import { Monitor } from '../../monitor/monitor.js';
import type { FuzzSession, FuzzTarget } from '../harness.js';

const MiB = 2 ** 20;
const COMMANDS = ['qmp_capabilities', 'query-commands', 'query-vms', 'vm-stop', 'query-vm-stats', 'query-monitor', 'share-pages', 'set-policy',
  'set-mode', 'stats-dump', 'snapshot-save', 'inject-fault', 'query-failure-report', 'quit', 'query-cpus', 'vm-start',
  'console-subscribe', 'console-unsubscribe', 'console-input', 'nonsense', '', 'QUERY-VMS', '__proto__', 'constructor', 'toString', 'hasOwnProperty'];
const ARGUMENT_NAMES = ['vm', 'mode', 'dir', 'file', 'enabled', 'hotMisses', 'tlbHotMisses', 'migrateShare', 'writeSharedWrites', 'intervalRounds',
  'moveLimit', 'freezeIntervals', 'fault', 'time', 'from', 'enable', 'data', 'token', '__proto__', 'x'];
/** Values for file and directory arguments: relative, inside the session's run directory only. */
const SAFE_PATH = fc.constantFrom('stats', 'a', 'x.snap', '', '.', 'deep/er');

const anyValue = fc.oneof(
  fc.constantFrom(null, true, false, 0, -1, 1.5, 1e308, -0, 2 ** 53 + 2, 'a', 'fast', 'timing', 'target', 'canary', '', '\u0000', '💥',
    'node 0', 'cpu 0', 'link 0-1', 'page 0x80000000', 'line 0x80001040', '5ms', '1e400s', 'aGVsbG8K', '====', 'YQ', 'A'.repeat(8000)),
  fc.jsonValue({ maxDepth: 2 }),
);

/** A line: a QMP command with arguments from the dictionary, or JSON of any shape, or not JSON at all. */
const line = fc.oneof(
  { weight: 5, arbitrary: fc.record({
    execute: fc.constantFrom(...COMMANDS),
    arguments: fc.option(fc.dictionary(fc.constantFrom(...ARGUMENT_NAMES), anyValue, { maxKeys: 3 }), { nil: undefined }),
    id: fc.option(anyValue, { nil: undefined }),
  }).map((command) => {
    const args = command.arguments;
    if (args !== undefined && typeof args === 'object' && args !== null) {
      for (const key of ['dir', 'file']) if (key in args) (args as Record<string, unknown>)[key] = 'stats';
    }
    return JSON.stringify(command);
  }) },
  { weight: 2, arbitrary: fc.json({ maxDepth: 3 }).filter((text) => !/"(dir|file)"/.test(text)) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 80 }).map((text) => text.replace(/"(dir|file)"/g, '"x"')) },
  { weight: 1, arbitrary: fc.constantFrom('{', '}', '[]', 'null', '{"execute":', '{"execute":"quit"', '\r', '{"arguments":{}}', '{}{}', '"\\ud800"') },
);

type ClientAction =
  | { kind: 'lines'; lines: string[]; split: number }
  /** One line longer than the server takes: it answers with an error and closes. */
  | { kind: 'huge'; bytes: number }
  /** Connects, maybe sends part of a line, and drops the connection at once. */
  | { kind: 'drop'; partial: string };

export interface ControlCase { clients: ClientAction[] }

const controlCases: fc.Arbitrary<ControlCase> = fc.record({
  clients: fc.array(fc.oneof(
    { weight: 6, arbitrary: fc.record({ kind: fc.constant('lines' as const), lines: fc.array(line, { minLength: 1, maxLength: 8 }), split: fc.nat({ max: 7 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('huge' as const), bytes: fc.constantFrom(MAX_LINE_BYTES + 1, 4 * MAX_LINE_BYTES) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('drop' as const), partial: fc.oneof(fc.constant(''), line) }) },
  ), { minLength: 1, maxLength: 3 }),
});

/** A connection that collects reply lines and says when one of them is the answer to `id`. */
class Client {
  private buffer = '';
  readonly replies: unknown[] = [];
  private wanted: { id: string; resolve: () => void } | undefined;
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      this.buffer += text;
      for (let i = this.buffer.indexOf('\n'); i >= 0; i = this.buffer.indexOf('\n')) {
        const reply = JSON.parse(this.buffer.slice(0, i)) as Record<string, unknown>; // every reply is one JSON object
        this.buffer = this.buffer.slice(i + 1);
        this.replies.push(reply);
        if (this.wanted !== undefined && reply.id === this.wanted.id) this.wanted.resolve();
      }
    });
    const end = (): void => { this.closed = true; this.wanted?.resolve(); };
    socket.on('close', end);
    socket.on('error', end);
  }

  static connect(path: string): Promise<Client> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(path);
      socket.once('connect', () => resolve(new Client(socket)));
      socket.once('error', reject);
    });
  }

  /** Sends `text`, then a marker command, and waits for the marker's answer (or the server closing). */
  async roundTrip(text: string, id: string): Promise<boolean> {
    const answered = new Promise<void>((resolve) => { this.wanted = { id, resolve }; });
    this.socket.write(`${text}{"execute":"query-commands","id":"${id}"}\n`);
    await answered;
    this.wanted = undefined;
    return this.replies.some((r) => (r as Record<string, unknown>).id === id);
  }
}

function controlTarget(): FuzzTarget<ControlCase> {
  return {
    name: 'control-socket',
    surface: 'the monitor\'s control socket: malformed JSON, huge lines, unknown commands, random arguments (console input among them), clients that connect and drop',
    cases: controlCases,
    async: true,
    async open(): Promise<FuzzSession<ControlCase>> {
      const dir = mkdtempSync(join(tmpdir(), 'mirrorball-fuzz-'));
      const path = join(dir, 'control.sock');
      const monitor = new Monitor({ config: { harts: 1, nodes: [{ memoryBytes: 32 * MiB, harts: [0] }] } });
      for (const name of ['target', 'canary']) monitor.createVm({ name, vcpus: 1, memoryBytes: 16 * MiB, console: () => {}, log: () => {} });
      const commands = monitorCommands({
        monitor, consolePath: () => undefined, stopVm: (vm) => monitor.stopVm(vm), quit: () => {}, runDir: dir,
        statsConfig: () => ({}), saveSnapshot: () => ({ saved: true }),
      });
      // The consoles on the protocol: typing goes into the VM's UART; some output to follow.
      const hub = new ConsoleHub({
        check: (name) => { if (monitor.vm(name) === undefined) throw new QmpError('GenericError', `no VM named '${name}'`); },
        input: (name, bytes) => {
          const vm = monitor.vm(name);
          if (vm?.state !== 'running') throw new QmpError('GenericError', `VM '${name}' is not running`);
          vm.machine.uart.input(bytes);
        },
      });
      Object.assign(commands, hub.commands());
      const server = await ControlServer.listen(path, commands, { name: 'mirrorball', version: 'fuzz' });
      let marker = 0;
      return {
        async run(c) {
          hub.output('target', new TextEncoder().encode(`case ${marker}\n`));
          for (const action of c.clients) {
            const client = await Client.connect(path);
            try {
              switch (action.kind) {
                case 'lines': {
                  const text = action.lines.map((l) => `${l}\n`).join('');
                  // The text in two pieces, cut anywhere: a line may arrive in parts.
                  const cut = Math.floor(text.length * action.split / 8);
                  client.socket.write(text.slice(0, cut));
                  const ok = await client.roundTrip(text.slice(cut), `m${marker++}`);
                  if (!ok) throw new Error('the server closed a connection that sent only lines of ordinary length');
                  break;
                }
                case 'huge': {
                  await client.roundTrip(`${'x'.repeat(action.bytes)}\n`, `m${marker++}`);
                  break;
                }
                case 'drop':
                  client.socket.write(action.partial);
                  break;
              }
            } finally {
              client.socket.destroy();
            }
          }
          // Whatever happened, a new client is served.
          const probe = await Client.connect(path);
          try {
            if (!(await probe.roundTrip('{"execute":"qmp_capabilities"}\n', `p${marker++}`))) throw new Error('the server no longer answers a new client');
          } finally {
            probe.socket.destroy();
          }
        },
        async close() {
          await server.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  };
}

// ---- machine files ----

const KEYS = ['machine', 'monitor', 'vms', 'memory', 'smp', 'nodes', 'topology', 'distances', 'timing', 'mmu', 'placement', 'policy', 'policySignal',
  'name', 'kernel', 'initrd', 'append', 'elf', 'drive', 'console-log', 'rng', 'net', 'restore', 'hotMisses', 'intervalRounds', 'x'];
const scalars = fc.oneof(
  fc.constantFrom('1G', '128M', '16M', '0', '-1', '1e400', '0x10', '4K', '999999999999G', 'numa4x2', 'flash8', 'uma', 'nested', 'software',
    'round-robin', 'home', 'tlb-misses', 'true', 'yes', '~', '"a"', '10,20;20,10', '[10, 20]', 'a', ''),
  fc.integer({ min: -5, max: 70 }).map(String),
  fc.string({ maxLength: 12 }).map((s) => JSON.stringify(s)),
);
const yamlValue: fc.Arbitrary<string> = fc.letrec<{ value: string }>((tie) => ({
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true },
    scalars,
    fc.array(tie('value'), { maxLength: 3 }).map((items) => `[${items.join(', ')}]`),
    fc.dictionary(fc.constantFrom(...KEYS), tie('value'), { maxKeys: 4 }).map((o) => `{${Object.entries(o).map(([k, v]) => `${k}: ${v}`).join(', ')}}`),
  ),
})).value;

/** Values of a fault script's records: faults and times, good and bad. */
const faultScalars = fc.constantFrom('node 1', 'node 9', 'cpu 0', 'link 0-1', 'link 0-3', 'router 2', 'page 0x80000000', 'line 1', 'page 0x',
  'disk 1', '"node\\n1"', '20ms', '0', '1.5s', '-1ms', '1e400s', '5');

/** A machine file: mostly the real shape with random values, sometimes random YAML or bytes. */
const machineFile = fc.oneof(
  { weight: 6, arbitrary: fc.record({
    machine: fc.dictionary(fc.constantFrom('memory', 'smp', 'nodes', 'topology', 'distances', 'timing', 'x'), yamlValue, { maxKeys: 4 }),
    monitor: fc.option(fc.dictionary(fc.constantFrom('mmu', 'placement', 'policy', 'policySignal', 'x'), yamlValue, { maxKeys: 3 }), { nil: undefined }),
    vms: fc.array(fc.dictionary(fc.constantFrom('name', 'smp', 'memory', 'kernel', 'initrd', 'append', 'elf', 'drive', 'console-log', 'rng', 'net', 'balloon', 'restore', 'x'), yamlValue, { maxKeys: 5 }), { maxLength: 4 }),
    faults: fc.option(fc.array(fc.dictionary(fc.constantFrom('time', 'fault', 'x'), fc.oneof(faultScalars, yamlValue), { maxKeys: 3 }), { maxLength: 3 }), { nil: undefined }),
  }).map((f) => {
    const block = (o: Record<string, string>, indent: string): string => Object.entries(o).map(([k, v]) => `${indent}${k}: ${v}\n`).join('');
    const faults = f.faults === undefined ? '' : `faults:\n${f.faults.map((r) => `  - ${block(r, '    ').trimStart() || '{}\n'}`).join('')}`;
    return `machine:\n${block(f.machine, '  ')}${f.monitor === undefined ? '' : `monitor:\n${block(f.monitor, '  ')}`}${faults}vms:\n${f.vms.map((v) => `  - ${block(v, '    ').trimStart() || '{}\n'}`).join('')}`;
  }) },
  { weight: 2, arbitrary: yamlValue },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
  { weight: 1, arbitrary: fc.constantFrom('&a [*a]', 'a: &x b\nc: *x', '!!binary AAAA', '%YAML 9.9\n---\n', 'a: 1\na: 2', '- - - - - - - - - -', '? [a]\n: b') },
);

function machineFileTarget(): FuzzTarget<string> {
  return {
    name: 'machine-file',
    surface: 'machine files of `mirrorball up`: random YAML, the real shape with random values',
    cases: machineFile,
    open: () => ({
      run(text: string) {
        try {
          parseMachineFile(text, 'fuzz.yaml');
        } catch (error) {
          if (!(error instanceof MachineFileError)) throw error;
          if (error.problems.length === 0 || error.problems.some((p) => p.includes('\n') || p === '')) throw new Error(`not one line per problem: ${JSON.stringify(error.problems)}`);
        }
      },
    }),
  };
}

// ---- command-line flags ----

/** Every option of `run` and `up` with values from a dictionary; paths only inside a scratch directory. */
const FLAGS = ['--kernel', '--initrd', '--append', '-m', '--memory', '--smp', '-smp', '--nodes', '--topology', '--distances', '--drive', '--bios', '--elf', '--sbi',
  '--console-log', '--time', '--max-instructions', '--rng', '--stats', '--stats-dir', '--timing', '--cache', '--local-miss', '--control', '--restore',
  '--no-such', '-x', '--', '--help'];
const FLAG_VALUES = ['0', '1', '-1', '2', '33', '1e9', 'NaN', '512M', '1G', '0x10', '16M', '999999G', 'uma', 'numa4x2', 'flash8', 'nope', '10,20;20,10',
  '10;x', 'file=', 'file=missing.img,readonly=on', 'file=empty.img', 'readonly=on', 'roi', 'start', 'host', 'instructions', 'size=1K', 'ways=0',
  'line=3', 'size=1G,ways=3,line=64', '', ' ', '=', ',', 'missing', 'empty.img', 'dir'];

/** Flags for `run` (which stops before booting) and for `up` (a machine file that does not exist or is empty). */
const argv = fc.tuple(
  fc.constantFrom('run', 'up'),
  fc.array(fc.oneof(
    { weight: 5, arbitrary: fc.tuple(fc.constantFrom(...FLAGS), fc.constantFrom(...FLAG_VALUES)).map(([f, v]) => [f, v]) },
    { weight: 1, arbitrary: fc.constantFrom(...FLAGS).map((f) => [f]) },
    { weight: 1, arbitrary: fc.string({ maxLength: 10 }).filter((s) => !s.includes('/')).map((s) => [s]) },
  ), { maxLength: 6 }),
).map(([command, words]) => [command, ...words.flat()]);

/**
 * Parses `words` with the real program, its `run` and `up` actions stopped before anything boots: commander's own
 * errors and UsageError are what bad flags must give. `run`'s checks are reached through its flag checks, which
 * throw before a machine is made when the flags are bad; a good set of flags would boot, so `--restore missing`
 * is added to stop there with a UsageError.
 */
async function parseFlags(words: string[], dir: string): Promise<void> {
  const program: Command = createProgram();
  program.configureOutput({ writeOut: () => {}, writeErr: () => {}, outputError: () => {} });
  for (const sub of program.commands) {
    sub.exitOverride();
    sub.configureOutput({ writeOut: () => {}, writeErr: () => {}, outputError: () => {} });
  }
  const args = words.map((w) => (w === 'missing' || w === 'empty.img' || w === 'dir' ? join(dir, w) : w.replace('file=missing.img', `file=${join(dir, 'missing.img')}`).replace('file=empty.img', `file=${join(dir, 'empty.img')}`)));
  // `up` with its machine file: an empty one (refused) in the scratch directory; `run` never gets to boot.
  const full = args[0] === 'up' ? ['up', join(dir, 'empty.yaml'), ...args.slice(1)] : [...args, '--restore', join(dir, 'missing')];
  const saved = process.exitCode;
  // What the commands print about bad input is theirs to say; the fuzzer keeps the terminal quiet.
  const write = process.stderr.write;
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    await program.parseAsync(['node', 'mirrorball', ...full]);
  } catch (error) {
    if (!(error instanceof CommanderError) && !(error instanceof UsageError)) throw error;
  } finally {
    process.stderr.write = write;
    process.exitCode = saved;
  }
}

function cliTarget(): FuzzTarget<string[]> {
  return {
    name: 'cli-flags',
    surface: 'command-line flags of `mirrorball run` and `up` at random, stopped before a machine boots',
    cases: argv,
    async: true,
    open(): FuzzSession<string[]> {
      const dir = mkdtempSync(join(tmpdir(), 'mirrorball-fuzz-cli-'));
      writeFileSync(join(dir, 'empty.img'), new Uint8Array(0));
      writeFileSync(join(dir, 'empty.yaml'), '');
      return {
        run: (words) => parseFlags(words, dir),
        close: () => rmSync(dir, { recursive: true, force: true }),
      };
    },
  };
}

export const hostTargets: FuzzTarget<unknown>[] = [controlTarget(), machineFileTarget(), cliTarget()] as FuzzTarget<unknown>[];
