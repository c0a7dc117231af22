// What the monitor is made with (MonitorOptions) and what a VM is made with (VmSpec): plain options, apart from
// monitor.ts so that the monitor's code stays readable in one file.

import type { MachineConfig } from '../board/address-map.js';
import type { MachineHardware } from '../board/hardware.js';
import type { VirtioNetOptions } from '../devices/virtio/net.js';
import type { CacheGeometry } from '../timing/cache.js';
import type { TimingLatencies } from '../timing/timing-model.js';
import type { RecoveryCosts } from './cell-recovery.js';
import type { CellsSpec } from './cells.js';
import type { BorrowParameters } from './memory-borrowing.js';
import type { NumaPolicyParameters, PolicySignal } from './numa-policy.js';
import type { ScanParameters } from './page-scanner.js';
import type { SwapOptions } from './pager.js';
import type { Placement } from './pmap.js';
import type { MmuMode, MonitorCosts } from './vm.js';
import type { BalloonCosts } from './costs.js';

export interface MonitorOptions {
  /** The physical machine: its CPUs are what vCPUs run on, its nodes' memory what pmaps fill from. */
  config: MachineConfig;
  costs?: MonitorCosts;
  /** Rounds a vCPU keeps its CPU while others wait. */
  quantumRounds?: number;
  /** Gang scheduling: each VM's runnable vCPUs run together or not at all (scheduler.ts; default off). */
  gang?: boolean;
  /** The idle balancer between cells: a cell's idle CPU takes a vCPU waiting in another cell (cell-scheduler.ts; default off). */
  idleBalance?: boolean;
  /** The periodic balancer between cells: rounds between its runs (cell-scheduler.ts; default 0: off). */
  balancePeriodRounds?: number;
  /**
   * Memory borrowing between cells by Cellular Disco's policy (memory-borrowing.ts, docs/cells.md "Borrowing"):
   * its thresholds in bytes, each absent one scaled from the paper's to the machine (`defaultBorrowParameters`).
   * Undefined: off (a confined VM takes pages of its own cell only). Needs several cells.
   */
  borrow?: Partial<BorrowParameters>;
  translate?: boolean;
  log?: (message: string) => void;
  /** How every VM maps guest-physical to machine: `software` (Disco's, default) or `nested` (H's). */
  mmu?: MmuMode;
  /** `nested`: entries of each vCPU's G-stage TLB (cpu/g-stage-tlb.ts; default G_STAGE_TLB_ENTRIES, 0 for none). */
  gStageTlbEntries?: number;
  /**
   * Timing mode's model of the physical machine: one cache per physical CPU, latencies by machine node.
   * With it the monitor can switch between fast and timing mode (`setExecutionMode`); it starts in fast mode.
   */
  timing?: { latencies: TimingLatencies; cache?: Partial<CacheGeometry> };
  /** Disco's NUMA policy (numa-policy.ts), acting on what `policySignal` counts; off without it. */
  policy?: NumaPolicyParameters;
  /**
   * What the policy counts: `cache-misses` (default), FLASH's per-page cache-miss counters, which timing mode
   * has, so the policy acts in timing mode only; or `tlb-misses`, every vCPU's TLB misses per machine page and
   * node, which fast mode has too, so the policy acts in both.
   */
  policySignal?: PolicySignal;
  /** Where every VM's pages come from: its home node in 2 MiB blocks (default), or round-robin over the nodes. */
  placement?: Placement;
  /**
   * The page cache for copy-on-write disks' bases (page-cache.ts, docs/disk-cache.md): a read of a whole,
   * aligned 4 KiB block already cached maps it. Default true.
   */
  diskCache?: boolean;
  /** The pages of the kernel and initrd the monitor loads go through the page cache too, shared by every VM booted from them. Default false. */
  shareBootImages?: boolean;
  /** The content-sharing scanner (page-scanner.ts), off without it. */
  scan?: ScanParameters;
  /**
   * The physical machine's hardware (board/hardware.ts): its memory, and the faults injected into it. Made
   * from `config` when not given; given, it must have been made from the same layout.
   */
  hardware?: MachineHardware;
  /**
   * What every VM's network card on the subnet offers (devices/virtio/net.ts): checksum and TCP segmentation
   * offload, and an MTU. Default: neither (1500-byte frames).
   */
  subnet?: SubnetOptions;
  /** The cells (docs/cells.md): a count that splits the nodes evenly, or lists of nodes. Default: one cell of every node. */
  cells?: CellsSpec;
  /** What the monitor's handling of balloon requests costs (costs.ts DEFAULT_BALLOON_COSTS), for VMs with `balloon`. */
  balloonCosts?: BalloonCosts;
  /** What the cells' recovery costs (cell-recovery.ts DEFAULT_RECOVERY_COSTS). */
  recoveryCosts?: RecoveryCosts;
  /**
   * Monitor-level paging (pager.ts, docs/monitor.md "Paging"): when memory runs short, VMs' pages go to this
   * swap store instead of a VM being stopped. Undefined: off (a VM that finds the machine full is stopped). One cell only.
   */
  swap?: SwapOptions;
}

/** The subnet's cards' options (MonitorOptions.subnet). */
export type SubnetOptions = Pick<VirtioNetOptions, 'offload' | 'mtu'>;

export interface VmSpec {
  name: string;
  vcpus: number;
  memoryBytes: number;
  /** Fair-share weight against the other VMs (default 1). */
  share?: number;
  console: (bytes: Uint8Array) => void;
  log?: (message: string) => void;
  secondLevelEntries?: number;
  /** A virtio-net card on the VMs' subnet (`Monitor.subnet`), MAC address `vmMac(id)`. */
  net?: boolean;
  /** Its home node (a VM restored from a snapshot); default: the node with the least memory of other VMs at home there. */
  homeNode?: number;
  /** The cell it is confined to (docs/cells.md); default: the cell it fits in with the most memory left, or none (it spans). */
  cell?: number;
  /**
   * False: none of its pages is ever shared with another VM's (no disk cache, no boot images, and content
   * merges among its own pages only), against the side channels of cross-VM sharing. Default true.
   */
  sharing?: boolean;
  /**
   * A virtio balloon (after the network card, before the host's drives): the guest's free page reports and
   * inflated pages give their machine pages back (balloon.ts, docs/monitor.md "The balloon"). Default false.
   */
  balloon?: boolean;
}
