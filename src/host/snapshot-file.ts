// The snapshot file (docs/snapshots.md): a header of JSON, typed arrays and memory in binary, a SHA-256 at the end.

import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writevSync } from 'node:fs';
import { PRIVATE_FILE_MODE } from './private-files.js';

/**
 * Layout, all little-endian:
 *
 *   0   "MBSNAP\r\n"      magic (the CR LF catches a text-mode copy, as PNG's does)
 *   8   u32 version       FILE_VERSION; a file of another version is refused before anything else is read
 *   12  u32 H             bytes of header JSON
 *   16  header JSON       UTF-8, padded with spaces to a multiple of 8
 *   …   blobs             every typed array's bytes, each padded to a multiple of 8
 *   end SHA-256           of every byte before it
 *
 * In the header a typed array is {"$t": "Float64Array", "$o": offset of its bytes from the first blob,
 * "$l": bytes}; a bigint {"$n": "decimal"}; NaN, ±Infinity and -0 {"$f": "NaN" | "Infinity" | "-Infinity" | "-0"}.
 * Everything else is plain JSON.
 */
const MAGIC = Uint8Array.from([0x4d, 0x42, 0x53, 0x4e, 0x41, 0x50, 0x0d, 0x0a]);
export const FILE_VERSION = 1;
const PREFIX_BYTES = 16;
const HASH_BYTES = 32;
const ALIGN = 8;
/** writev takes at most IOV_MAX (1024 on Linux) buffers a call. */
const IOV_MAX = 1024;

const TYPED = {
  Uint8Array, Uint16Array, Uint32Array, Int32Array, Float64Array, BigInt64Array,
} as const;
type TypedName = keyof typeof TYPED;
type AnyTyped = InstanceType<(typeof TYPED)[TypedName]>;

/** A snapshot file that cannot be read, in one line (for the user: "exit 2"). */
export class SnapshotFileError extends Error {}

function padding(length: number): number {
  return (ALIGN - (length % ALIGN)) % ALIGN;
}

function typedName(value: ArrayBufferView): TypedName | undefined {
  for (const name of Object.keys(TYPED) as TypedName[]) if (value.constructor === TYPED[name]) return name;
  return undefined;
}

/** The header text and the blobs of `value`, which must be plain data (memory/state.ts). */
function encode(value: unknown): { header: Uint8Array; blobs: Uint8Array[] } {
  const blobs: Uint8Array[] = [];
  let offset = 0;
  const replace = (v: unknown): unknown => {
    if (typeof v === 'bigint') return { $n: v.toString() };
    if (typeof v === 'number') {
      if (Number.isNaN(v)) return { $f: 'NaN' };
      if (v === Infinity) return { $f: 'Infinity' };
      if (v === -Infinity) return { $f: '-Infinity' };
      if (Object.is(v, -0)) return { $f: '-0' };
      return v;
    }
    if (ArrayBuffer.isView(v)) {
      const name = typedName(v);
      if (name === undefined) throw new Error(`cannot save a ${v.constructor.name}`);
      const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
      const at = offset;
      blobs.push(bytes);
      offset += bytes.length;
      const pad = padding(bytes.length);
      if (pad > 0) blobs.push(new Uint8Array(pad));
      offset += pad;
      return { $t: name, $o: at, $l: bytes.length };
    }
    if (Array.isArray(v)) return v.map(replace);
    if (typeof v === 'object' && v !== null) {
      const out: Record<string, unknown> = {};
      for (const [key, field] of Object.entries(v)) if (field !== undefined) out[key] = replace(field);
      return out;
    }
    return v;
  };
  const text = JSON.stringify(replace(value));
  const header = Buffer.from(text + ' '.repeat(padding(Buffer.byteLength(text))));
  return { header, blobs };
}

/** The file's pieces in order, the checksum last; the blobs view `value`'s arrays (nothing copied). */
function fileChunks(value: unknown): Uint8Array[] {
  const { header, blobs } = encode(value);
  const prefix = new Uint8Array(PREFIX_BYTES);
  prefix.set(MAGIC);
  const view = new DataView(prefix.buffer);
  view.setUint32(8, FILE_VERSION, true);
  view.setUint32(12, header.length, true);
  const hash = createHash('sha256');
  const chunks = [prefix, header, ...blobs];
  for (const chunk of chunks) hash.update(chunk);
  chunks.push(hash.digest());
  return chunks;
}

/** The bytes of a snapshot file of `value`, in memory (tests; files are written by `writeSnapshotFile`). */
export function encodeSnapshot(value: unknown): Uint8Array {
  return Buffer.concat(fileChunks(value));
}

/**
 * Writes `value` to `path`, under a temporary name renamed into place once complete (a crash never leaves
 * half a snapshot under the name). Memory blobs are written from where they lie, once, never copied.
 * Returns the file's size in bytes.
 */
