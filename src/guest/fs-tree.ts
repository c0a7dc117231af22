// An in-memory file tree with exact owners, modes and times: what both the initramfs and the disk image hold.

export type FsEntryKind = 'dir' | 'file' | 'symlink' | 'char' | 'block';

/** Permission bits including setuid/setgid/sticky; the file type comes from `kind`. */
export const PERMISSION_MASK = 0o7777;
export const DIR_MODE = 0o755;
export const FILE_MODE = 0o644;
export const EXEC_MODE = 0o755;
const SYMLINK_MODE = 0o777;

export interface FsEntry {
  /** Path relative to the root, '/'-separated, no leading slash, no '.' or '..' parts. */
  readonly path: string;
  readonly kind: FsEntryKind;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** Seconds since the epoch. */
  readonly mtime: number;
  readonly data?: Uint8Array;
  /** Symlink target. */
  readonly target?: string;
  readonly major?: number;
  readonly minor?: number;
}

export class FsTreeError extends Error {}

const EMPTY = new Uint8Array(0);

/**
 * A file tree built in memory so that its images are byte-reproducible: every entry is owned by root,
 * stamped with one fixed time, and listed in one sorted order whoever builds it and whatever the host's
 * umask, locale or directory order. Parent directories are created on demand.
 */
export class FsTree {
  private readonly byPath = new Map<string, FsEntry>();

  constructor(readonly mtime: number) {}

  dir(path: string, mode = DIR_MODE): this {
    const clean = normalize(path);
    if (clean === '') return this;
    const existing = this.byPath.get(clean);
    if (existing !== undefined && existing.kind !== 'dir') throw new FsTreeError(`${clean} exists and is not a directory`);
    this.parents(clean);
    this.byPath.set(clean, this.entry(clean, 'dir', mode));
    return this;
  }

  file(path: string, data: Uint8Array | string, mode = FILE_MODE): this {
    const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
    return this.put({ ...this.entry(path, 'file', mode), data: bytes });
  }

  symlink(path: string, target: string): this {
    if (target === '') throw new FsTreeError(`empty symlink target for ${path}`);
    return this.put({ ...this.entry(path, 'symlink', SYMLINK_MODE), target });
  }

  device(path: string, kind: 'char' | 'block', major: number, minor: number, mode = 0o600): this {
    return this.put({ ...this.entry(path, kind, mode), major, minor });
  }

  has(path: string): boolean {
    return this.byPath.has(normalize(path));
  }

  get(path: string): FsEntry | undefined {
    return this.byPath.get(normalize(path));
  }

  /** Every entry, parents before children, siblings in byte order of their names. */
  entries(): FsEntry[] {
    return [...this.byPath.values()].sort((a, b) => comparePaths(a.path, b.path));
  }

  /** A copy that can be extended without changing this tree. */
  clone(): FsTree {
    const copy = new FsTree(this.mtime);
    for (const [path, entry] of this.byPath) copy.byPath.set(path, entry);
    return copy;
  }

  private put(entry: FsEntry): this {
    const existing = this.byPath.get(entry.path);
    if (existing?.kind === 'dir') throw new FsTreeError(`${entry.path} is a directory`);
    this.parents(entry.path);
    this.byPath.set(entry.path, entry);
    return this;
  }

  private parents(path: string): void {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      const existing = this.byPath.get(parent);
      if (existing === undefined) this.byPath.set(parent, this.entry(parent, 'dir', DIR_MODE));
      else if (existing.kind !== 'dir') throw new FsTreeError(`${parent} is not a directory (needed for ${path})`);
    }
  }

  private entry(path: string, kind: FsEntryKind, mode: number): FsEntry {
    return { path: normalize(path), kind, mode: mode & PERMISSION_MASK, uid: 0, gid: 0, mtime: this.mtime, data: kind === 'file' ? EMPTY : undefined };
  }
}

/** '/a//b/' → 'a/b'; rejects '.', '..' and NUL, which no image should contain. */
export function normalize(path: string): string {
  const parts = path.split('/').filter((p) => p !== '');
  for (const part of parts) {
    if (part === '.' || part === '..' || part.includes('\0')) throw new FsTreeError(`bad path component in ${JSON.stringify(path)}`);
  }
  return parts.join('/');
}

/** Orders by path components, so 'a/b' sorts right after 'a' and before 'a-b' (a directory before its siblings' files). */
export function comparePaths(a: string, b: string): number {
  const pa = a.split('/');
  const pb = b.split('/');
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    if (pa[i] !== pb[i]) return pa[i]! < pb[i]! ? -1 : 1;
  }
  return pa.length - pb.length;
}
