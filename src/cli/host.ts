// `mirrorball host --listen ADDR:PORT`: a host that waits for one run to use it (docs/giantvm.md).

import type { Command } from 'commander';
import { formatAddress, HostLinkError, listenHosts, parseHostAddress, readToken, type PeerLink } from '../host/host-link.js';
import { parseHostsConfig, serveRun } from '../host/remote-host.js';
import { UsageError } from './options.js';

/** Set by `run --hosts` in the hosts it starts: such a host ends when its parent's pipe closes. */
export const PARENT_ENV = 'MIRRORBALL_HOST_PARENT';

export function registerHostCommand(program: Command): void {
  program
    .command('host')
    .description('run part of one VM for a `mirrorball run --join` (docs/giantvm.md); not reproducible')
    .option('--listen <addr:port>', 'address to listen on (ADDR defaults to 127.0.0.1; PORT 0 picks a free one)')
    .option('--token-file <file>', `the shared token, the file's first line (default: $MIRRORBALL_HOST_TOKEN); the wire carries guest memory`)
    .action(async (flags: { listen?: string; tokenFile?: string }) => {
      if (flags.listen === undefined) throw new UsageError('mirrorball host needs --listen ADDR:PORT');
      process.exitCode = await host({ listen: flags.listen, tokenFile: flags.tokenFile });
    });
}

async function host(flags: { listen: string; tokenFile?: string }): Promise<number> {
  let token: string;
  let address;
  try {
    address = parseHostAddress(flags.listen);
    token = readToken(flags.tokenFile);
  } catch (error) {
    if (error instanceof HostLinkError) throw new UsageError(error.message);
    throw error;
  }
  const log = (line: string): void => { process.stderr.write(`mirrorball host: ${line}\n`); };
  if (process.env[PARENT_ENV] === '1') {
    process.stdin.on('close', () => process.exit(1));
    process.stdin.resume();
  }
  let chosen: ((v: { link: PeerLink; host: number; hosts: number; config: string }) => void) | undefined;
  const run = new Promise<{ link: PeerLink; host: number; hosts: number; config: string }>((resolve) => { chosen = resolve; });
  let server;
  try {
    server = await listenHosts(address, token, (peer) => {
      peer.onLost = (line) => log(line);
      peer.onMessage = (m) => {
        if (m.kind !== 'start' || m.host < 1 || m.host >= m.hosts) {
          log(`${peer.name} sent '${m.kind}' instead of a run to start`);
          peer.close();
          return;
        }
        chosen?.({ link: peer, host: m.host, hosts: m.hosts, config: m.config });
        chosen = undefined;
      };
    }, log);
  } catch (error) {
    if (error instanceof HostLinkError) throw new UsageError(error.message);
    throw error;
  }
  const bound = server.address();
  const port = typeof bound === 'object' && bound !== null ? bound.port : address.port;
  process.stdout.write(`mirrorball host: listening on ${formatAddress({ host: address.host, port })}\n`);
  const { link, host: index, hosts, config } = await run;
  server.close();
  try {
    await serveRun(link, index, hosts, parseHostsConfig(config));
  } catch (error) {
    log(error instanceof Error ? error.message : String(error));
    link.close();
    return 1;
  }
  link.close();
  return 0;
}
