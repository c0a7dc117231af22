// A TCP port on 127.0.0.1 that nothing listens on now (tests and the net bench pick ports for hostfwd with it).

import { createServer, type AddressInfo } from 'node:net';

/** A port the system hands out for 127.0.0.1, closed again: free at the moment it is returned. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', () => done()));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}
