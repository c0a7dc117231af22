// A copy-on-write disk: reads from a base image that is never written, writes into an overlay of whole clusters.

import { StateError, StateReader } from '../../memory/state.js';
import type { BlockBackend } from './blk.js';

/** The unit of copy-on-write: a guest write into a cluster not yet in the overlay copies the whole cluster there. */
export const CLUSTER_SIZE = 4096;

/**
 * Where a copy-on-write disk keeps the clusters it changed. Cluster `index` covers bytes
 * [index × clusterSize, …) of the disk; the last one may be shorter when the disk size is not a multiple.
 */
export interface ClusterStore {
  has(index: number): boolean;
  /** The stored contents of a cluster `has` says is there (`into` is the cluster's length). */
  read(index: number, into: Uint8Array): void;
  /**
   * Stores whole clusters, replacing what was there; the arrays are the store's from then on. When it
   * returns, a read sees them (it is the write the guest is answered for). What a power cut may leave is
   * the store's to say.
   */
  write(clusters: readonly { index: number; data: Uint8Array }[]): void;
  /** Makes every stored cluster durable (nothing for a store in memory). */
  flush(): void;
  /** How many clusters are stored. */
  readonly count: number;
  close(): void;
  /** Every stored cluster, when the store is part of the machine's state (in memory): what a snapshot holds. */
  save?(): SavedClusters;
}

/**
 * The clusters of a copy-on-write disk kept in memory, as a snapshot holds them (docs/snapshots.md, "Copy-on-write
 * disks"): their indices in the order they were first written, and their bytes, CLUSTER_SIZE each (a short last
 * cluster padded with zeros).
 */
export interface SavedClusters {
  clusters: Uint32Array;
  data: Uint8Array;
}

/**
 * Saved clusters read back for a disk of `diskSize` bytes: each index a cluster of the disk, once, and exactly
 * their bytes. Throws StateError naming `path`.
 */