export function writeSnapshotFile(path: string, value: unknown): number {
  const chunks = fileChunks(value);
  const size = chunks.reduce((sum, c) => sum + c.length, 0);
  const temporary = `${path}.${process.pid}.tmp`;
  const fd = openSync(temporary, 'w', PRIVATE_FILE_MODE); // a machine's memory is its user's
  try {
    for (let i = 0; i < chunks.length; i += IOV_MAX) {
      const group = chunks.slice(i, i + IOV_MAX);
      let left = group.reduce((sum, c) => sum + c.length, 0);
      // writev may write less than asked (a signal, a full pipe): go on from where it stopped.
      let pending = group;
      while (left > 0) {
        let written = writevSync(fd, pending);
        left -= written;
        const rest: Uint8Array[] = [];
        for (const c of pending) {
          if (written >= c.length) written -= c.length;
          else {
            rest.push(c.subarray(written));
            written = 0;
          }
        }
        pending = rest;
      }
    }
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    rmSync(temporary, { force: true });
    throw error;
  }
  closeSync(fd);
  renameSync(temporary, path);
  return size;
}

/**
 * Reads a snapshot file back into plain data, checking its magic, version and checksum first and every
 * blob reference while decoding: anything wrong is one SnapshotFileError naming what. Typed arrays view
 * the file's bytes where they are aligned (no copy).
 */
export function readSnapshotFile(path: string): unknown {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : String(code ?? error);
    throw new SnapshotFileError(`cannot read snapshot '${path}': ${why}`);
  }
  return decodeSnapshot(bytes, `snapshot '${path}'`);
}

/** `readSnapshotFile` on bytes already in memory (tests, and files read elsewhere). */
export function decodeSnapshot(bytes: Uint8Array, what = 'snapshot'): unknown {
  if (bytes.length < MAGIC.length || !MAGIC.every((b, i) => bytes[i] === b)) throw new SnapshotFileError(`${what} is not a Mirrorball snapshot`);
  if (bytes.length < PREFIX_BYTES + HASH_BYTES) throw new SnapshotFileError(`${what} is truncated`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  if (version !== FILE_VERSION) throw new SnapshotFileError(`${what} is of format version ${version}; this Mirrorball reads version ${FILE_VERSION}`);
  const headerBytes = view.getUint32(12, true);
  const blobsAt = PREFIX_BYTES + headerBytes;
  const end = bytes.length - HASH_BYTES;
  if (blobsAt > end) throw new SnapshotFileError(`${what} is truncated`);
  const digest = createHash('sha256').update(bytes.subarray(0, end)).digest();
  if (!digest.equals(bytes.subarray(end))) throw new SnapshotFileError(`${what} is corrupt or truncated (its checksum does not match)`);
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + PREFIX_BYTES, headerBytes).toString('utf8'));
  } catch {
    throw new SnapshotFileError(`${what} has a header that is not JSON`);
  }
  const blobBytes = end - blobsAt;
  const revive = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(revive);
    if (typeof v !== 'object' || v === null) return v;
    const o = v as Record<string, unknown>;
    if ('$n' in o) {
      if (typeof o.$n !== 'string' || !/^-?\d+$/.test(o.$n)) throw new SnapshotFileError(`${what}: a bad bigint`);
      return BigInt(o.$n);
    }
    if ('$f' in o) {
      const special: Record<string, number> = { NaN, Infinity, '-Infinity': -Infinity, '-0': -0 };
      if (typeof o.$f !== 'string' || !(o.$f in special)) throw new SnapshotFileError(`${what}: a bad number`);
      return special[o.$f];
    }
    if ('$t' in o) return typedArray(o);
    const out: Record<string, unknown> = {};
    for (const [key, field] of Object.entries(o)) out[key] = revive(field);
    return out;
  };
  const typedArray = (o: Record<string, unknown>): AnyTyped => {
    const name = o.$t as TypedName;
    const at = o.$o;
    const length = o.$l;
    if (typeof name !== 'string' || !Object.prototype.hasOwnProperty.call(TYPED, name)) throw new SnapshotFileError(`${what}: an array of unknown type`);
    const ctor = TYPED[name];
    if (typeof at !== 'number' || typeof length !== 'number' || !Number.isInteger(at) || !Number.isInteger(length) || at < 0 || length < 0 ||
      at + length > blobBytes || at % ALIGN !== 0 || length % ctor.BYTES_PER_ELEMENT !== 0) {
      throw new SnapshotFileError(`${what}: an array outside the file`);
    }
    const start = bytes.byteOffset + blobsAt + at;
    if (start % ctor.BYTES_PER_ELEMENT === 0) return new ctor(bytes.buffer as ArrayBuffer, start, length / ctor.BYTES_PER_ELEMENT);
    const copy = new Uint8Array(length);
    copy.set(bytes.subarray(blobsAt + at, blobsAt + at + length));
    return new ctor(copy.buffer);
  };
  return revive(header);
}
