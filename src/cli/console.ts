// `mirrorball console VM`: the terminal attached to one VM's console on a running `mirrorball up`.

import { createConnection, type Socket } from 'node:net';
import type { Command } from 'commander';
import type { VmListing } from '../control/monitor-commands.js';
import { controlOptions, controlPath, ControlClient, ControlClientError, type ControlFlags } from './vm-client.js';
import { describeEnd } from './vm-commands.js';

const CTRL_A = 0x01;
const DETACH = 0x64; // d
/** After stdin ends (a pipe), output that is still coming gets this long, as socat's -t does. */
const LINGER_MS = 500;
/** How long, after the console closed, to wait for the event that says why. */
const EVENT_WAIT_MS = 1000;

export function registerConsoleCommand(program: Command): void {
  controlOptions(program
    .command('console')
    .argument('<vm>', 'the VM')
    .summary('attach the terminal to a VM\'s console (Ctrl-A d detaches)')
    .description('Attach the terminal to a VM\'s console on a running `mirrorball up`: what you type goes to the VM, what it prints comes ' +
      'here (after the last lines it printed before). Ctrl-A d detaches (the VM keeps running); Ctrl-A Ctrl-A sends a Ctrl-A. ' +
      'From a pipe, the input is typed and the console is left half a second after it ends.'))
    .action(async (name: string, flags: ControlFlags) => {
      process.exitCode = await attach(name, flags);
    });
}

async function attach(name: string, flags: ControlFlags): Promise<number> {
  // The control connection stays open while attached: its VM_STOPPED event says how the VM ended.
  const control = await ControlClient.connect(controlPath(flags));
  let endLine: string | undefined;
  control.onEvent = (event, data) => {
    const d = data as { vm?: string; state?: string; reason?: string } | undefined;
    if (event === 'VM_STOPPED' && d?.vm === name) endLine = `vm ${name}: ${describeEnd({ state: d.state ?? 'off', reason: d.reason ?? '' })}`;
  };
  let socket: Socket;
  try {
    const vms = (await control.execute('query-vms')) as VmListing[];
    const vm = vms.find((v) => v.name === name);
    if (vm === undefined) throw new ControlClientError(`no VM named '${name}' (the VMs are: ${vms.map((v) => v.name).join(', ') || 'none'})`);
    if (vm.console === null) throw new ControlClientError(`vm ${name} is not running (${describeEnd(vm)})`);
    socket = await connect(vm.console, name);
  } catch (error) {
    control.close();
    throw error;
  }
  const raw = process.stdin.isTTY === true;
  const say = (line: string): void => { process.stderr.write(`${raw ? '\r\n' : ''}mirrorball: ${line}${raw ? '\r\n' : '\n'}`); };
  say(`attached to vm ${name}'s console (Ctrl-A d detaches)`);

  return new Promise<number>((resolve) => {
    let escape = false;
    let finished = false;
    const finish = (line: string | undefined): void => {
      if (finished) return;
      finished = true;
      process.stdin.off('data', input);
      process.stdin.off('end', stdinEnded);
      if (raw) {
        process.stdin.setRawMode(false);
        process.stdin.pause();
      } else process.stdin.destroy();
      socket.destroy();
      control.close();
      if (line !== undefined) say(line);
      resolve(0);
    };
    const input = (chunk: Buffer): void => {
      const out: number[] = [];
      for (const byte of chunk) {
        if (escape) {
          escape = false;
          if (byte === DETACH) {
            if (out.length > 0) socket.write(Uint8Array.from(out));
            finish(`detached from vm ${name}; it keeps running (mirrorball console ${name} attaches again)`);
            return;
          }
          if (byte === CTRL_A) out.push(CTRL_A);
          else say('Ctrl-A d detaches, Ctrl-A Ctrl-A sends a Ctrl-A');
          continue;
        }
        if (byte === CTRL_A) escape = true;
        else out.push(byte);
      }
      if (out.length > 0) socket.write(Uint8Array.from(out));
    };
    const stdinEnded = (): void => { setTimeout(() => finish(undefined), LINGER_MS); };
    socket.on('data', (chunk: Buffer) => process.stdout.write(chunk));
    // The monitor closes the console when the VM ends or the monitor quits; the event may come just after.
    socket.on('close', () => {
      if (finished) return;
      const waited = setTimeout(() => finish(endLine ?? `vm ${name}'s console closed`), EVENT_WAIT_MS);
      const poll = setInterval(() => {
        if (endLine === undefined) return;
        clearInterval(poll);
        clearTimeout(waited);
        finish(endLine);
      }, 10);
      void control.closed.then(() => {
        clearInterval(poll);
        clearTimeout(waited);
        finish(endLine ?? `vm ${name}'s console closed: the monitor has quit`);
      });
    });
    socket.on('error', () => {});
    if (raw) process.stdin.setRawMode(true);
    process.stdin.on('data', input);
    process.stdin.on('end', stdinEnded);
    process.stdin.resume();
  });
}

function connect(path: string, name: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    socket.once('connect', () => resolve(socket));
    socket.once('error', (error: NodeJS.ErrnoException) => reject(new ControlClientError(`cannot attach to vm ${name}'s console '${path}': ${error.code ?? error.message}`)));
  });
}
