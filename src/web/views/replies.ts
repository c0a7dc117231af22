// The shapes of the data the views draw: the control protocol's replies as the dashboard reads them (docs/up.md
// and docs/dashboard.md give them in full); the browser tab makes the same shapes from its machine.

export interface VmListing {
  id: number;
  name: string;
  state: string;
  reason: string;
  vcpus: number;
  memoryBytes: number;
  bytesInUse: number;
  homeNode: number;
  cells: number[];
}

export interface MemoryReply {
  vms: { name: string; private: number; shared: number; reserved: number }[];
}

export interface VcpuTotals {
  guestUserCycles: number;
  guestKernelCycles: number;
  monitorCycles: number;
  monitorByKind: Record<string, number>;
  idleCycles: number;
  readyCycles: number;
}

export interface VmStats {
  name: string;
  state: string;
  exits: Record<string, number>;
  total: VcpuTotals;
  perVcpu: (VcpuTotals & { index: number; lastCpu: number })[];
}

export interface CpusReply {
  cycles: number;
  mode: 'fast' | 'timing';
  cpus: { cpu: number; node: number; cell: number; failed: boolean; vm: string | null; vcpu: number | null; userCycles: number; kernelCycles: number; monitorCycles: number; monitorByKind: Record<string, number>; missesLocal: number | null; missesRemote: number | null;
    /** What the CPU is doing, where the view's source knows it (the browser tab: a hart running, in WFI, off). */
    state?: string }[];
  nodes: { id: number; linesRead: number | null; linesWritten: number | null }[];
  policy: { migratedTo: number[]; replicatedTo: number[] } | null;
}

export interface MonitorReply {
  cpus: number;
  /** `pagesInUse` null: not known (the browser tab's machine, which has no monitor counting them). */
  nodes: { id: number; cpus: number[]; memoryBytes: number; pagesInUse: number | null; pagesFree: number; failed: boolean }[];
  cells: { id: number; nodes: number[]; cpus: number[]; monitorNode: number; failure: string | null }[];
  mode: string;
  machineFailure: string | null;
}

export interface FailureRecord {
  seq: number;
  time: number;
  kind: string;
  text: string;
}
