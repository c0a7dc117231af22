// Backpressure for bytes typed into a guest. A source (a console socket's clients, stdin) is paused while
// the device's queue of host input is long, and resumed once the guest has taken most of it, so a client
// that sends faster than the guest reads costs bounded host memory and loses nothing.

/** Queued input at which the sources pause. */
export const INPUT_HIGH_WATER = 64 * 1024;
/** Queued input under which they resume. */
export const INPUT_LOW_WATER = 16 * 1024;
/** How often a paused gate looks at the queue again (host milliseconds). */
const POLL_MS = 10;

export class InputGate {
  private timer: NodeJS.Timeout | undefined;

  /**
   * `queued` tells the bytes the device still holds; `pause` and `resume` stop and restart every source.
   */
  constructor(private readonly queued: () => number, private readonly pause: () => void, private readonly resume: () => void) {}

  /** Whether the sources are paused now. */
  get paused(): boolean {
    return this.timer !== undefined;
  }

  /** Call after handing input to the device: pauses the sources while the queue is at the high mark. */
  afterInput(): void {
    if (this.timer !== undefined || this.queued() < INPUT_HIGH_WATER) return;
    this.pause();
    this.timer = setInterval(() => {
      if (this.queued() >= INPUT_LOW_WATER) return;
      this.stop();
      this.resume();
    }, POLL_MS);
    this.timer.unref(); // a paused console never keeps the process alive by itself
  }

  /** Stops looking (the sources stay as they are). */
  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }
}
