// Every fuzz target by name: the guest-facing surfaces, then the host-facing ones (docs/fuzzing.md).

import type { FuzzTarget } from '../harness.js';
import { guestTargets } from './guest.js';
import { hostTargets } from './host.js';
import { deviceTargets } from './mmio-devices.js';
import { netTargets } from './net.js';
import { virtioTargets } from './virtio.js';

export const TARGETS: readonly FuzzTarget<never>[] = [
  ...virtioTargets,
  ...deviceTargets,
  ...guestTargets,
  ...netTargets,
  ...hostTargets,
] as unknown as FuzzTarget<never>[];

export function findTarget(name: string): FuzzTarget<never> | undefined {
  return TARGETS.find((t) => t.name === name);
}
