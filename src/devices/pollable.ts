// Devices that accept work from outside the guest (console input, packets) and deliver it between time slices.

/**
 * A device with host-side input queued for the guest. The board calls `poll()` between time slices, so
 * input reaches the guest at the same simulated moment on every run (DESIGN.md, "Time and determinism").
 * `poll()` moves as much queued input as the guest has room for, and never throws.
 */
export interface Pollable {
  poll(): void;
}
