// `run --hosts N` and `run --join ADDR:PORT,...` (docs/giantvm.md): the hosts a run spreads its harts over,
// started here on loopback or already listening elsewhere.

import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { connectHost, formatAddress, freshToken, HostLinkError, parseHostAddress, readToken, TOKEN_ENV, type HostAddress, type PeerLink } from '../host/host-link.js';
import { PARENT_ENV } from './host.js';
import { parseCount, UsageError } from './options.js';

/** Most hosts a run spans: GiantVM's 16 (every host other than 0 reaches the others through host 0). */
export const MAX_HOSTS = 16;
/** How long a started host may take to say where it listens. */
const START_MS = 15000;

export interface HostsFlags {
  hosts?: string;
  join?: string;
  tokenFile?: string;
}

export interface RunHosts {
  links: PeerLink[];
  /** Ends the links and the hosts this run started. */
  close(): void;
}

/** The hosts asked for: undefined for one (the plain run), else their addresses or how many to start. */
export function hostsWanted(flags: HostsFlags): { start: number } | { join: HostAddress[] } | undefined {
  if (flags.hosts !== undefined && flags.join !== undefined) throw new UsageError('--hosts starts hosts and --join uses hosts already there: give one of them');
  if (flags.join !== undefined) {
    try {
      const join = flags.join.split(',').map(parseHostAddress);
      if (join.length + 1 > MAX_HOSTS) throw new UsageError(`--join takes at most ${MAX_HOSTS - 1} hosts`);
      return { join };
    } catch (error) {
      if (error instanceof HostLinkError) throw new UsageError(`--join: ${error.message}`);
      throw error;
    }
  }
  if (flags.hosts === undefined) return undefined;
  const n = parseCount(flags.hosts, '--hosts', 1, 64);
  if (n > MAX_HOSTS) throw new UsageError(`--hosts takes at most ${MAX_HOSTS}`);
  return n === 1 ? undefined : { start: n - 1 };
}

/** Starts the hosts (or connects to the joined ones) and makes the handshake with each; one line if one refuses. */
export async function openHosts(wanted: { start: number } | { join: HostAddress[] }, tokenFile: string | undefined): Promise<RunHosts> {
  const children: ChildProcess[] = [];
  const links: PeerLink[] = [];
  const close = (): void => {
    for (const l of links) l.close();
    for (const c of children) if (c.exitCode === null) c.kill();
  };
  try {
    let token: string;
    let addresses: HostAddress[];
    if ('join' in wanted) {
      token = readToken(tokenFile);
      addresses = wanted.join;
    } else {
      token = freshToken();
      addresses = await Promise.all(Array.from({ length: wanted.start }, () => startHost(token, children)));
    }
    for (const a of addresses) links.push(await connectHost(a, token));
    return { links, close };
  } catch (error) {
    close();
    if (error instanceof HostLinkError) throw new UsageError(error.message);
    throw error;
  }
}

/** A `mirrorball host` child on a free loopback port: its address, once it said it. */
function startHost(token: string, children: ChildProcess[]): Promise<HostAddress> {
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, 'host', '--listen', '127.0.0.1:0'], {
    env: { ...process.env, [TOKEN_ENV]: token, [PARENT_ENV]: '1' },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new HostLinkError(`a started host did not listen within ${START_MS / 1000} s`)), START_MS);
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', (line) => {
      clearTimeout(timer);
      const m = /listening on (\S+)$/.exec(line);
      if (m === null) { reject(new HostLinkError(`a started host said '${line}'`)); return; }
      resolve(parseHostAddress(m[1]!));
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new HostLinkError(`a started host ended with status ${code}`)); });
  });
}

export { formatAddress };
