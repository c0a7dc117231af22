// What `run` and `up` create is their user's alone: files 0600, directories 0700, sockets no one else can connect to.

import { fchmodSync, mkdirSync, openSync } from 'node:fs';
import type { Server } from 'node:net';

/** A file we create: read and written by its owner only. */
export const PRIVATE_FILE_MODE = 0o600;
/** A directory we create: entered and listed by its owner only. */
export const PRIVATE_DIRECTORY_MODE = 0o700;
/** The umask under which a socket is bound: what remains of the 0777 the kernel starts from is 0600. */
const SOCKET_UMASK = 0o177;

/**
 * Opens `path` for writing ('w' truncates, 'a' appends; 'w+' truncates and reads too). A file this creates is 0600 whatever the umask;
 * an existing file keeps its mode, the user's choice, unless `ours` (a file we name in our own run
 * directory, such as a console log from an earlier run): that one is made 0600 too.
 */
export function openPrivateFile(path: string, flags: 'w' | 'a' | 'w+', ours = false): number {
  const fd = openSync(path, flags, PRIVATE_FILE_MODE);
  if (ours) fchmodSync(fd, PRIVATE_FILE_MODE);
  return fd;
}

/** `mkdir -p`: every directory it creates is 0700; one that exists is left as it is. */
export function makePrivateDirectory(path: string): void {
  mkdirSync(path, { recursive: true, mode: PRIVATE_DIRECTORY_MODE });
}

/**
 * `server.listen(path)` with the socket file created 0600: the umask is narrowed around the call, which
 * binds at once (Node binds a Unix socket synchronously inside listen), so there is no moment at which
 * another user could connect, as there would be with a chmod after listening. Connecting to a Unix socket
 * needs write permission on it (unix(7)).
 */
export function listenPrivately(server: Server, path: string, onListening: () => void): void {
  const previous = process.umask(SOCKET_UMASK);
  try {
    server.listen(path, onListening);
  } finally {
    process.umask(previous);
  }
}
