// A writer for the cpio "newc" format (SVR4 without checksums), which the Linux initramfs unpacker reads.

import type { FsEntry } from './fs-tree.js';

/**
 * newc layout (Linux Documentation/driver-api/early-userspace/buffer-format.rst): a 110-byte ASCII header
 * of the magic and 13 eight-digit hexadecimal fields, the NUL-terminated name padded so that header + name
 * is a multiple of 4, then the data padded to a multiple of 4. A member named TRAILER!!! ends the archive.
 */
export const NEWC_MAGIC = '070701';
export const NEWC_HEADER_SIZE = 110;
export const TRAILER_NAME = 'TRAILER!!!';
const ALIGNMENT = 4;
const FIELD_DIGITS = 8;
const MAX_FIELD = 0xffff_ffff;

/** File type bits of st_mode (POSIX <sys/stat.h>). */
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;

const TYPE_BITS: Record<FsEntry['kind'], number> = { dir: S_IFDIR, file: S_IFREG, symlink: S_IFLNK, char: S_IFCHR, block: S_IFBLK };

/** Inode numbers start here, as the kernel's own gen_init_cpio does; any distinct numbers would do. */
const FIRST_INODE = 721;

export class CpioError extends Error {}

/**
 * Encodes the entries, in the order given, as one newc archive. The output depends only on the entries:
 * inode numbers are assigned in order, device numbers of the archive are zero, and there are no hard
 * links (each file has one link, each directory two).
 */
export function encodeCpio(entries: readonly FsEntry[]): Uint8Array {
  const encoder = new TextEncoder();
  const members = entries.map((entry, index) => {
    const name = encoder.encode(entry.path);
    const data = entry.kind === 'file' ? entry.data ?? new Uint8Array(0) : entry.kind === 'symlink' ? encoder.encode(entry.target ?? '') : new Uint8Array(0);
    const header = headerFor({
      ino: FIRST_INODE + index,
      mode: TYPE_BITS[entry.kind] | entry.mode,
      uid: entry.uid,
      gid: entry.gid,
      nlink: entry.kind === 'dir' ? 2 : 1,
      mtime: entry.mtime,
      filesize: data.length,
      rdevmajor: entry.major ?? 0,
      rdevminor: entry.minor ?? 0,
      namesize: name.length + 1,
    });
    return { header, name, data };
  });
  const trailerName = encoder.encode(TRAILER_NAME);
  members.push({ header: headerFor({ ino: 0, mode: 0, uid: 0, gid: 0, nlink: 1, mtime: 0, filesize: 0, rdevmajor: 0, rdevminor: 0, namesize: trailerName.length + 1 }), name: trailerName, data: new Uint8Array(0) });

  let total = 0;
  for (const m of members) total += align(NEWC_HEADER_SIZE + m.name.length + 1) + align(m.data.length);
  const out = new Uint8Array(total);
  let at = 0;
  for (const m of members) {
    out.set(m.header, at);
    out.set(m.name, at + NEWC_HEADER_SIZE);
    at += align(NEWC_HEADER_SIZE + m.name.length + 1);
    out.set(m.data, at);
    at += align(m.data.length);
  }
  return out;
}

interface HeaderFields {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  mtime: number;
  filesize: number;
  rdevmajor: number;
  rdevminor: number;
  namesize: number;
}

function headerFor(f: HeaderFields): Uint8Array {
  // Field order of the newc header; devmajor/devminor (the archive's own device) and check are zero.
  const fields = [f.ino, f.mode, f.uid, f.gid, f.nlink, f.mtime, f.filesize, 0, 0, f.rdevmajor, f.rdevminor, f.namesize, 0];
  const text = NEWC_MAGIC + fields.map(hex8).join('');
  return new TextEncoder().encode(text);
}

function hex8(value: number): string {
  if (!Number.isInteger(value) || value < 0 || value > MAX_FIELD) throw new CpioError(`cpio field out of range: ${value}`);
  return value.toString(16).toUpperCase().padStart(FIELD_DIGITS, '0');
}

function align(n: number): number {
  return Math.ceil(n / ALIGNMENT) * ALIGNMENT;
}

/** One member read back from a newc archive (for tests and for checking what was written). */
export interface CpioMember {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  rdevmajor: number;
  rdevminor: number;
  data: Uint8Array;
}

/** Decodes a newc archive up to its trailer; throws CpioError on anything malformed. */
export function decodeCpio(archive: Uint8Array): CpioMember[] {
  const decoder = new TextDecoder();
  const members: CpioMember[] = [];
  let at = 0;
  for (;;) {
    if (at + NEWC_HEADER_SIZE > archive.length) throw new CpioError(`truncated header at ${at}`);
    const header = decoder.decode(archive.subarray(at, at + NEWC_HEADER_SIZE));
    if (!header.startsWith(NEWC_MAGIC)) throw new CpioError(`bad magic at ${at}`);
    const field = (i: number) => {
      const digits = header.slice(NEWC_MAGIC.length + i * FIELD_DIGITS, NEWC_MAGIC.length + (i + 1) * FIELD_DIGITS);
      if (!/^[0-9A-Fa-f]{8}$/.test(digits)) throw new CpioError(`bad header field ${i} at ${at}`);
      return parseInt(digits, 16);
    };
    const namesize = field(11);
    const filesize = field(6);
    const nameStart = at + NEWC_HEADER_SIZE;
    if (namesize < 1 || nameStart + namesize > archive.length) throw new CpioError(`bad name size at ${at}`);
    const name = decoder.decode(archive.subarray(nameStart, nameStart + namesize - 1));
    const dataStart = at + align(NEWC_HEADER_SIZE + namesize);
    if (dataStart + filesize > archive.length) throw new CpioError(`truncated data of ${name}`);
    if (name === TRAILER_NAME) return members;
    members.push({ name, mode: field(1), uid: field(2), gid: field(3), mtime: field(5), rdevmajor: field(9), rdevminor: field(10), data: archive.slice(dataStart, dataStart + filesize) });
    at = dataStart + align(filesize);
  }
}