export function readSavedClusters(value: unknown, diskSize: number, path: string): SavedClusters {
  const r = new StateReader(value, path);
  const clusters = r.typed('clusters', Uint32Array);
  const data = r.typed('data', Uint8Array);
  const count = Math.ceil(diskSize / CLUSTER_SIZE);
  const seen = new Set<number>();
  for (const index of clusters) {
    if (index >= count || seen.has(index)) throw new StateError(`${path}.clusters: cluster ${index} ${index >= count ? `is past the disk's last (${count - 1})` : 'twice'}`);
    seen.add(index);
  }
  if (data.length !== clusters.length * CLUSTER_SIZE) {
    throw new StateError(`${path}.data: ${data.length} bytes for ${clusters.length} clusters of ${CLUSTER_SIZE} (truncated or corrupt)`);
  }
  return { clusters, data };
}

/**
 * A block backend over `base` (read-only, never written: its `write` and `flush` are never called) and
 * `overlay`. A read takes each cluster from the overlay when it holds it, else from the base. A write of a
 * whole cluster stores it; a write of part of one stores the cluster as it was (overlay, else base) with the
 * new bytes over it, so the overlay only ever holds whole clusters. A flush is the overlay's.
 */
export class CowBlockBackend implements BlockBackend {
  readonly readOnly = false;
  readonly size: number;
  private readonly scratch = new Uint8Array(CLUSTER_SIZE);

  constructor(private readonly base: BlockBackend, private readonly overlay: ClusterStore) {
    this.size = base.size;
  }

  /** How many clusters the overlay holds: what this disk's writes cost beyond the base. */
  get storedClusters(): number {
    return this.overlay.count;
  }

  read(offset: number, into: Uint8Array): void {
    this.check(offset, into.length);
    for (let done = 0; done < into.length;) {
      const at = offset + done;
      const index = Math.floor(at / CLUSTER_SIZE);
      const within = at - index * CLUSTER_SIZE;
      const length = Math.min(into.length - done, this.clusterLength(index) - within);
      const piece = into.subarray(done, done + length);
      if (!this.overlay.has(index)) this.base.read(at, piece);
      else if (within === 0 && length === this.clusterLength(index)) this.overlay.read(index, piece);
      else {
        const cluster = this.scratch.subarray(0, this.clusterLength(index));
        this.overlay.read(index, cluster);
        piece.set(cluster.subarray(within, within + length));
      }
      done += length;
    }
  }

  write(offset: number, data: Uint8Array): void {
    this.check(offset, data.length);
    const clusters: { index: number; data: Uint8Array }[] = [];
    for (let done = 0; done < data.length;) {
      const at = offset + done;
      const index = Math.floor(at / CLUSTER_SIZE);
      const within = at - index * CLUSTER_SIZE;
      const full = this.clusterLength(index);
      const length = Math.min(data.length - done, full - within);
      const cluster = new Uint8Array(full);
      // Part of a cluster: the rest of it as the disk holds it now, so the overlay's copy is whole.
      if (length !== full) this.read(index * CLUSTER_SIZE, cluster);
      cluster.set(data.subarray(done, done + length), within);
      clusters.push({ index, data: cluster });
      done += length;
    }
    if (clusters.length > 0) this.overlay.write(clusters);
  }

  /** The overlay's clusters when they live in memory (snapshot=on), for a snapshot; undefined for a store of its own (a file). */
  savedClusters(): SavedClusters | undefined {
    return this.overlay.save?.();
  }

  /** A whole cluster the overlay does not hold is the base's, unchanged. */
  baseBlock(index: number): boolean {
    return index >= 0 && !this.overlay.has(index) && this.clusterLength(index) === CLUSTER_SIZE;
  }

  flush(): void {
    this.overlay.flush();
  }

  close(): void {
    this.overlay.close();
  }

  private clusterLength(index: number): number {
    return Math.min(CLUSTER_SIZE, this.size - index * CLUSTER_SIZE);
  }

  private check(offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + length > this.size) {
      throw new RangeError(`${length} bytes at ${offset} outside a disk of ${this.size}`);
    }
  }
}

/**
 * The overlay of a non-persistent disk (QEMU's snapshot=on, Disco's non-persistent disks): the changed
 * clusters in this process's memory, gone when the disk is closed. A flush has nothing to make durable.
 */
export class MemoryClusterStore implements ClusterStore {
  private readonly clusters = new Map<number, Uint8Array>();

  /** A store holding `saved` (checked by readSavedClusters) for a disk of `diskSize` bytes, in their order. */
  static from(saved: SavedClusters, diskSize: number): MemoryClusterStore {
    const store = new MemoryClusterStore();
    saved.clusters.forEach((index, k) => {
      const length = Math.min(CLUSTER_SIZE, diskSize - index * CLUSTER_SIZE);
      if (!(length > 0)) throw new RangeError(`cluster ${index} outside a disk of ${diskSize}`);
      store.clusters.set(index, saved.data.slice(k * CLUSTER_SIZE, k * CLUSTER_SIZE + length));
    });
    return store;
  }

  save(): SavedClusters {
    const clusters = Uint32Array.from(this.clusters.keys());
    const data = new Uint8Array(clusters.length * CLUSTER_SIZE);
    let k = 0;
    for (const bytes of this.clusters.values()) data.set(bytes, CLUSTER_SIZE * k++);
    return { clusters, data };
  }

  get count(): number {
    return this.clusters.size;
  }

  has(index: number): boolean {
    return this.clusters.has(index);
  }

  read(index: number, into: Uint8Array): void {
    const cluster = this.clusters.get(index);
    if (cluster === undefined) throw new Error(`cluster ${index} is not in the overlay`);
    into.set(cluster.subarray(0, into.length));
  }

  write(clusters: readonly { index: number; data: Uint8Array }[]): void {
    for (const c of clusters) this.clusters.set(c.index, c.data);
  }

  flush(): void {}

  close(): void {
    this.clusters.clear();
  }
}
